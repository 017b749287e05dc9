//go:build linux

// Command fsyncbench measures what one durable commit costs on a disk:
// it appends blocks of -size bytes to a scratch file and fdatasyncs after
// each, as SQLite's WAL does at every synchronous=FULL commit, and prints
// the latencies' p50/p99/max, the CPU time each sync cost this process
// (in a VM the kernel's side of an fdatasync is not free), and the commit
// ceiling they imply for the
// listener (issue #9): with c connections at most c events share a commit,
// so a single writer answers at most c / commit latency events a second.
//
//	go run ./tools/fsyncbench -dir /tmp -duration 10s
//
// With -rewrite it writes over a preallocated region instead, from its
// start again when it reaches the end, as SQLite reuses its WAL after a
// checkpoint: the file's size never changes, so a sync need not commit
// the filesystem's journal as well. The scratch file is removed on exit.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fsyncbench:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", os.TempDir(), "directory on the filesystem to measure")
	size := flag.Int("size", 4096, "bytes appended before each fdatasync")
	duration := flag.Duration("duration", 10*time.Second, "how long to measure")
	conns := flag.Int("conns", 32, "connections sharing a commit, for the ceiling")
	rewrite := flag.Bool("rewrite", false, "write over a preallocated 4 MiB region instead of appending")
	flag.Parse()
	switch {
	case *size < 1 || *size > 1<<20:
		return errors.New("-size must be 1…1048576")
	case *duration <= 0 || *duration > 10*time.Minute:
		return errors.New("-duration must be positive and at most 10m")
	}
	f, err := os.CreateTemp(*dir, "fsyncbench-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	region := int64(0)
	if *rewrite {
		region = 4 << 20
		if err := preallocate(f, region); err != nil {
			return err
		}
	}
	cpu0 := processCPU()
	lat, err := measure(f, *size, region, *duration)
	if err != nil {
		return err
	}
	cpu := processCPU() - cpu0
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	mean := time.Duration(0)
	for _, d := range lat {
		mean += d
	}
	mean /= time.Duration(len(lat))
	what := "appends"
	if *rewrite {
		what = "rewrites"
	}
	fmt.Printf("%d %s of %d B + fdatasync in %v: p50=%v p99=%v max=%v mean=%v (%.0f syncs/s), cpu %v per sync\n",
		len(lat), what, *size, *duration, q(0.5).Round(time.Microsecond), q(0.99).Round(time.Microsecond),
		q(1).Round(time.Microsecond), mean.Round(time.Microsecond), float64(time.Second)/float64(mean),
		(cpu / time.Duration(len(lat))).Round(time.Microsecond))
	fmt.Printf("ceiling at %d connections, one commit in flight: %.0f events/s at the mean, %.0f at p50\n",
		*conns, float64(*conns)*float64(time.Second)/float64(mean), float64(*conns)*float64(time.Second)/float64(q(0.5)))
	return nil
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// preallocate writes n zero bytes to f and syncs them, so that rewriting
// them changes no metadata but the times.
func preallocate(f *os.File, n int64) error {
	if _, err := f.Write(make([]byte, n)); err != nil {
		return err
	}
	return f.Sync()
}

// measure writes size bytes and fdatasyncs, one after the other, until d
// has passed, and returns each write-and-sync's latency. With a region it
// writes within the region's first bytes, wrapping around; without one it
// appends.
func measure(f *os.File, size int, region int64, d time.Duration) ([]time.Duration, error) {
	block := make([]byte, size)
	for i := range block {
		block[i] = byte(i)
	}
	var (
		lat []time.Duration
		off int64
	)
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		t := time.Now()
		if region > 0 {
			if off+int64(size) > region {
				off = 0
			}
			if _, err := f.WriteAt(block, off); err != nil {
				return nil, err
			}
			off += int64(size)
		} else if _, err := f.Write(block); err != nil {
			return nil, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t))
	}
	if len(lat) == 0 {
		return nil, errors.New("no sync completed")
	}
	return lat, nil
}
