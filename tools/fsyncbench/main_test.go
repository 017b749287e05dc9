//go:build linux

package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMeasureAppendsOrRewrites(t *testing.T) {
	const size = 4096
	for _, region := range []int64{0, 64 * size} {
		f, err := os.Create(filepath.Join(t.TempDir(), "sync"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if region > 0 {
			if err := preallocate(f, region); err != nil {
				t.Fatal(err)
			}
		}
		lat, err := measure(f, size, region, 20*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		// Appends grow the file by one block a sync; rewrites stay within
		// the region, however many there were.
		want := int64(len(lat)) * size
		if region > 0 {
			want = region
		}
		if len(lat) == 0 || st.Size() != want {
			t.Errorf("region %d: %d syncs left the file at %d bytes, want %d", region, len(lat), st.Size(), want)
		}
	}
}
