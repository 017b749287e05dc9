package ui

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/leadwatch/leadwatch/store"
	"github.com/leadwatch/leadwatch/store/postgres"
	"github.com/leadwatch/leadwatch/store/sqlite"
	"github.com/leadwatch/leadwatch/store/storetest"
)

// Issue #5's dashboard budget, checked against a real store on each
// backend (issue #10):
//
//	LEADWATCH_BIG_DB=/tmp/big.db LEADWATCH_BENCH_POSTGRES=postgres://…/big \
//	  go test ./ui -run '^$' -bench 'Dashboard(FirstFrame|Refresh)' -benchtime 20x
//
// with 1,000,000 + 1,000,000 stores made by tools/fillstore (a file and a
// PostgreSQL database). Without LEADWATCH_BIG_DB the SQLite benchmarks
// build a small store so they stay quick; without LEADWATCH_BENCH_POSTGRES
// the PostgreSQL ones fill a small scratch database on the server of
// LEADWATCH_TEST_POSTGRES, and skip when that is unset too.

// benchSmall is the size of the stores built when no big one is named.
const benchSmall = 20_000

// benchStore opens LEADWATCH_BIG_DB, or builds a 20,000 + 20,000 store in
// b.TempDir().
func benchStore(b *testing.B) *sqlite.DB {
	b.Helper()
	ctx := context.Background()
	path := os.Getenv("LEADWATCH_BIG_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "bench.db")
		db, err := sqlite.Open(ctx, path, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Fill(ctx, benchSmall, benchSmall); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
	db, err := sqlite.Open(ctx, path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// benchPostgresEnv names a filled PostgreSQL database for the PostgreSQL
// variants (tools/fillstore -db URL).
const benchPostgresEnv = "LEADWATCH_BENCH_POSTGRES"

// benchPostgres opens LEADWATCH_BENCH_POSTGRES, or fills a 20,000 + 20,000
// scratch database (dropped after the benchmark) on the test server;
// it returns the store and its URL, to open it afresh.
func benchPostgres(b *testing.B) (*postgres.DB, string) {
	b.Helper()
	ctx := context.Background()
	url := os.Getenv(benchPostgresEnv)
	if url == "" {
		if os.Getenv(storetest.PostgresEnv) == "" {
			b.Skip("set " + benchPostgresEnv + " to a filled database (tools/fillstore), or " +
				storetest.PostgresEnv + " to a PostgreSQL server (tools/pgtest.sh start prints one), to run the PostgreSQL variant")
		}
		url = storetest.Postgres(b)
		db, err := postgres.Open(ctx, url, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Fill(ctx, benchSmall, benchSmall); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
	db, err := postgres.Open(ctx, url, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db, url
}

// benchBackend is one backend's store for the benchmarks: the store
// opened once, and a way to open it afresh as a new process does.
type benchBackend struct {
	db   Source
	open func() (Source, func() error, error)
}

// benchBackends runs f once per backend, as sub-benchmarks SQLite and
// Postgres; the PostgreSQL one skips without a server.
func benchBackends(b *testing.B, f func(b *testing.B, be benchBackend)) {
	b.Run("SQLite", func(b *testing.B) {
		db := benchStore(b)
		f(b, benchBackend{db: db, open: func() (Source, func() error, error) {
			fresh, err := sqlite.Open(context.Background(), db.Path(), store.Options{})
			if err != nil {
				return nil, nil, err
			}
			return fresh, fresh.Close, nil
		}})
	})
	b.Run("Postgres", func(b *testing.B) {
		db, url := benchPostgres(b)
		f(b, benchBackend{db: db, open: func() (Source, func() error, error) {
			fresh, err := postgres.Open(context.Background(), url, store.Options{})
			if err != nil {
				return nil, nil, err
			}
			return fresh, fresh.Close, nil
		}})
	})
}

// benchWidth and benchHeight are the terminal of the budget's check: a
// grid of four panes.
const benchWidth, benchHeight = 160, 48

// firstFrame runs the dashboard's start-up as bubbletea does, minus the
// terminal: New, the window size (which starts the first refresh), the
// refresh's queries, its result, and the frame drawn from it.
func firstFrame(b *testing.B, db Source) string {
	b.Helper()
	m := New(Config{Source: db, Now: time.Now})
	_ = m.Init() // its Cmds block (tick, change wait); the refresh it asks for is the one below
	tm, cmd := m.Update(tea.WindowSizeMsg{Width: benchWidth, Height: benchHeight})
	if cmd == nil {
		b.Fatal("no refresh after the window size")
	}
	msg, ok := cmd().(snapshotMsg)
	if !ok {
		b.Fatal("the first refresh did not return a snapshot")
	}
	if msg.err != nil {
		b.Fatal(msg.err)
	}
	tm, _ = tm.Update(msg)
	return tm.View()
}

// BenchmarkDashboardFirstFrame measures New to a drawn frame with data
// (budget: 300 ms at 1,000,000 leads and callbacks; the process start and
// store open come on top and are measured by tools/perf-dashboard.sh).
// OpenStore includes the store's Open: SQLite's page cache starts empty
// as in a fresh process (the OS's file cache stays warm); PostgreSQL's
// pool connects afresh (the server's buffers stay warm).
func BenchmarkDashboardFirstFrame(b *testing.B) {
	check := func(b *testing.B, view string) {
		if !strings.Contains(view, "fill-") {
			b.Fatalf("first frame has no leads:\n%s", view)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/frame")
	}
	benchBackends(b, func(b *testing.B, be benchBackend) {
		b.Run("OpenStore", func(b *testing.B) {
			var view string
			for b.Loop() {
				fresh, closeFresh, err := be.open()
				if err != nil {
					b.Fatal(err)
				}
				view = firstFrame(b, fresh)
				if err := closeFresh(); err != nil {
					b.Fatal(err)
				}
			}
			check(b, view)
		})
		b.Run("OpenedStore", func(b *testing.B) {
			var view string
			for b.Loop() {
				view = firstFrame(b, be.db)
			}
			check(b, view)
		})
	})
}

// BenchmarkDashboardRefresh measures one refresh's queries: the snapshot
// Cmd of the grid, every pane on screen, and of each full-body view
// (budget: 10 ms). The views pace their heavier reads (the Sources
// report once a second, the hour's throughput every two); here every
// refresh makes them, the worst case. A text-filtered All leads page
// was searched when the filter was typed (benchSettle); a refresh then
// reads only the leads stored since, and the full search runs again in
// the background every researchEvery, off the refresh.
func BenchmarkDashboardRefresh(b *testing.B) {
	benchBackends(b, func(b *testing.B, be benchBackend) {
		for _, v := range []struct {
			name string
			keys []string
		}{
			{"Grid", nil},
			{"AllLeads", []string{"5"}},
			{"AllLeadsPaged", []string{"5", "pgdown", "pgdown", "j"}},
			{"AllLeadsBottom", []string{"5", "G"}},
			// A filter the store matches on every lead's reason, and one
			// it matches on none: the page then scans the whole 100,000-
			// row window (the count runs apart, off the refresh).
			{"AllLeadsFiltered", []string{"5", "/", "blocked", "enter"}},
			{"AllLeadsFilteredRare", []string{"5", "/", "no-such-lead", "enter"}},
			{"Sources", []string{"6"}},
			{"SourcesHour", []string{"6", "w"}},
			{"SourcesAll", []string{"6", "w", "w"}},
			// sub_id has the most values; country was the slow one.
			{"SourcesSubIDHour", []string{"6", "b", "b", "w"}},
			{"SourcesSubIDAll", []string{"6", "b", "b", "w", "w"}},
			{"SourcesCountry5Min", []string{"6", "b", "b", "b"}},
			{"SourcesCountryHour", []string{"6", "b", "b", "b", "w"}},
			{"ThroughputHour", []string{"7", "w"}},
			{"ThroughputLaunch", []string{"7", "w", "w"}},
			// Last: it starts forwarding on the store, which stays on, and
			// every refresh then reads the forward queue for the header's
			// fourth line too (compare with Grid).
			{"GridForwarding", nil},
		} {
			b.Run(v.name, func(b *testing.B) {
				if v.name == "GridForwarding" {
					fs, ok := be.db.(interface{ StartForwarding(context.Context) error })
					if !ok {
						b.Skip("the store cannot forward")
					}
					if err := fs.StartForwarding(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				m := benchSettle(New(Config{Source: be.db, Now: time.Now}), tea.WindowSizeMsg{Width: benchWidth, Height: benchHeight})
				if v.name == "GridForwarding" && !m.header.fwd.Enabled {
					b.Fatal("forwarding started, but the header has no forwarding line")
				}
				for _, k := range v.keys {
					m = benchSettle(m, keyMsg(k))
				}
				// A text filter's count of its matches runs off the
				// refresh (a scan of the store, every recountEvery); it is
				// let land first, so it does not share the cores with what
				// is measured.
				m.all.counter.wait()
				for b.Loop() {
					m.sources.askedAt, m.trend.askedAt = time.Time{}, time.Time{}
					cmd := m.refresh()
					m.cycle.running = false
					if msg := cmd().(snapshotMsg); msg.err != nil {
						b.Fatal(msg.err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/refresh")
				m.all.bg.wait()
			})
		}
	})
}

// benchSettle feeds msg to m and runs the Cmds that come back, and
// theirs, until none is left: the keys and refreshes a user's session
// would run. Without Config.Changes nothing waits on a channel.
func benchSettle(m Model, msg tea.Msg) Model {
	queue := []tea.Msg{msg}
	for len(queue) > 0 {
		next, cmd := m.Update(queue[0])
		m, queue = next.(Model), queue[1:]
		var run func(tea.Cmd)
		run = func(c tea.Cmd) {
			if c == nil {
				return
			}
			switch out := c().(type) {
			case nil:
			case tea.BatchMsg:
				for _, c := range out {
					run(c)
				}
			default:
				queue = append(queue, out)
			}
		}
		run(cmd)
	}
	return m
}

// BenchmarkDashboardView measures drawing a frame from loaded data: what
// each refresh and key costs on the Update goroutine. The tests' ASCII
// profile skips colour, so the profiles of real terminals are measured too
// (a 256-colour terminal converts every hex colour).
func BenchmarkDashboardView(b *testing.B) {
	db := benchStore(b)
	for _, p := range []struct {
		name    string
		profile termenv.Profile
	}{{"Ascii", termenv.Ascii}, {"ANSI256", termenv.ANSI256}, {"TrueColor", termenv.TrueColor}} {
		b.Run(p.name, func(b *testing.B) {
			r := lipgloss.DefaultRenderer()
			old := r.ColorProfile()
			r.SetColorProfile(p.profile)
			defer r.SetColorProfile(old)
			m := New(Config{Source: db, Now: time.Now})
			tm, cmd := m.Update(tea.WindowSizeMsg{Width: benchWidth, Height: benchHeight})
			tm, _ = tm.Update(cmd())
			for b.Loop() {
				_ = tm.View()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/view")
		})
	}
}
