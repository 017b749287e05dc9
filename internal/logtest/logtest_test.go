package logtest

import (
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	log := b.JSON()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.Warn("lead failed", "n", i)
		}()
	}
	wg.Wait()
	b.Text().Info("other line")
	if n := b.Count("lead failed"); n != 8 {
		t.Errorf("Count = %d, want 8\n%s", n, b.String())
	}
	recs := b.Records("lead failed")
	if len(recs) != 8 || recs[0]["level"] != "WARN" {
		t.Errorf("Records = %v, want 8 WARN records", recs)
	}
	if got := b.Records("other line"); len(got) != 0 {
		t.Errorf("a text line decoded as a record: %v", got)
	}
}
