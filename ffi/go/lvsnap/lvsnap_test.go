package lvsnap

// These tests need a kernel device-mapper and LVM2's tools: build them with
// `go test -c` and run the binary through the project's VM runner (vm/run),
// as .ci/run does. LVM2's tools are the oracle; the data is checked by
// content.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	mib     = 1 << 20
	testVG  = "lvsnapgo"
	origin  = "data"
	touched = 4 * mib
)

var originDev = "/dev/" + testVG + "/" + origin

func sh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMain makes a VG on a loop device with LVM's tools, runs the tests and
// removes it. It fails, never skips, without device-mapper.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := os.Stat("/dev/mapper/control"); err != nil {
		fmt.Fprintln(os.Stderr, "no /dev/mapper/control: run this test binary through vm/run, or as root on a kernel with device-mapper")
		return 1
	}
	file := filepath.Join(os.TempDir(), fmt.Sprintf("lvsnap-go-%d.img", os.Getpid()))
	f, err := os.Create(file)
	if err == nil {
		err = f.Truncate(256 * mib)
		f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backing file:", err)
		return 1
	}
	defer os.Remove(file)
	out, err := exec.Command("losetup", "-f", "--show", file).Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "losetup:", err)
		return 1
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()
	for _, c := range [][]string{
		{"pvcreate", "-q", dev},
		{"vgcreate", "-q", testVG, dev},
		{"lvcreate", "-q", "-y", "-L", "32M", "-n", origin, testVG},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n%s", strings.Join(c, " "), err, out)
			exec.Command("vgremove", "-f", "-q", testVG).Run()
			return 1
		}
	}
	defer exec.Command("vgremove", "-f", "-q", testVG).Run()
	return m.Run()
}

func open(t testing.TB) *VG {
	t.Helper()
	vg, err := Open(testVG)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vg.Close() })
	return vg
}

// pattern writes touched bytes of `b` at 0 of dev, synchronously.
func pattern(t testing.TB, dev string, b byte) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{b}, touched), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// head reads touched bytes at 0 of dev, after dropping its page cache.
func head(t testing.TB, dev string) []byte {
	t.Helper()
	sh(t, "blockdev", "--flushbufs", dev)
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, touched)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	return buf
}

// lvs reports one field of LV vg/lv as LVM2 sees it ("" if it is absent).
func lvs(t testing.TB, lv, field string) string {
	t.Helper()
	out, err := exec.Command("lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", field, testVG+"/"+lv).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func kind(t *testing.T, err error, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want an error matching %v", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Message == "" || e.Code >= 0 {
		t.Fatalf("%v: not an *Error with a code and a message", err)
	}
}

func TestCreateStatusListDelete(t *testing.T) {
	vg := open(t)
	before := time.Now().Add(-time.Second).Truncate(time.Second)
	if err := vg.CreateSnapshot(origin, "go-snap", SnapshotOptions{SnapSize: 8 * mib}); err != nil {
		t.Fatal(err)
	}
	st, err := vg.Status("go-snap")
	if err != nil {
		t.Fatal(err)
	}
	if got := lvs(t, "go-snap", "origin"); got != origin {
		t.Fatalf("lvs: origin of go-snap is %q", got)
	}
	size, _ := strconv.ParseInt(lvs(t, "go-snap", "lv_size"), 10, 64)
	if st.Name != "go-snap" || st.VG != testVG || st.SourceVolume != origin || st.Thin ||
		st.AllocatedCapacityBytes != size || st.AllocatedCapacityBytes < 8*mib ||
		st.State != StateReady || st.Merging || st.Invalid || st.DataPercent < 0 ||
		st.CreationTime.Before(before) || st.CreationTime.After(time.Now()) {
		t.Fatalf("status %+v (lvs size %d)", st, size)
	}
	lvsPct, _ := strconv.ParseFloat(lvs(t, "go-snap", "data_percent"), 64)
	if fmt.Sprintf("%.2f", st.DataPercent) != fmt.Sprintf("%.2f", lvsPct) {
		t.Fatalf("data_percent %.2f, lvs says %.2f", st.DataPercent, lvsPct)
	}
	list, err := vg.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0] != st {
		t.Fatalf("list %+v, status %+v", list, st)
	}
	if err := vg.Delete("go-snap"); err != nil {
		t.Fatal(err)
	}
	_, err = vg.Status("go-snap")
	kind(t, err, ErrNotFound)
	if got := lvs(t, "go-snap", "lv_name"); got != "" {
		t.Fatalf("lvs still shows %q", got)
	}
	sh(t, "vgck", testVG)
}

func TestErrorKinds(t *testing.T) {
	_, err := Open("lvsnapgo-none")
	kind(t, err, ErrNotFound)
	_, err = Open("bad/name")
	if err == nil {
		t.Fatal("a VG name with a slash was opened")
	}
	vg := open(t)
	kind(t, vg.CreateSnapshot("no-such-lv", "s", SnapshotOptions{}), ErrNotFound)
	kind(t, vg.CreateSnapshot(origin, "s", SnapshotOptions{ChunkSize: 3 * 4096}), ErrInvalidArgument)
	kind(t, vg.CreateSnapshot(origin, "s", SnapshotOptions{SnapSizePercent: 10001}), ErrInvalidArgument)
	// A store as large as a 200 MiB origin does not fit in the VG's free space.
	sh(t, "lvcreate", "-q", "-y", "-L", "200M", "-n", "big", testVG)
	kind(t, vg.CreateSnapshot("big", "s", SnapshotOptions{}), ErrNoSpace)
	sh(t, "lvremove", "-q", "-f", testVG+"/big")
	kind(t, vg.CreateSnapshot(origin, origin, SnapshotOptions{}), ErrInvalidArgument)
	kind(t, vg.Delete("no-such-snap"), ErrNotFound)
	_, err = vg.Rollback("no-such-snap")
	kind(t, err, ErrNotFound)
	kind(t, vg.Restore("no-such-snap", "r", RestoreOptions{}), ErrNotFound)
	_, _, err = vg.Watch("no-such-snap", 50, time.Millisecond)
	kind(t, err, ErrNotFound)
	// None of the refusals changed anything.
	if list, err := vg.Snapshots(); err != nil || len(list) != 0 {
		t.Fatalf("after refusals: %v %v", list, err)
	}
	vg.Close()
	kind(t, vg.Delete("x"), ErrInvalidArgument)
}

func TestRollback(t *testing.T) {
	vg := open(t)
	pattern(t, originDev, 0xa1)
	if err := vg.CreateSnapshot(origin, "go-rb", SnapshotOptions{SnapSizePercent: 50}); err != nil {
		t.Fatal(err)
	}
	pattern(t, originDev, 0xb2)
	if st, err := vg.Status("go-rb"); err != nil || st.DataPercent <= 0 {
		t.Fatalf("after overwrite: %+v %v", st, err)
	}
	rb, err := vg.Rollback("go-rb")
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	var st RollbackState
	for i := 0; ; i++ {
		if st, err = rb.Poll(); err != nil {
			t.Fatal(err)
		}
		if st.Settled() || i > 3000 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st != RollbackCompleted || rb.Percent() != 100 || rb.Reason() != "" {
		t.Fatalf("rollback ended %v (%.1f%%): %s", st, rb.Percent(), rb.Reason())
	}
	if got := head(t, originDev); !bytes.Equal(got, bytes.Repeat([]byte{0xa1}, touched)) {
		t.Fatal("the origin does not hold the snapshot-time data")
	}
	_, err = vg.Status("go-rb")
	kind(t, err, ErrNotFound)
	if got := lvs(t, origin, "lv_attr"); !strings.HasPrefix(got, "-wi-a") {
		t.Fatalf("lvs: the origin is %q after the merge", got)
	}
	sh(t, "vgck", testVG)
}

func TestDeferredRollbackAndBusy(t *testing.T) {
	vg := open(t)
	if err := vg.CreateSnapshot(origin, "go-defer", SnapshotOptions{SnapSize: 4 * mib}); err != nil {
		t.Fatal(err)
	}
	// An open origin defers the merge; it stays recorded.
	f, err := os.Open(originDev)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := vg.Rollback("go-defer")
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	st, err := rb.Poll()
	reason := rb.Reason()
	rb.Close()
	if err != nil || st != RollbackDeferred || reason == "" {
		f.Close()
		t.Fatalf("rollback with the origin open: %v %v (%q)", st, err, reason)
	}
	if s, err := vg.Status("go-defer"); err != nil || !s.Merging || s.State != StateNotReady {
		f.Close()
		t.Fatalf("a deferred merge's snapshot: %+v %v", s, err)
	}
	kind(t, vg.Restore("go-defer", "go-never", RestoreOptions{}), ErrBusy)
	f.Close()
	// Once the origin is free, rolling back again runs the merge to its end.
	rb, err = vg.Rollback("go-defer")
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	if st, err = rb.Wait(); err != nil || st != RollbackCompleted {
		t.Fatalf("resumed rollback: %v %v (%s)", st, err, rb.Reason())
	}
	if got := lvs(t, "go-never", "lv_name"); got != "" {
		t.Fatalf("a refused restore left %q", got)
	}
	sh(t, "vgck", testVG)
}

func TestRestore(t *testing.T) {
	vg := open(t)
	pattern(t, originDev, 0xc3)
	if err := vg.CreateSnapshot(origin, "go-src", SnapshotOptions{SnapSize: 8 * mib}); err != nil {
		t.Fatal(err)
	}
	defer vg.Delete("go-src")
	pattern(t, originDev, 0xd4)
	var calls int
	var last, total uint64
	err := vg.Restore("go-src", "go-restored", RestoreOptions{Progress: func(d, n uint64) {
		if d < last || d > n {
			t.Errorf("progress %d of %d after %d", d, n, last)
		}
		calls, last, total = calls+1, d, n
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sh(t, "lvremove", "-f", "-q", testVG+"/go-restored")
	if calls == 0 || last != total || total != 32*mib {
		t.Fatalf("progress: %d calls, last %d of %d", calls, last, total)
	}
	if got := head(t, "/dev/"+testVG+"/go-restored"); !bytes.Equal(got, bytes.Repeat([]byte{0xc3}, touched)) {
		t.Fatal("the restored LV does not hold the snapshot's data")
	}
	if got := lvs(t, "go-restored", "lv_size"); got != strconv.Itoa(32*mib) {
		t.Fatalf("lvs: restored size %q", got)
	}
	kind(t, vg.Restore("go-src", "go-restored", RestoreOptions{}), ErrInvalidArgument)

	// A panicking Progress does not unwind through the library: the
	// restore ends (the VG lock is released), then the panic comes back.
	func() {
		defer func() {
			if r := recover(); r != "stop" {
				t.Fatalf("recovered %v, want the callback's panic", r)
			}
		}()
		vg.Restore("go-src", "go-restored-2", RestoreOptions{Progress: func(d, n uint64) { panic("stop") }})
		t.Fatal("Restore returned after its callback panicked")
	}()
	if got := lvs(t, "go-restored-2", "lv_name"); got != "go-restored-2" {
		t.Fatalf("lvs: %q after a restore whose callback panicked", got)
	}
	sh(t, "lvremove", "-f", "-q", testVG+"/go-restored-2")
}

func TestWatchAndSharedHandle(t *testing.T) {
	vg := open(t)
	if err := vg.CreateSnapshot(origin, "go-watch", SnapshotOptions{SnapSize: 4 * mib}); err != nil {
		t.Fatal(err)
	}
	defer vg.Delete("go-watch")
	ev, pct, err := vg.Watch("go-watch", 0, time.Second)
	if err != nil || ev != WatchPercent || pct < 0 {
		t.Fatalf("watch to 0%%: %v %.2f %v", ev, pct, err)
	}
	if ev, _, err = vg.Watch("go-watch", 100, 50*time.Millisecond); err != nil || ev != WatchTimedOut {
		t.Fatalf("watch to 100%%: %v %v", ev, err)
	}
	// One handle, several goroutines.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := vg.Status("go-watch")
			if err == nil && st.Name != "go-watch" {
				err = fmt.Errorf("status of %q", st.Name)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestVersion(t *testing.T) {
	if v := Version(); strings.Count(v, ".") != 2 {
		t.Fatalf("version %q", v)
	}
}

// The benchmarks compare lvsnap through this package with what a Go
// program does today: exec LVM2's commands. Run them in the same VM run:
// `vm/run ./lvsnap.test -test.run XXX -test.bench . -test.benchtime 10x`.

func BenchmarkCreate(b *testing.B) {
	vg := open(b)
	create := map[string]func(name string){
		"lvsnap": func(name string) {
			if err := vg.CreateSnapshot(origin, name, SnapshotOptions{SnapSize: 8 * mib}); err != nil {
				b.Fatal(err)
			}
		},
		"exec_lvcreate": func(name string) {
			sh(b, "lvcreate", "-q", "-s", "-L", "8M", "-n", name, testVG+"/"+origin)
		},
	}
	for _, how := range []string{"lvsnap", "exec_lvcreate"} {
		b.Run(how, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				create[how]("bench-snap")
				b.StopTimer()
				if err := vg.Delete("bench-snap"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkCreateInterleaved alternates the two creates, so a load that
// changes during the run weighs on both alike; it reports each one's
// median (a create the host stalls moves a mean of few samples a lot) and
// the ratio of the medians.
func BenchmarkCreateInterleaved(b *testing.B) {
	vg := open(b)
	lib := make([]time.Duration, 0, b.N)
	cmd := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := vg.CreateSnapshot(origin, "bench-snap", SnapshotOptions{SnapSize: 8 * mib}); err != nil {
			b.Fatal(err)
		}
		lib = append(lib, time.Since(t0))
		if err := vg.Delete("bench-snap"); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		sh(b, "lvcreate", "-q", "-s", "-L", "8M", "-n", "bench-snap", testVG+"/"+origin)
		cmd = append(cmd, time.Since(t0))
		if err := vg.Delete("bench-snap"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	ml, mc := median(lib), median(cmd)
	b.ReportMetric(float64(ml.Nanoseconds()), "lvsnap-median-ns")
	b.ReportMetric(float64(mc.Nanoseconds()), "lvcreate-median-ns")
	b.ReportMetric(float64(mc)/float64(ml), "lvcreate/lvsnap")
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func BenchmarkStatus(b *testing.B) {
	vg := open(b)
	if err := vg.CreateSnapshot(origin, "bench-status", SnapshotOptions{SnapSize: 8 * mib}); err != nil {
		b.Fatal(err)
	}
	defer vg.Delete("bench-status")
	b.Run("lvsnap", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := vg.Status("bench-status"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("exec_lvs", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			out := sh(b, "lvs", "--noheadings", "--units", "b", "--nosuffix", "--separator", ",",
				"-o", "lv_name,origin,lv_size,data_percent,lv_attr,lv_time", testVG+"/bench-status")
			if f := strings.Split(strings.TrimSpace(out), ","); len(f) != 6 || f[0] != "bench-status" {
				b.Fatalf("lvs: %q", out)
			}
		}
	})
}
