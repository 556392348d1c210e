package lvsnap

/*
#include <stdint.h>
*/
import "C"

import "runtime/cgo"

// lvsnapGoProgress is the C progress callback of Restore: ctx is the
// cgo.Handle of the caller's func.
//
//export lvsnapGoProgress
func lvsnapGoProgress(done, total C.uint64_t, ctx C.uintptr_t) {
	f := cgo.Handle(ctx).Value().(func(done, total uint64))
	f(uint64(done), uint64(total))
}
