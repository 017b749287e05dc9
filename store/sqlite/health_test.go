package sqlite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadwatch/leadwatch/crm"
	"github.com/leadwatch/leadwatch/internal/poll"
	"github.com/leadwatch/leadwatch/store"
)

// logRecorder is a slog.Handler that keeps every record, for tests that
// count what was logged.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// at returns the records logged at level, with their attributes as text.
func (l *logRecorder) at(level slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Level != level {
			continue
		}
		s := r.Message
		r.Attrs(func(a slog.Attr) bool {
			s += " " + a.String()
			return true
		})
		out = append(out, s)
	}
	return out
}

// checkHealth calls db.Health with a bounded context.
func checkHealth(t *testing.T, db *DB) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return db.Health(ctx)
}

func TestHealthOK(t *testing.T) {
	db, _ := MustOpen(t)
	if code, err := checkHealth(t, db); code != "" || err != nil {
		t.Fatalf("health = %q, %v; want ok", code, err)
	}
	t.Run("ProbeCommits", func(t *testing.T) {
		var n int64
		if err := db.reader.QueryRow(`SELECT n FROM counters WHERE name = 'health_probe'`).Scan(&n); err != nil {
			t.Fatalf("no probe row: %v", err)
		}
		if n == 0 {
			t.Fatal("probe row holds no time")
		}
	})
	t.Run("FloodCostsOneProbe", func(t *testing.T) {
		// A fresh probe (default 2 s) answers everyone: 200 callers, at
		// most one more probe (if the first one just aged out).
		before := db.health.Probes()
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for range 200 {
			wg.Go(func() {
				if code, err := db.Health(context.Background()); code != "" {
					errs <- fmt.Errorf("health = %q, %v", code, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := db.health.Probes() - before; got > 1 {
			t.Fatalf("%d probes for 200 calls, want at most 1", got)
		}
	})
	t.Run("ProbeRepeatsWhenOld", func(t *testing.T) {
		db := MustOpenPath(t, filepath.Join(t.TempDir(), "p.db"), store.Options{ProbeMaxAge: time.Nanosecond})
		for range 3 {
			if code, err := checkHealth(t, db); code != "" {
				t.Fatalf("health = %q, %v", code, err)
			}
		}
		if n := db.health.Probes(); n != 3 {
			t.Fatalf("%d probes, want 3 (each result was already old)", n)
		}
	})
}

func TestHealthReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.db")
	MustOpenPath(t, path, store.Options{})
	ro := MustOpenPath(t, path, store.Options{ReadOnly: true})
	code, err := checkHealth(t, ro)
	if code != store.HealthReadOnly || !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("health = %q, %v; want read_only", code, err)
	}
	t.Logf("read-only: %v", err)
}

func TestHealthDiskFull(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	mustEnqueue(t, db, "F-0")
	if code, err := checkHealth(t, db); code != "" {
		t.Fatalf("health before = %q, %v", code, err)
	}
	var pages int
	if err := db.writer.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	// max_page_count is per connection; the writer has exactly one.
	if _, err := db.writer.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+1)); err != nil {
		t.Fatal(err)
	}
	big := fmt.Sprintf(`{"external_id":"F-%%d","phone":"+4915112345678","notes":"%0*d"}`, 3000, 0)
	var full error
	for i := range 50 {
		if _, err := db.Enqueue(ctx, []byte(fmt.Sprintf(big, i+1)), store.EnqueueOptions{}); err != nil {
			full = err
			break
		}
	}
	if !errors.Is(full, store.ErrDiskFull) {
		t.Fatalf("enqueue err = %v, want store.ErrDiskFull", full)
	}
	code, err := checkHealth(t, db)
	if code != store.HealthDiskFull || !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("health = %q, %v; want disk_full", code, err)
	}
	t.Run("ProbeDecidesAfterTheHold", func(t *testing.T) {
		// No write comes (a load balancer took the instance out): once
		// the failure is older than its hold, the probe answers, and its
		// one-row update fits. A real write then sets the failure again.
		db.opt.ProbeMaxAge = time.Millisecond
		defer func() { db.opt.ProbeMaxAge = store.DefaultProbeMaxAge }()
		poll.Until(t, "the probe to decide again", func() bool {
			code, _ := checkHealth(t, db)
			return code == ""
		})
		if _, err := db.Enqueue(ctx, []byte(fmt.Sprintf(big, 999)), store.EnqueueOptions{}); !errors.Is(err, store.ErrDiskFull) {
			t.Fatalf("enqueue err = %v, want store.ErrDiskFull", err)
		}
		if code, _ := checkHealth(t, db); code != store.HealthDiskFull {
			t.Fatalf("health = %q after another failed write, want disk_full", code)
		}
	})
	// Space again: the next successful commit clears it.
	if _, err := db.writer.Exec(`PRAGMA max_page_count = 1000000`); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, db, "F-after")
	if code, err := checkHealth(t, db); code != "" {
		t.Fatalf("health after space came back = %q, %v", code, err)
	}
}

func TestHealthLockedElsewhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	db := MustOpenPath(t, path, store.Options{BusyTimeout: 100 * time.Millisecond, ProbeMaxAge: time.Nanosecond})
	// Another process's connection holding the write lock past the busy
	// timeout: nothing can commit.
	release := holdWriteLock(t, path)
	code, err := checkHealth(t, db)
	if code != store.HealthUnreachable || !errors.Is(err, store.ErrBusy) {
		t.Fatalf("health while locked = %q, %v; want unreachable", code, err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if code, err := checkHealth(t, db); code != "" {
		t.Fatalf("health after the lock went = %q, %v", code, err)
	}
}

func TestHealthClosed(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "c.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if code, err := checkHealth(t, db); code != store.HealthUnreachable || err == nil {
		t.Fatalf("health after close = %q, %v; want unreachable", code, err)
	}
}

func TestReplacedFile(t *testing.T) {
	ctx := context.Background()
	ev := func(i int) []crm.CallbackEvent {
		return []crm.CallbackEvent{callback(fmt.Sprintf("crm-%d", i), "", "lead.created", "new", int64(1000+i))}
	}
	// openWatched opens a store whose logs are recorded.
	openWatched := func(t *testing.T, opt store.Options) (*DB, *logRecorder) {
		logs := &logRecorder{}
		opt.Logger = slog.New(logs)
		return MustOpenPath(t, filepath.Join(t.TempDir(), "leadwatch.db"), opt), logs
	}
	// assertFailed checks every consequence of a detected replacement: writes
	// of every kind fail with ErrReplaced, Health says store_replaced, and
	// one error was logged, naming the path.
	assertFailed := func(t *testing.T, db *DB, logs *logRecorder) {
		t.Helper()
		if _, err := db.SaveCallbacks(ctx, ev(2)); !errors.Is(err, store.ErrReplaced) {
			t.Fatalf("save callbacks err = %v, want store.ErrReplaced", err)
		}
		if _, err := db.Enqueue(ctx, payload("R-2"), store.EnqueueOptions{}); !errors.Is(err, store.ErrReplaced) {
			t.Fatalf("enqueue err = %v, want store.ErrReplaced", err)
		}
		if err := db.SaveRefusal(ctx, crm.Refusal{Code: "bad_signature"}); !errors.Is(err, store.ErrReplaced) {
			t.Fatalf("save refusal err = %v, want store.ErrReplaced", err)
		}
		if err := db.Ping(ctx); !errors.Is(err, store.ErrReplaced) {
			t.Fatalf("ping err = %v, want store.ErrReplaced", err)
		}
		if _, err := db.Prune(ctx, time.Now()); !errors.Is(err, store.ErrReplaced) {
			t.Fatalf("prune err = %v, want store.ErrReplaced", err)
		}
		if _, err := db.Forget(ctx, "R-1"); !errors.Is(err, store.ErrReplaced) {
			t.Fatalf("forget err = %v, want store.ErrReplaced", err)
		}
		// A backup would copy whatever the path names now.
		if err := db.Backup(ctx, filepath.Join(t.TempDir(), "copy.db")); !errors.Is(err, store.ErrReplaced) {
			t.Fatalf("backup err = %v, want store.ErrReplaced", err)
		}
		code, err := checkHealth(t, db)
		if code != store.HealthReplaced || !errors.Is(err, store.ErrReplaced) {
			t.Fatalf("health = %q, %v; want store_replaced", code, err)
		}
		errs := logs.at(slog.LevelError)
		if len(errs) != 1 {
			t.Fatalf("logged %d errors, want exactly 1: %q", len(errs), errs)
		}
		if want := db.Path(); !strings.Contains(errs[0], want) {
			t.Fatalf("error log %q does not name the path %s", errs[0], want)
		}
		t.Logf("logged: %s", errs[0])
	}

	t.Run("RemovedCommitFails", func(t *testing.T) {
		// An hour between checks: only the commit's own check can see it.
		db, logs := openWatched(t, store.Options{FileCheckInterval: time.Hour})
		if _, err := db.SaveCallbacks(ctx, ev(1)); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(db.Path()); err != nil {
			t.Fatal(err)
		}
		// The first commit after the removal lands in the unlinked file
		// and must not be acknowledged.
		_, err := db.SaveCallbacks(ctx, ev(3))
		if !errors.Is(err, store.ErrReplaced) {
			t.Fatalf("first commit after rm: err = %v, want store.ErrReplaced", err)
		}
		t.Logf("commit: %v", err)
		assertFailed(t, db, logs)
	})
	t.Run("RemovedIdleNoticed", func(t *testing.T) {
		// No write at all: the interval check alone, at its default
		// (1 s), must notice within 5 s.
		db, logs := openWatched(t, store.Options{})
		if err := os.Remove(db.Path()); err != nil {
			t.Fatal(err)
		}
		poll.UntilWithin(t, 5*time.Second, "the interval check to notice the removed file", func() bool {
			return db.replacedErr() != nil
		})
		assertFailed(t, db, logs)
	})
	t.Run("RenamedOver", func(t *testing.T) {
		db, logs := openWatched(t, store.Options{FileCheckInterval: time.Hour})
		mustEnqueue(t, db, "R-1")
		// Another database, renamed over the path: the path now names a
		// valid store that is not the file this handle writes.
		other := filepath.Join(t.TempDir(), "other.db")
		o, err := Open(ctx, other, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, db.Path()); err != nil {
			t.Fatal(err)
		}
		code, err := checkHealth(t, db)
		if code != store.HealthReplaced || !errors.Is(err, store.ErrReplaced) {
			t.Fatalf("health = %q, %v; want store_replaced (its probe checks the file)", code, err)
		}
		assertFailed(t, db, logs)
	})
	t.Run("RenamedOverIdleNoticed", func(t *testing.T) {
		db, logs := openWatched(t, store.Options{FileCheckInterval: 10 * time.Millisecond})
		other := filepath.Join(t.TempDir(), "other.db")
		if err := os.WriteFile(other, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, db.Path()); err != nil {
			t.Fatal(err)
		}
		poll.UntilWithin(t, 5*time.Second, "the interval check to notice the replaced file", func() bool {
			return db.replacedErr() != nil
		})
		assertFailed(t, db, logs)
	})
	t.Run("UntouchedStaysOK", func(t *testing.T) {
		db, logs := openWatched(t, store.Options{FileCheckInterval: time.Millisecond})
		for i := range 20 {
			if _, err := db.SaveCallbacks(ctx, ev(100+i)); err != nil {
				t.Fatal(err)
			}
		}
		if code, err := checkHealth(t, db); code != "" {
			t.Fatalf("health = %q, %v", code, err)
		}
		if errs := logs.at(slog.LevelError); len(errs) != 0 {
			t.Fatalf("errors logged: %q", errs)
		}
	})
}

// TestHealthDiskFullOnCallbacks: a full disk met by the listener's batch
// (or a refusal) at an INSERT, before any commit, is health news as much
// as one met at COMMIT: /healthz must not stay green while every callback
// is answered 503.
func TestHealthDiskFullOnCallbacks(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	var pages int
	if err := db.writer.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+2)); err != nil {
		t.Fatal(err)
	}
	body := []byte(fmt.Sprintf(`{"internal_id":"c","event":"e","timestamp":1,"pad":"%0*d"}`, 20000, 0))
	var full error
	for i := range 50 {
		ev, err := crm.ParseCallback(body)
		if err != nil {
			t.Fatal(err)
		}
		ev.InternalID = fmt.Sprintf("c-%d", i)
		if _, err := db.SaveCallbacks(ctx, []crm.CallbackEvent{ev}); err != nil {
			full = err
			break
		}
	}
	if !errors.Is(full, store.ErrDiskFull) {
		t.Fatalf("save callbacks err = %v, want store.ErrDiskFull", full)
	}
	if code, err := checkHealth(t, db); code != store.HealthDiskFull || !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("health = %q, %v; want disk_full", code, err)
	}
	if err := db.SaveRefusal(ctx, crm.Refusal{At: time.Now(), Code: "bad_signature", Head: body}); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("save refusal err = %v, want store.ErrDiskFull", err)
	}
	if code, _ := checkHealth(t, db); code != store.HealthDiskFull {
		t.Fatalf("health after a failed refusal = %q, want disk_full", code)
	}
}
