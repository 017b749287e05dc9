package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/store"
)

// saveCallbackLikeH2 stores one callback naming only crmID the way
// SaveCallbacks does: the link lock first, then an insert that finds its
// lead by crm_id in the same statement.
func saveCallbackLikeH2(ctx context.Context, db *DB, crmID string) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer rollback(tx)
	if _, err := tx.Exec(ctx, sqlLinkLock, crmID); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO callbacks (dedup_key, internal_id, event, status, timestamp, received_at, raw_body, lead_id)
		VALUES ($1 || ':status:1', $1, 'status', 'won', '1', $2, '{}',
			(SELECT id FROM leads WHERE crm_id = $1 ORDER BY id DESC LIMIT 1))`, crmID, ms(time.Now())); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// TestCoreLateLinkingRace races, lead by lead, the Record that learns a
// CRM id against a callback naming only that id: whichever commits second
// must link them, so no callback is left unmatched.
func TestCoreLateLinkingRace(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	n := 60
	if testing.Short() {
		n = 20
	}
	enqueueN(t, db, "link", n)
	leads, err := db.Claim(ctx, "w", time.Now(), time.Hour, n)
	if err != nil || len(leads) != n {
		t.Fatalf("claim: %v, %d", err, len(leads))
	}
	for _, l := range leads {
		crmID := "crm-" + l.ExternalID
		var wg sync.WaitGroup
		var rerr, cerr error
		wg.Add(2)
		start := make(chan struct{})
		go func() {
			defer wg.Done()
			<-start
			rerr = db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: l.ID, Outcome: crm.StateAccepted, HTTPStatus: 201}, CRMID: crmID})
		}()
		go func() {
			defer wg.Done()
			<-start
			cerr = saveCallbackLikeH2(ctx, db, crmID)
		}()
		close(start)
		wg.Wait()
		if rerr != nil || cerr != nil {
			t.Fatalf("record: %v; callback: %v", rerr, cerr)
		}
	}
	var unmatched int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM callbacks WHERE lead_id IS NULL`).Scan(&unmatched); err != nil {
		t.Fatal(err)
	}
	if unmatched != 0 {
		t.Fatalf("%d of %d callbacks left unmatched", unmatched, n)
	}
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.CallbacksVerified != n || c.CallbacksUnmatched != 0 {
		t.Fatalf("counts: %d callbacks, %d unmatched; want %d, 0", c.CallbacksVerified, c.CallbacksUnmatched, n)
	}
	d, err := db.LeadDetail(ctx, leads[0].ExternalID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Callbacks) != 1 || d.Callbacks[0].InternalID != "crm-"+leads[0].ExternalID {
		t.Fatalf("lead detail: callbacks %+v; want the one naming its CRM id", d.Callbacks)
	}
}

// TestCoreLateLinkTakesStatus: a callback stored before the Record that
// learns its CRM id is linked by that Record, and its status becomes the
// lead's.
func TestCoreLateLinkTakesStatus(t *testing.T) {
	db, _ := openTest(t, store.Options{})
	ctx := context.Background()
	enqueueN(t, db, "late", 1)
	ls, err := db.Claim(ctx, "w", time.Now(), time.Hour, 1)
	if err != nil || len(ls) != 1 {
		t.Fatalf("claim: %v", err)
	}
	if err := saveCallbackLikeH2(ctx, db, "crm-late"); err != nil {
		t.Fatal(err)
	}
	if c, err := db.Counts(ctx); err != nil || c.CallbacksUnmatched != 1 {
		t.Fatalf("counts before the Record: %v, %+v; want 1 unmatched", err, c)
	}
	if err := db.Record(ctx, "w", crm.AttemptResult{Attempt: crm.Attempt{LeadID: ls[0].ID, Outcome: crm.StateAccepted}, CRMID: "crm-late"}); err != nil {
		t.Fatal(err)
	}
	d, err := db.LeadDetail(ctx, "late-0")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Callbacks) != 1 || d.Lead.CRMStatus != "won" || d.Lead.CRMID != "crm-late" {
		t.Fatalf("after the Record: %d callbacks, crm id %q status %q; want 1, crm-late, won", len(d.Callbacks), d.Lead.CRMID, d.Lead.CRMStatus)
	}
	if c, err := db.Counts(ctx); err != nil || c.CallbacksUnmatched != 0 || c.CallbacksVerified != 1 {
		t.Fatalf("counts after the Record: %v, %+v; want 1 callback, 0 unmatched", err, c)
	}
}
