package lvsnap

/*
#include <stdint.h>
*/
import "C"

import "runtime/cgo"

// progress is what Restore's C callback reaches through its cgo.Handle.
type progress struct {
	f func(done, total uint64)
	// A panic of f, re-raised once the library has returned: a Go panic
	// must not unwind through the library's frames (the VG lock and the
	// half-made LV would be left behind).
	panicked interface{}
}

// lvsnapGoProgress is the C progress callback of Restore: ctx is the
// cgo.Handle of a *progress.
//
//export lvsnapGoProgress
func lvsnapGoProgress(done, total C.uint64_t, ctx C.uintptr_t) {
	p := cgo.Handle(ctx).Value().(*progress)
	if p.panicked != nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			p.panicked = r
		}
	}()
	p.f(uint64(done), uint64(total))
}
