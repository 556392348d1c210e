// Package lvsnap gives Go programs LVM volume snapshots without the lvm
// command: create, status, list, watch, rollback (merge), restore and delete,
// through liblvsnap's C ABI (cgo; build with PKG_CONFIG_PATH pointing at
// lvsnap.pc, see ffi/install.sh).
//
//	vg, err := lvsnap.Open("vg0")
//	if err != nil { ... }
//	defer vg.Close()
//	err = vg.CreateSnapshot("pvc-1", "snapcontent-1", lvsnap.SnapshotOptions{SnapSize: 1 << 30})
//	st, err := vg.Status("snapcontent-1")
//	if errors.Is(err, lvsnap.ErrNotFound) { ... }
//
// A *VG may be used from several goroutines at once; operations that read or
// change the volume group's metadata hold LVM's own lock on it, so they run
// one after another, also against lvm commands. The calls block their OS
// thread while they run.
package lvsnap

/*
#cgo pkg-config: lvsnap
#include <stdint.h>
#include <stdlib.h>
#include <lvsnap.h>

extern void lvsnapGoProgress(uint64_t done, uint64_t total, uintptr_t ctx);

static void lvsnap_go_progress(uint64_t done, uint64_t total, void *ctx) {
	lvsnapGoProgress(done, total, (uintptr_t)ctx);
}

// ctx is a cgo.Handle, or 0 for no callback.
static int lvsnap_go_restore(lvsnap_vg *vg, const char *snap, const char *lv, uint64_t size,
			     uintptr_t ctx, lvsnap_error **err) {
	return lvsnap_restore(vg, snap, lv, size, ctx ? lvsnap_go_progress : NULL, (void *)ctx, err);
}
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// The kinds of error (lvsnap's ErrorKind). Every error this package returns
// is an *Error that matches one of them with errors.Is.
var (
	ErrNotFound        = errors.New("not found")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrBusy            = errors.New("busy")
	ErrNoSpace         = errors.New("no space")
	ErrUnsupported     = errors.New("unsupported")
	ErrCorrupt         = errors.New("corrupt")
	ErrIO              = errors.New("I/O error")
)

// Error is a failed lvsnap call: the operation, the library's error code
// (LVSNAP_E_*) and its message. errors.Is(err, ErrNotFound) and the like
// match its kind.
type Error struct {
	Op      string
	Code    int
	Message string
}

func (e *Error) Error() string { return "lvsnap " + e.Op + ": " + e.Message }

// Unwrap gives the kind, for errors.Is.
func (e *Error) Unwrap() error { return kindOf(e.Code) }

func kindOf(code int) error {
	switch code {
	case C.LVSNAP_E_NOT_FOUND:
		return ErrNotFound
	case C.LVSNAP_E_INVALID_ARGUMENT:
		return ErrInvalidArgument
	case C.LVSNAP_E_BUSY:
		return ErrBusy
	case C.LVSNAP_E_NO_SPACE:
		return ErrNoSpace
	case C.LVSNAP_E_UNSUPPORTED:
		return ErrUnsupported
	case C.LVSNAP_E_CORRUPT:
		return ErrCorrupt
	default:
		return ErrIO
	}
}

// failure turns a negative return and its error object into an *Error.
func failure(op string, rc C.int, cerr *C.lvsnap_error) error {
	e := &Error{Op: op, Code: int(rc)}
	if cerr != nil {
		e.Message = C.GoString(C.lvsnap_error_message(cerr))
		C.lvsnap_error_free(cerr)
	}
	return e
}

// Version is liblvsnap's version.
func Version() string { return C.GoString(C.lvsnap_version()) }

// VG is an open volume group.
type VG struct {
	name string
	mu   sync.RWMutex // Close waits for calls in flight
	p    *C.lvsnap_vg
}

// Open opens volume group name, found by scanning the system's block
// devices (ErrNotFound if no PV holds it). Close it when done.
func Open(name string) (*VG, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var p *C.lvsnap_vg
	var cerr *C.lvsnap_error
	if rc := C.lvsnap_vg_open(cname, &p, &cerr); rc < 0 {
		return nil, failure("open "+name, rc, cerr)
	}
	vg := &VG{name: name, p: p}
	runtime.SetFinalizer(vg, (*VG).Close)
	return vg, nil
}

// Name is the volume group's name.
func (v *VG) Name() string { return v.name }

// Close frees the handle. Later calls fail with ErrInvalidArgument.
func (v *VG) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.p != nil {
		C.lvsnap_vg_free(v.p)
		v.p = nil
	}
	runtime.SetFinalizer(v, nil)
	return nil
}

// handle returns the C handle under the read lock; call the returned
// func when done.
func (v *VG) handle(op string) (*C.lvsnap_vg, func(), error) {
	v.mu.RLock()
	if v.p == nil {
		v.mu.RUnlock()
		return nil, nil, &Error{Op: op, Code: C.LVSNAP_E_INVALID_ARGUMENT, Message: "the VG is closed"}
	}
	return v.p, v.mu.RUnlock, nil
}

// SnapshotOptions says how to create a snapshot; the zero value is the
// default: a read-only COW snapshot whose store is as large as its origin,
// with 4 KiB chunks.
type SnapshotOptions struct {
	// SnapSize is the COW store's size in bytes, rounded up to whole
	// extents; 0 means the origin's size. Ignored for thin snapshots.
	SnapSize uint64
	// SnapSizePercent is the store's size as a percentage of the origin
	// (1 to 10000, as lvcreate -l N%ORIGIN); used instead of SnapSize
	// when non-zero.
	SnapSizePercent uint32
	// ChunkSize is the COW chunk size in bytes: a power of two from 4 KiB
	// to 512 KiB; 0 means 4 KiB.
	ChunkSize uint64
	// Writable makes the snapshot writable.
	Writable bool
}

// CreateSnapshot creates snapshot name of LV origin: a COW snapshot, or a
// thin one when origin is thin. All or nothing.
func (v *VG) CreateSnapshot(origin, name string, opts SnapshotOptions) error {
	op := "create " + v.name + "/" + name
	p, done, err := v.handle(op)
	if err != nil {
		return err
	}
	defer done()
	corigin, cname := C.CString(origin), C.CString(name)
	defer C.free(unsafe.Pointer(corigin))
	defer C.free(unsafe.Pointer(cname))
	copts := C.lvsnap_snapshot_options{
		snapsize_bytes:   C.uint64_t(opts.SnapSize),
		snapsize_percent: C.uint32_t(opts.SnapSizePercent),
		chunk_bytes:      C.uint64_t(opts.ChunkSize),
		writable:         C.bool(opts.Writable),
	}
	var cerr *C.lvsnap_error
	if rc := C.lvsnap_snapshot_create(p, corigin, cname, &copts, &cerr); rc < 0 {
		return failure(op, rc, cerr)
	}
	return nil
}

// State is a snapshot's readiness, as HwameiStor's LocalVolumeSnapshot
// status names it.
type State string

// The snapshot states.
const (
	StateReady    State = "Ready"    // valid and not being merged
	StateNotReady State = "NotReady" // invalid, or merging into its origin
)

// Status is one snapshot's status: what a LocalVolumeSnapshot's status
// needs, with no parsing left to do.
type Status struct {
	Name         string
	VG           string
	SourceVolume string
	// AllocatedCapacityBytes is the COW store's size (a thin snapshot's
	// virtual size).
	AllocatedCapacityBytes int64
	Thin                   bool
	State                  State
	Merging                bool
	// Invalid: the COW store overflowed and the snapshot's data is lost.
	Invalid bool
	// DataPercent is how full the store is, as lvs shows it; negative when
	// unknown (the snapshot is not active).
	DataPercent float64
	// CreationTime is the snapshot LV's creation time (whole seconds, UTC).
	CreationTime time.Time
}

func capacity(b uint64) int64 {
	if b > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(b)
}

// Status reports snapshot name (ErrNotFound if there is none).
func (v *VG) Status(name string) (Status, error) {
	op := "status " + v.name + "/" + name
	p, done, err := v.handle(op)
	if err != nil {
		return Status{}, err
	}
	defer done()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var info C.lvsnap_snapshot_info
	var cerr *C.lvsnap_error
	if rc := C.lvsnap_snapshot_status(p, cname, &info, &cerr); rc < 0 {
		return Status{}, failure(op, rc, cerr)
	}
	st := Status{
		Name:                   C.GoString(&info.name[0]),
		VG:                     C.GoString(&info.vg[0]),
		SourceVolume:           C.GoString(&info.source_volume[0]),
		AllocatedCapacityBytes: capacity(uint64(info.capacity_bytes)),
		Thin:                   bool(info.thin),
		State:                  StateReady,
		Merging:                bool(info.merging),
		Invalid:                bool(info.invalid),
		DataPercent:            float64(info.data_percent),
		CreationTime:           time.Unix(int64(info.creation_time), 0).UTC(),
	}
	if info.state != C.LVSNAP_STATE_READY {
		st.State = StateNotReady
	}
	return st, nil
}

// Snapshots reports every snapshot of the volume group.
func (v *VG) Snapshots() ([]Status, error) {
	op := "list " + v.name
	p, done, err := v.handle(op)
	if err != nil {
		return nil, err
	}
	defer done()
	var out *C.char
	var cerr *C.lvsnap_error
	if rc := C.lvsnap_snapshot_list_json(p, &out, &cerr); rc < 0 {
		return nil, failure(op, rc, cerr)
	}
	text := C.GoString(out)
	C.lvsnap_string_free(out)
	var rows []struct {
		Name          string   `json:"name"`
		VG            string   `json:"vg"`
		SourceVolume  string   `json:"source_volume"`
		CapacityBytes uint64   `json:"capacity_bytes"`
		Thin          bool     `json:"thin"`
		State         State    `json:"state"`
		Merging       bool     `json:"merging"`
		Invalid       bool     `json:"invalid"`
		DataPercent   *float64 `json:"data_percent"`
		CreationTime  string   `json:"creation_time"`
	}
	if err := json.Unmarshal([]byte(text), &rows); err != nil {
		return nil, &Error{Op: op, Code: C.LVSNAP_E_CORRUPT, Message: "the library's JSON: " + err.Error()}
	}
	list := make([]Status, 0, len(rows))
	for _, r := range rows {
		t, err := time.Parse(time.RFC3339, r.CreationTime)
		if err != nil {
			return nil, &Error{Op: op, Code: C.LVSNAP_E_CORRUPT, Message: "creation_time: " + err.Error()}
		}
		pct := -1.0
		if r.DataPercent != nil {
			pct = *r.DataPercent
		}
		list = append(list, Status{
			Name: r.Name, VG: r.VG, SourceVolume: r.SourceVolume,
			AllocatedCapacityBytes: capacity(r.CapacityBytes), Thin: r.Thin, State: r.State,
			Merging: r.Merging, Invalid: r.Invalid, DataPercent: pct, CreationTime: t.UTC(),
		})
	}
	return list, nil
}

// Delete deletes snapshot name: its devices and its metadata.
func (v *VG) Delete(name string) error {
	op := "delete " + v.name + "/" + name
	p, done, err := v.handle(op)
	if err != nil {
		return err
	}
	defer done()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var cerr *C.lvsnap_error
	if rc := C.lvsnap_snapshot_delete(p, cname, &cerr); rc < 0 {
		return failure(op, rc, cerr)
	}
	return nil
}

// RestoreOptions says how to restore; the zero value makes the new LV as
// large as the snapshot and reports no progress.
type RestoreOptions struct {
	// Size is the new LV's size in bytes (rounded up to whole extents, never
	// below the snapshot's); 0 means the snapshot's size.
	Size uint64
	// Progress, if set, is called after each buffer copied and at the end,
	// on the calling goroutine. If it panics, it is not called again, the
	// restore runs to its end, and Restore re-raises the panic.
	Progress func(done, total uint64)
}

// Restore restores snapshot into a new, active LV newLV and returns when
// done: from a COW snapshot by copying its data, from a thin snapshot as a
// thin snapshot of it. A failure midway removes the new LV.
func (v *VG) Restore(snapshot, newLV string, opts RestoreOptions) error {
	op := "restore " + v.name + "/" + snapshot + " to " + newLV
	p, done, err := v.handle(op)
	if err != nil {
		return err
	}
	defer done()
	csnap, clv := C.CString(snapshot), C.CString(newLV)
	defer C.free(unsafe.Pointer(csnap))
	defer C.free(unsafe.Pointer(clv))
	var ctx C.uintptr_t
	var prog *progress
	if opts.Progress != nil {
		prog = &progress{f: opts.Progress}
		h := cgo.NewHandle(prog)
		defer h.Delete()
		ctx = C.uintptr_t(h)
	}
	var cerr *C.lvsnap_error
	rc := C.lvsnap_go_restore(p, csnap, clv, C.uint64_t(opts.Size), ctx, &cerr)
	if prog != nil && prog.panicked != nil {
		if rc < 0 {
			C.lvsnap_error_free(cerr)
		}
		panic(prog.panicked)
	}
	if rc < 0 {
		return failure(op, rc, cerr)
	}
	return nil
}

// WatchEvent is how a Watch ended.
type WatchEvent int

// The ends of a Watch.
const (
	WatchInvalid  WatchEvent = C.LVSNAP_WATCH_INVALID   // the snapshot turned invalid
	WatchPercent  WatchEvent = C.LVSNAP_WATCH_PERCENT   // data_percent reached the threshold
	WatchTimedOut WatchEvent = C.LVSNAP_WATCH_TIMED_OUT // neither, within the timeout
)

func (e WatchEvent) String() string {
	switch e {
	case WatchInvalid:
		return "Invalid"
	case WatchPercent:
		return "Percent"
	case WatchTimedOut:
		return "TimedOut"
	}
	return fmt.Sprintf("WatchEvent(%d)", int(e))
}

// Watch waits up to timeout for active COW snapshot name to turn invalid
// or, when percent is from 0 to 100, for its data_percent to reach percent
// (a negative percent: invalid only). With WatchPercent it also returns the
// data_percent seen.
func (v *VG) Watch(name string, percent float64, timeout time.Duration) (WatchEvent, float64, error) {
	op := "watch " + v.name + "/" + name
	p, done, err := v.handle(op)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	ms := timeout.Milliseconds()
	if ms < 0 {
		ms = 0
	}
	var seen C.double
	var cerr *C.lvsnap_error
	rc := C.lvsnap_watch_wait(p, cname, C.double(percent), C.uint64_t(ms), &seen, &cerr)
	if rc < 0 {
		return 0, 0, failure(op, rc, cerr)
	}
	return WatchEvent(rc), float64(seen), nil
}

// RollbackState is where a rollback stands (HwameiStor's states).
type RollbackState int

// The rollback states.
const (
	RollbackSubmitted  RollbackState = C.LVSNAP_ROLLBACK_SUBMITTED
	RollbackInProgress RollbackState = C.LVSNAP_ROLLBACK_IN_PROGRESS
	RollbackDeferred   RollbackState = C.LVSNAP_ROLLBACK_DEFERRED
	RollbackCompleted  RollbackState = C.LVSNAP_ROLLBACK_COMPLETED
	RollbackFailed     RollbackState = C.LVSNAP_ROLLBACK_FAILED
)

func (s RollbackState) String() string {
	switch s {
	case RollbackSubmitted:
		return "Submitted"
	case RollbackInProgress:
		return "InProgress"
	case RollbackDeferred:
		return "Deferred"
	case RollbackCompleted:
		return "Completed"
	case RollbackFailed:
		return "Failed"
	}
	return fmt.Sprintf("RollbackState(%d)", int(s))
}

// Settled reports whether waiting longer changes nothing (Completed, Failed
// or Deferred).
func (s RollbackState) Settled() bool {
	return s != RollbackSubmitted && s != RollbackInProgress
}

// Rollback is a rollback of an origin to one of its COW snapshots. Close
// it when done; that does not stop the merge.
type Rollback struct {
	op string
	mu sync.Mutex
	p  *C.lvsnap_rollback
}

// Rollback starts rolling the origin of COW snapshot name back to it by
// merging (lvconvert --merge), or resumes a recorded one, and returns at
// once. Poll or Wait the result.
func (v *VG) Rollback(name string) (*Rollback, error) {
	op := "rollback " + v.name + "/" + name
	p, done, err := v.handle(op)
	if err != nil {
		return nil, err
	}
	defer done()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var rb *C.lvsnap_rollback
	var cerr *C.lvsnap_error
	if rc := C.lvsnap_rollback_start(p, cname, &rb, &cerr); rc < 0 {
		return nil, failure(op, rc, cerr)
	}
	r := &Rollback{op: op, p: rb}
	runtime.SetFinalizer(r, (*Rollback).Close)
	return r, nil
}

func (r *Rollback) call(f func(*C.lvsnap_rollback, **C.lvsnap_error) C.int) (RollbackState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p == nil {
		return 0, &Error{Op: r.op, Code: C.LVSNAP_E_INVALID_ARGUMENT, Message: "the rollback is closed"}
	}
	var cerr *C.lvsnap_error
	rc := f(r.p, &cerr)
	if rc < 0 {
		return 0, failure(r.op, rc, cerr)
	}
	return RollbackState(rc), nil
}

// Poll looks at the merge once and returns the state; a merge found
// complete is finished here.
func (r *Rollback) Poll() (RollbackState, error) {
	return r.call(func(p *C.lvsnap_rollback, e **C.lvsnap_error) C.int { return C.lvsnap_rollback_poll(p, e) })
}

// Wait blocks until the rollback is Completed, Failed or Deferred.
func (r *Rollback) Wait() (RollbackState, error) {
	return r.call(func(p *C.lvsnap_rollback, e **C.lvsnap_error) C.int { return C.lvsnap_rollback_wait(p, e) })
}

// Percent is how much of the merge was done when last observed (0 to 100).
func (r *Rollback) Percent() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p == nil {
		return 0
	}
	return float64(C.lvsnap_rollback_percent(r.p))
}

// Reason says why the last observed state is Deferred or Failed ("" when
// there is no reason).
func (r *Rollback) Reason() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p == nil {
		return ""
	}
	s := C.lvsnap_rollback_reason(r.p)
	if s == nil {
		return ""
	}
	defer C.lvsnap_string_free(s)
	return C.GoString(s)
}

// Close frees the handle; the merge goes on in the kernel.
func (r *Rollback) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p != nil {
		C.lvsnap_rollback_free(r.p)
		r.p = nil
	}
	runtime.SetFinalizer(r, nil)
	return nil
}
