/*
 * lvsnap's C ABI: LVM volume snapshots without the `lvm` command, from
 * `liblvsnap.so` or `liblvsnap.a` (`pkg-config --cflags --libs lvsnap`).
 *
 * Conventions, for every function:
 * - A fallible function returns `int`: 0 (or a state >= 0) on success, or a
 *   negative `LVSNAP_E_*` kind. Its last parameter is `lvsnap_error **err`,
 *   which may be NULL; when it is not, `*err` is set to NULL on success and
 *   to a new error object on failure (free it with `lvsnap_error_free`).
 * - Strings in are NUL-terminated UTF-8; strings returned are the caller's,
 *   freed with `lvsnap_string_free` (except `lvsnap_version`'s).
 * - No panic crosses the boundary: one is caught and returned as
 *   `LVSNAP_E_IO` with a message saying so.
 *
 * Thread safety: an `lvsnap_vg` may be used from several threads at once;
 * an operation that reads or changes the VG's metadata holds LVM's own
 * lock on it (as `lvm` commands do), so such operations on one VG, from
 * threads, processes or `lvm`, run one after another. An `lvsnap_rollback`
 * may be shared too: a mutex inside serializes its calls (a wait holds it
 * until the rollback settles). An `lvsnap_error` is immutable. Freeing an object while
 * another thread still uses it is the caller's bug, as in any C API.
 *
 * Generated from ffi/src/lib.rs by cbindgen (ffi/build.rs): do not edit.
 */

#ifndef LVSNAP_H
#define LVSNAP_H



#include <stdbool.h>
#include <stdint.h>

// A volume group, a snapshot or an LV does not exist.
#define LVSNAP_E_NOT_FOUND -1

// A malformed or out-of-range argument (a NULL pointer, a bad name or size).
#define LVSNAP_E_INVALID_ARGUMENT -2

// In use, or in a state that forbids the operation now.
#define LVSNAP_E_BUSY -3

// Not enough free space for the operation.
#define LVSNAP_E_NO_SPACE -4

// A valid request lvsnap does not carry out.
#define LVSNAP_E_UNSUPPORTED -5

// On-disk or kernel data that fails its checks.
#define LVSNAP_E_CORRUPT -6

// An I/O or system call failure (also: an internal error caught at the boundary).
#define LVSNAP_E_IO -7

// `lvsnap_snapshot_info.state`: valid and not being merged.
#define LVSNAP_STATE_READY 0

// `lvsnap_snapshot_info.state`: invalid, or merging into its origin.
#define LVSNAP_STATE_NOT_READY 1

// Rollback state: recorded; the kernel has not started merging.
#define LVSNAP_ROLLBACK_SUBMITTED 0

// Rollback state: the kernel is merging (see `lvsnap_rollback_percent`).
#define LVSNAP_ROLLBACK_IN_PROGRESS 1

// Rollback state: recorded but cannot start now (see `lvsnap_rollback_reason`);
// start the rollback again once the origin is free.
#define LVSNAP_ROLLBACK_DEFERRED 2

// Rollback state: the origin holds the snapshot's data; the snapshot is gone.
#define LVSNAP_ROLLBACK_COMPLETED 3

// Rollback state: the kernel stopped the merge (see `lvsnap_rollback_reason`).
#define LVSNAP_ROLLBACK_FAILED 4

// `lvsnap_watch_wait`: the snapshot is invalid (its COW store overflowed).
#define LVSNAP_WATCH_INVALID 0

// `lvsnap_watch_wait`: data_percent reached the threshold.
#define LVSNAP_WATCH_PERCENT 1

// `lvsnap_watch_wait`: neither happened before the timeout.
#define LVSNAP_WATCH_TIMED_OUT 2

// Size of the name fields of `lvsnap_snapshot_info`, with the NUL (LVM
// names are at most 127 bytes).
#define LVSNAP_NAME_MAX 128

// An error: its `LVSNAP_E_*` code and a message. Free with `lvsnap_error_free`.
typedef struct lvsnap_error lvsnap_error;

// A rollback in progress. Free with `lvsnap_rollback_free` (that does not
// stop the merge). It keeps what it needs of its volume group: it may
// outlive the `lvsnap_vg` it came from.
typedef struct lvsnap_rollback lvsnap_rollback;

// An open volume group. Free with `lvsnap_vg_free`. Safe to use from
// several threads at once.
typedef struct lvsnap_vg lvsnap_vg;

// How to create a snapshot. All zero means the defaults: a read-only COW
// snapshot whose store is as large as its origin, with 4 KiB chunks.
typedef struct lvsnap_snapshot_options {
  // The COW store's size in bytes, rounded up to whole extents; 0: the
  // origin's size. Ignored for thin snapshots.
  uint64_t snapsize_bytes;
  // The COW store's size as a percentage of the origin (1 to 10000, as
  // `lvcreate -l N%ORIGIN`); used instead of `snapsize_bytes` when non-zero.
  uint32_t snapsize_percent;
  // The COW chunk size in bytes, a power of two from 4 KiB to 512 KiB; 0: 4 KiB.
  uint64_t chunk_bytes;
  // Make the snapshot writable (default read-only).
  bool writable;
} lvsnap_snapshot_options;

// One snapshot's status (the keys of `lvsnap list --json`).
typedef struct lvsnap_snapshot_info {
  // The snapshot LV's name.
  char name[LVSNAP_NAME_MAX];
  // The volume group's name.
  char vg[LVSNAP_NAME_MAX];
  // The origin LV's name.
  char source_volume[LVSNAP_NAME_MAX];
  // The COW store's size (a thin snapshot's virtual size), in bytes.
  uint64_t capacity_bytes;
  // A thin snapshot rather than a COW one.
  bool thin;
  // `LVSNAP_STATE_READY` or `LVSNAP_STATE_NOT_READY`.
  int state;
  // A merge into the origin is pending or running.
  bool merging;
  // The COW store overflowed; the snapshot's data is lost.
  bool invalid;
  // How full the store is, in percent, as `lvs` shows; negative when
  // unknown (the snapshot is not active).
  double data_percent;
  // The snapshot LV's creation time, in seconds since the Unix epoch.
  int64_t creation_time;
} lvsnap_snapshot_info;

// Restore progress: `done` of `total` bytes copied so far; `ctx` is the
// pointer given to `lvsnap_restore`. Called on the restoring thread.
typedef void (*lvsnap_progress_fn)(uint64_t done, uint64_t total, void *ctx);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// lvsnap's version, as "MAJOR.MINOR.PATCH". Static: do not free.
const char *lvsnap_version(void);

// The error's `LVSNAP_E_*` code (`LVSNAP_E_INVALID_ARGUMENT` for NULL).
//
// # Safety
// `err` is NULL or an error this library returned and not yet freed.
int lvsnap_error_code(const struct lvsnap_error *err);

// The error's message, borrowed: valid until the error is freed ("" for NULL).
//
// # Safety
// `err` is NULL or an error this library returned and not yet freed.
const char *lvsnap_error_message(const struct lvsnap_error *err);

// Frees an error (NULL is allowed).
//
// # Safety
// `err` is NULL or an error this library returned, not freed before.
void lvsnap_error_free(struct lvsnap_error *err);

// Frees a string this library returned (NULL is allowed).
//
// # Safety
// `s` is NULL or a string this library returned, not freed before.
void lvsnap_string_free(char *s);

// Opens volume group `vg`, found by scanning the system's block devices.
// On success `*out` is a new handle (free with `lvsnap_vg_free`).
// `LVSNAP_E_NOT_FOUND` if no PV holds it.
//
// # Safety
// `vg` is a NUL-terminated string; `out` is valid for a write; `err` is
// NULL or valid for a write.
int lvsnap_vg_open(const char *vg, struct lvsnap_vg **out, struct lvsnap_error **err);

// Frees a volume group handle (NULL is allowed).
//
// # Safety
// `vg` is NULL or a handle from `lvsnap_vg_open`, not freed before, and no
// other thread is using it.
void lvsnap_vg_free(struct lvsnap_vg *vg);

// Creates snapshot `name` of LV `origin`: a COW snapshot, or a thin one
// when the origin is thin. `opts` may be NULL (the defaults). All or
// nothing: on failure no device and no metadata change is left.
//
// # Safety
// `vg` is a live handle; `origin` and `name` are NUL-terminated strings;
// `opts` is NULL or valid for a read; `err` is NULL or valid for a write.
int lvsnap_snapshot_create(struct lvsnap_vg *vg,
                           const char *origin,
                           const char *name,
                           const struct lvsnap_snapshot_options *opts,
                           struct lvsnap_error **err);

// Fills `*out` with the status of snapshot `name`.
//
// # Safety
// `vg` is a live handle; `name` a NUL-terminated string; `out` valid for a
// write; `err` NULL or valid for a write.
int lvsnap_snapshot_status(struct lvsnap_vg *vg,
                           const char *name,
                           struct lvsnap_snapshot_info *out,
                           struct lvsnap_error **err);

// Sets `*out` to a JSON array of the VG's snapshots, one object each with
// the keys of `lvsnap list --json` (`name, vg, source_volume,
// capacity_bytes, thin, state, merging, invalid, data_percent,
// creation_time`). Free it with `lvsnap_string_free`.
//
// # Safety
// `vg` is a live handle; `out` valid for a write; `err` NULL or valid for
// a write.
int lvsnap_snapshot_list_json(struct lvsnap_vg *vg, char **out, struct lvsnap_error **err);

// Deletes snapshot `name` (its devices and its metadata).
//
// # Safety
// `vg` is a live handle; `name` a NUL-terminated string; `err` NULL or
// valid for a write.
int lvsnap_snapshot_delete(struct lvsnap_vg *vg, const char *name, struct lvsnap_error **err);

// Starts rolling the origin of COW snapshot `name` back to it by merging
// (`lvconvert --merge`), or resumes a recorded one; returns at once. On
// success `*out` is a new rollback (free with `lvsnap_rollback_free`):
// poll it, or wait for it.
//
// # Safety
// `vg` is a live handle; `name` a NUL-terminated string; `out` valid for a
// write; `err` NULL or valid for a write.
int lvsnap_rollback_start(struct lvsnap_vg *vg,
                          const char *name,
                          struct lvsnap_rollback **out,
                          struct lvsnap_error **err);

// Looks at the merge once and returns the state (`LVSNAP_ROLLBACK_*`,
// >= 0), or a negative error. A merge found complete is finished here.
//
// # Safety
// `rb` is a live rollback; `err` NULL or valid for a write.
int lvsnap_rollback_poll(struct lvsnap_rollback *rb, struct lvsnap_error **err);

// Blocks until the rollback is Completed, Failed or Deferred and returns
// that state (>= 0), or a negative error.
//
// # Safety
// `rb` is a live rollback; `err` NULL or valid for a write.
int lvsnap_rollback_wait(struct lvsnap_rollback *rb, struct lvsnap_error **err);

// How much of the merge is done in the state last observed, 0 to 100
// (100 once completed; negative for NULL).
//
// # Safety
// `rb` is NULL or a live rollback.
double lvsnap_rollback_percent(const struct lvsnap_rollback *rb);

// Why the last observed state is Deferred or Failed, as a new string (free
// with `lvsnap_string_free`); NULL when there is no reason.
//
// # Safety
// `rb` is NULL or a live rollback.
char *lvsnap_rollback_reason(const struct lvsnap_rollback *rb);

// Frees a rollback (NULL is allowed); the merge goes on in the kernel.
//
// # Safety
// `rb` is NULL or a rollback from `lvsnap_rollback_start`, not freed
// before, and no other thread is using it.
void lvsnap_rollback_free(struct lvsnap_rollback *rb);

// Restores snapshot `snapshot` into a new, active LV `new_lv` of
// `size_bytes` (0: the snapshot's size; never below it) and returns when
// done. From a COW snapshot the data is copied, calling `progress` (may be
// NULL) after each buffer and at the end; from a thin snapshot the new LV
// is a thin snapshot of it. A failure midway removes the new LV.
//
// # Safety
// `vg` is a live handle; `snapshot` and `new_lv` NUL-terminated strings;
// `progress` NULL or a function safe to call with `ctx` from this thread;
// `err` NULL or valid for a write.
int lvsnap_restore(struct lvsnap_vg *vg,
                   const char *snapshot,
                   const char *new_lv,
                   uint64_t size_bytes,
                   lvsnap_progress_fn progress,
                   void *ctx,
                   struct lvsnap_error **err);

// Waits up to `timeout_ms` for active COW snapshot `name` to turn invalid
// or, when `percent` is from 0 to 100, for its data_percent to reach
// `percent` (a negative `percent`: invalid only). Returns
// `LVSNAP_WATCH_INVALID`, `LVSNAP_WATCH_PERCENT` (then `*percent_out`, if
// not NULL, is the value seen) or `LVSNAP_WATCH_TIMED_OUT`, or a negative
// error.
//
// # Safety
// `vg` is a live handle; `name` a NUL-terminated string; `percent_out`
// NULL or valid for a write; `err` NULL or valid for a write.
int lvsnap_watch_wait(struct lvsnap_vg *vg,
                      const char *name,
                      double percent,
                      uint64_t timeout_ms,
                      double *percent_out,
                      struct lvsnap_error **err);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* LVSNAP_H */
