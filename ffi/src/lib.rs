//! lvsnap's C ABI: LVM volume snapshots without the `lvm` command, from
//! `liblvsnap.so` or `liblvsnap.a` (`pkg-config --cflags --libs lvsnap`).
//!
//! Conventions, for every function:
//! - A fallible function returns `int`: 0 (or a state >= 0) on success, or a
//!   negative `LVSNAP_E_*` kind. Its last parameter is `lvsnap_error **err`,
//!   which may be NULL; when it is not, `*err` is set to NULL on success and
//!   to a new error object on failure (free it with `lvsnap_error_free`).
//! - Strings in are NUL-terminated UTF-8; strings returned are the caller's,
//!   freed with `lvsnap_string_free` (except `lvsnap_version`'s).
//! - No panic crosses the boundary: one is caught and returned as
//!   `LVSNAP_E_IO` with a message saying so.
//!
//! Thread safety: an `lvsnap_vg` may be used from several threads at once;
//! an operation that reads or changes the VG's metadata holds LVM's own
//! lock on it (as `lvm` commands do), so such operations on one VG, from
//! threads, processes or `lvm`, run one after another. An `lvsnap_rollback`
//! may be shared too: a mutex inside serializes its calls (a wait holds it
//! until the rollback settles). An `lvsnap_error` is immutable. Freeing an object while
//! another thread still uses it is the caller's bug, as in any C API.

#![allow(non_camel_case_types)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use lvsnap_core::snapshot::{
    RestoreOptions, Rollback, RollbackState, SnapSize, SnapshotOptions, SnapshotStatus, State,
    Until, VolumeGroup, WatchEvent,
};
use lvsnap_core::units::Bytes;
use lvsnap_core::{Error, ErrorKind};

/// A volume group, a snapshot or an LV does not exist.
pub const LVSNAP_E_NOT_FOUND: c_int = -1;
/// A malformed or out-of-range argument (a NULL pointer, a bad name or size).
pub const LVSNAP_E_INVALID_ARGUMENT: c_int = -2;
/// In use, or in a state that forbids the operation now.
pub const LVSNAP_E_BUSY: c_int = -3;
/// Not enough free space for the operation.
pub const LVSNAP_E_NO_SPACE: c_int = -4;
/// A valid request lvsnap does not carry out.
pub const LVSNAP_E_UNSUPPORTED: c_int = -5;
/// On-disk or kernel data that fails its checks.
pub const LVSNAP_E_CORRUPT: c_int = -6;
/// An I/O or system call failure (also: an internal error caught at the boundary).
pub const LVSNAP_E_IO: c_int = -7;

/// `lvsnap_snapshot_info.state`: valid and not being merged.
pub const LVSNAP_STATE_READY: c_int = 0;
/// `lvsnap_snapshot_info.state`: invalid, or merging into its origin.
pub const LVSNAP_STATE_NOT_READY: c_int = 1;

/// Rollback state: recorded; the kernel has not started merging.
pub const LVSNAP_ROLLBACK_SUBMITTED: c_int = 0;
/// Rollback state: the kernel is merging (see `lvsnap_rollback_percent`).
pub const LVSNAP_ROLLBACK_IN_PROGRESS: c_int = 1;
/// Rollback state: recorded but cannot start now (see `lvsnap_rollback_reason`);
/// start the rollback again once the origin is free.
pub const LVSNAP_ROLLBACK_DEFERRED: c_int = 2;
/// Rollback state: the origin holds the snapshot's data; the snapshot is gone.
pub const LVSNAP_ROLLBACK_COMPLETED: c_int = 3;
/// Rollback state: the kernel stopped the merge (see `lvsnap_rollback_reason`).
pub const LVSNAP_ROLLBACK_FAILED: c_int = 4;

/// `lvsnap_watch_wait`: the snapshot is invalid (its COW store overflowed).
pub const LVSNAP_WATCH_INVALID: c_int = 0;
/// `lvsnap_watch_wait`: data_percent reached the threshold.
pub const LVSNAP_WATCH_PERCENT: c_int = 1;
/// `lvsnap_watch_wait`: neither happened before the timeout.
pub const LVSNAP_WATCH_TIMED_OUT: c_int = 2;

/// Size of the name fields of `lvsnap_snapshot_info`, with the NUL (LVM
/// names are at most 127 bytes).
pub const LVSNAP_NAME_MAX: usize = 128;

/// An error: its `LVSNAP_E_*` code and a message. Free with `lvsnap_error_free`.
pub struct lvsnap_error {
    code: c_int,
    message: CString,
}

/// An open volume group. Free with `lvsnap_vg_free`. Safe to use from
/// several threads at once.
pub struct lvsnap_vg {
    vg: VolumeGroup,
}

/// A rollback in progress. Free with `lvsnap_rollback_free` (that does not
/// stop the merge). It keeps what it needs of its volume group: it may
/// outlive the `lvsnap_vg` it came from.
pub struct lvsnap_rollback {
    rb: Mutex<Rollback>,
}

/// How to create a snapshot. All zero means the defaults: a read-only COW
/// snapshot whose store is as large as its origin, with 4 KiB chunks.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct lvsnap_snapshot_options {
    /// The COW store's size in bytes, rounded up to whole extents; 0: the
    /// origin's size. Ignored for thin snapshots.
    pub snapsize_bytes: u64,
    /// The COW store's size as a percentage of the origin (1 to 10000, as
    /// `lvcreate -l N%ORIGIN`); used instead of `snapsize_bytes` when non-zero.
    pub snapsize_percent: u32,
    /// The COW chunk size in bytes, a power of two from 4 KiB to 512 KiB; 0: 4 KiB.
    pub chunk_bytes: u64,
    /// Make the snapshot writable (default read-only).
    pub writable: bool,
}

/// One snapshot's status (the keys of `lvsnap list --json`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct lvsnap_snapshot_info {
    /// The snapshot LV's name.
    pub name: [c_char; LVSNAP_NAME_MAX],
    /// The volume group's name.
    pub vg: [c_char; LVSNAP_NAME_MAX],
    /// The origin LV's name.
    pub source_volume: [c_char; LVSNAP_NAME_MAX],
    /// The COW store's size (a thin snapshot's virtual size), in bytes.
    pub capacity_bytes: u64,
    /// A thin snapshot rather than a COW one.
    pub thin: bool,
    /// `LVSNAP_STATE_READY` or `LVSNAP_STATE_NOT_READY`.
    pub state: c_int,
    /// A merge into the origin is pending or running.
    pub merging: bool,
    /// The COW store overflowed; the snapshot's data is lost.
    pub invalid: bool,
    /// How full the store is, in percent, as `lvs` shows; negative when
    /// unknown (the snapshot is not active).
    pub data_percent: f64,
    /// The snapshot LV's creation time, in seconds since the Unix epoch.
    pub creation_time: i64,
}

/// Restore progress: `done` of `total` bytes copied so far; `ctx` is the
/// pointer given to `lvsnap_restore`. Called on the restoring thread.
pub type lvsnap_progress_fn = Option<unsafe extern "C" fn(done: u64, total: u64, ctx: *mut c_void)>;

/// A failure on its way out: a code and a message.
struct Failure {
    code: c_int,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            code: code_of(e.kind()),
            message: e.to_string(),
        }
    }
}

fn code_of(kind: ErrorKind) -> c_int {
    match kind {
        ErrorKind::NotFound => LVSNAP_E_NOT_FOUND,
        ErrorKind::InvalidArgument => LVSNAP_E_INVALID_ARGUMENT,
        ErrorKind::Busy => LVSNAP_E_BUSY,
        ErrorKind::NoSpace => LVSNAP_E_NO_SPACE,
        ErrorKind::Unsupported => LVSNAP_E_UNSUPPORTED,
        ErrorKind::Corrupt => LVSNAP_E_CORRUPT,
        _ => LVSNAP_E_IO,
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        code: LVSNAP_E_INVALID_ARGUMENT,
        message: message.into(),
    }
}

/// Runs `f` at the boundary: catches a panic, stores a failure in `err`.
///
/// # Safety
/// `err` is NULL or valid for a write of one pointer.
unsafe fn boundary(
    err: *mut *mut lvsnap_error,
    f: impl FnOnce() -> Result<c_int, Failure>,
) -> c_int {
    let out = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Failure {
            code: LVSNAP_E_IO,
            message: format!("lvsnap internal error (a panic, caught): {what}"),
        })
    });
    let (code, error) = match out {
        Ok(code) => (code, ptr::null_mut()),
        Err(f) => {
            let message = CString::new(f.message.replace('\0', " ")).unwrap_or_default();
            (
                f.code,
                Box::into_raw(Box::new(lvsnap_error {
                    code: f.code,
                    message,
                })),
            )
        }
    };
    if err.is_null() {
        if !error.is_null() {
            // SAFETY: made by Box::into_raw just above and not shared.
            drop(unsafe { Box::from_raw(error) });
        }
    } else {
        // SAFETY: the caller passes a valid `lvsnap_error **` or NULL.
        unsafe { *err = error };
    }
    code
}

/// Borrows a C string argument as UTF-8.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives the call.
unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| invalid(format!("{what} is not UTF-8")))
}

/// Borrows an object argument.
///
/// # Safety
/// `p` is NULL or points at a live object made by this library.
unsafe fn obj_arg<'a, T>(p: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| invalid(format!("{what} is NULL")))
}

/// Locks a rollback's mutex; a panic caught while it was held leaves a
/// state that is still a valid last observation.
fn lock(rb: &lvsnap_rollback) -> MutexGuard<'_, Rollback> {
    rb.rb.lock().unwrap_or_else(|p| p.into_inner())
}

fn copy_name(dst: &mut [c_char; LVSNAP_NAME_MAX], src: &str) {
    let n = src.len().min(LVSNAP_NAME_MAX - 1);
    for (d, s) in dst.iter_mut().zip(&src.as_bytes()[..n]) {
        *d = *s as c_char;
    }
    dst[n] = 0;
}

fn info_of(s: &SnapshotStatus) -> lvsnap_snapshot_info {
    let mut info = lvsnap_snapshot_info {
        name: [0; LVSNAP_NAME_MAX],
        vg: [0; LVSNAP_NAME_MAX],
        source_volume: [0; LVSNAP_NAME_MAX],
        capacity_bytes: u64::try_from(*s.capacity).unwrap_or(u64::MAX),
        thin: s.thin,
        state: match s.state {
            State::Ready => LVSNAP_STATE_READY,
            State::NotReady => LVSNAP_STATE_NOT_READY,
        },
        merging: s.merging,
        invalid: s.invalid,
        data_percent: s.data_percent.unwrap_or(-1.0),
        creation_time: match s.creation_time.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
        },
    };
    copy_name(&mut info.name, &s.name);
    copy_name(&mut info.vg, &s.vg);
    copy_name(&mut info.source_volume, &s.source_volume);
    info
}

/// The JSON object of `lvsnap status --json`.
fn json_of(s: &SnapshotStatus) -> serde_json::Value {
    serde_json::json!({
        "name": s.name,
        "vg": s.vg,
        "source_volume": s.source_volume,
        "capacity_bytes": u64::try_from(*s.capacity).unwrap_or(u64::MAX),
        "thin": s.thin,
        "state": s.state.to_string(),
        "merging": s.merging,
        "invalid": s.invalid,
        "data_percent": s.data_percent,
        "creation_time": humantime::format_rfc3339_seconds(s.creation_time).to_string(),
    })
}

fn rollback_code(st: &RollbackState) -> c_int {
    match st {
        RollbackState::Submitted => LVSNAP_ROLLBACK_SUBMITTED,
        RollbackState::InProgress { .. } => LVSNAP_ROLLBACK_IN_PROGRESS,
        RollbackState::Deferred { .. } => LVSNAP_ROLLBACK_DEFERRED,
        RollbackState::Completed => LVSNAP_ROLLBACK_COMPLETED,
        RollbackState::Failed { .. } => LVSNAP_ROLLBACK_FAILED,
    }
}

fn string_out(s: &str) -> *mut c_char {
    CString::new(s.replace('\0', " "))
        .map(CString::into_raw)
        .unwrap_or(ptr::null_mut())
}

/// lvsnap's version, as "MAJOR.MINOR.PATCH". Static: do not free.
#[unsafe(no_mangle)]
pub extern "C" fn lvsnap_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The error's `LVSNAP_E_*` code (`LVSNAP_E_INVALID_ARGUMENT` for NULL).
///
/// # Safety
/// `err` is NULL or an error this library returned and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_error_code(err: *const lvsnap_error) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { err.as_ref() }.map_or(LVSNAP_E_INVALID_ARGUMENT, |e| e.code)
}

/// The error's message, borrowed: valid until the error is freed ("" for NULL).
///
/// # Safety
/// `err` is NULL or an error this library returned and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_error_message(err: *const lvsnap_error) -> *const c_char {
    // SAFETY: the caller's contract.
    unsafe { err.as_ref() }.map_or(c"".as_ptr(), |e| e.message.as_ptr())
}

/// Frees an error (NULL is allowed).
///
/// # Safety
/// `err` is NULL or an error this library returned, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_error_free(err: *mut lvsnap_error) {
    if !err.is_null() {
        // SAFETY: made by Box::into_raw in `boundary`; freed once.
        drop(unsafe { Box::from_raw(err) });
    }
}

/// Frees a string this library returned (NULL is allowed).
///
/// # Safety
/// `s` is NULL or a string this library returned, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: made by CString::into_raw; freed once.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Opens volume group `vg`, found by scanning the system's block devices.
/// On success `*out` is a new handle (free with `lvsnap_vg_free`).
/// `LVSNAP_E_NOT_FOUND` if no PV holds it.
///
/// # Safety
/// `vg` is a NUL-terminated string; `out` is valid for a write; `err` is
/// NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_vg_open(
    vg: *const c_char,
    out: *mut *mut lvsnap_vg,
    err: *mut *mut lvsnap_error,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        boundary(err, || {
            if out.is_null() {
                return Err(invalid("out is NULL"));
            }
            let name = str_arg(vg, "vg")?;
            let vg = VolumeGroup::open(name)?;
            *out = Box::into_raw(Box::new(lvsnap_vg { vg }));
            Ok(0)
        })
    }
}

/// Frees a volume group handle (NULL is allowed).
///
/// # Safety
/// `vg` is NULL or a handle from `lvsnap_vg_open`, not freed before, and no
/// other thread is using it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_vg_free(vg: *mut lvsnap_vg) {
    if !vg.is_null() {
        // SAFETY: made by Box::into_raw in lvsnap_vg_open; freed once.
        let vg = unsafe { Box::from_raw(vg) };
        let _ = catch_unwind(AssertUnwindSafe(|| drop(vg)));
    }
}

/// Creates snapshot `name` of LV `origin`: a COW snapshot, or a thin one
/// when the origin is thin. `opts` may be NULL (the defaults). All or
/// nothing: on failure no device and no metadata change is left.
///
/// # Safety
/// `vg` is a live handle; `origin` and `name` are NUL-terminated strings;
/// `opts` is NULL or valid for a read; `err` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_snapshot_create(
    vg: *mut lvsnap_vg,
    origin: *const c_char,
    name: *const c_char,
    opts: *const lvsnap_snapshot_options,
    err: *mut *mut lvsnap_error,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        boundary(err, || {
            let vg = obj_arg(vg, "vg")?;
            let origin = str_arg(origin, "origin")?;
            let name = str_arg(name, "name")?;
            let o = opts.as_ref().copied().unwrap_or_default();
            let mut so = SnapshotOptions::default().writable(o.writable);
            if o.snapsize_percent != 0 {
                if o.snapsize_percent > 10_000 {
                    return Err(invalid(format!(
                        "snapsize_percent {}: must be from 1 to 10000",
                        o.snapsize_percent
                    )));
                }
                so = so.snapsize(SnapSize::PercentOfOrigin(o.snapsize_percent));
            } else if o.snapsize_bytes != 0 {
                so = so.snapsize(SnapSize::Bytes(Bytes(u128::from(o.snapsize_bytes))));
            }
            if o.chunk_bytes != 0 {
                so = so.chunk_size(Bytes(u128::from(o.chunk_bytes)));
            }
            vg.vg.create_snapshot(origin, name, &so)?;
            Ok(0)
        })
    }
}

/// Fills `*out` with the status of snapshot `name`.
///
/// # Safety
/// `vg` is a live handle; `name` a NUL-terminated string; `out` valid for a
/// write; `err` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_snapshot_status(
    vg: *mut lvsnap_vg,
    name: *const c_char,
    out: *mut lvsnap_snapshot_info,
    err: *mut *mut lvsnap_error,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        boundary(err, || {
            let vg = obj_arg(vg, "vg")?;
            let name = str_arg(name, "name")?;
            if out.is_null() {
                return Err(invalid("out is NULL"));
            }
            let st = vg.vg.snapshot_status(name)?;
            out.write(info_of(&st));
            Ok(0)
        })
    }
}

/// Sets `*out` to a JSON array of the VG's snapshots, one object each with
/// the keys of `lvsnap list --json` (`name, vg, source_volume,
/// capacity_bytes, thin, state, merging, invalid, data_percent,
/// creation_time`). Free it with `lvsnap_string_free`.
///
/// # Safety
/// `vg` is a live handle; `out` valid for a write; `err` NULL or valid for
/// a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_snapshot_list_json(
    vg: *mut lvsnap_vg,
    out: *mut *mut c_char,
    err: *mut *mut lvsnap_error,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        boundary(err, || {
            let vg = obj_arg(vg, "vg")?;
            if out.is_null() {
                return Err(invalid("out is NULL"));
            }
            let list: Vec<_> = vg.vg.snapshots()?.iter().map(json_of).collect();
            *out = string_out(&serde_json::Value::Array(list).to_string());
            Ok(0)
        })
    }
}

/// Deletes snapshot `name` (its devices and its metadata).
///
/// # Safety
/// `vg` is a live handle; `name` a NUL-terminated string; `err` NULL or
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_snapshot_delete(
    vg: *mut lvsnap_vg,
    name: *const c_char,
    err: *mut *mut lvsnap_error,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        boundary(err, || {
            let vg = obj_arg(vg, "vg")?;
            vg.vg.delete_snapshot(str_arg(name, "name")?)?;
            Ok(0)
        })
    }
}

/// Starts rolling the origin of COW snapshot `name` back to it by merging
/// (`lvconvert --merge`), or resumes a recorded one; returns at once. On
/// success `*out` is a new rollback (free with `lvsnap_rollback_free`):
/// poll it, or wait for it.
///
/// # Safety
/// `vg` is a live handle; `name` a NUL-terminated string; `out` valid for a
/// write; `err` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_rollback_start(
    vg: *mut lvsnap_vg,
    name: *const c_char,
    out: *mut *mut lvsnap_rollback,
    err: *mut *mut lvsnap_error,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        boundary(err, || {
            let vg = obj_arg(vg, "vg")?;
            let name = str_arg(name, "name")?;
            if out.is_null() {
                return Err(invalid("out is NULL"));
            }
            let rb = vg.vg.rollback(name)?;
            *out = Box::into_raw(Box::new(lvsnap_rollback { rb: Mutex::new(rb) }));
            Ok(0)
        })
    }
}

/// Looks at the merge once and returns the state (`LVSNAP_ROLLBACK_*`,
/// >= 0), or a negative error. A merge found complete is finished here.
///
/// # Safety
/// `rb` is a live rollback; `err` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_rollback_poll(
    rb: *mut lvsnap_rollback,
    err: *mut *mut lvsnap_error,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        boundary(err, || {
            let rb = obj_arg(rb, "rb")?;
            Ok(rollback_code(&lock(rb).poll()?))
        })
    }
}

/// Blocks until the rollback is Completed, Failed or Deferred and returns
/// that state (>= 0), or a negative error.
///
/// # Safety
/// `rb` is a live rollback; `err` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_rollback_wait(
    rb: *mut lvsnap_rollback,
    err: *mut *mut lvsnap_error,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        boundary(err, || {
            let rb = obj_arg(rb, "rb")?;
            Ok(rollback_code(&lock(rb).wait()?))
        })
    }
}

/// How much of the merge is done in the state last observed, 0 to 100
/// (100 once completed; negative for NULL).
///
/// # Safety
/// `rb` is NULL or a live rollback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_rollback_percent(rb: *const lvsnap_rollback) -> f64 {
    // SAFETY: the caller's contract.
    let Some(rb) = (unsafe { rb.as_ref() }) else {
        return -1.0;
    };
    catch_unwind(AssertUnwindSafe(|| lock(rb).state().percent())).unwrap_or(-1.0)
}

/// Why the last observed state is Deferred or Failed, as a new string (free
/// with `lvsnap_string_free`); NULL when there is no reason.
///
/// # Safety
/// `rb` is NULL or a live rollback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_rollback_reason(rb: *const lvsnap_rollback) -> *mut c_char {
    // SAFETY: the caller's contract.
    let Some(rb) = (unsafe { rb.as_ref() }) else {
        return ptr::null_mut();
    };
    catch_unwind(AssertUnwindSafe(|| {
        lock(rb)
            .state()
            .reason()
            .map_or(ptr::null_mut(), string_out)
    }))
    .unwrap_or(ptr::null_mut())
}

/// Frees a rollback (NULL is allowed); the merge goes on in the kernel.
///
/// # Safety
/// `rb` is NULL or a rollback from `lvsnap_rollback_start`, not freed
/// before, and no other thread is using it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_rollback_free(rb: *mut lvsnap_rollback) {
    if !rb.is_null() {
        // SAFETY: made by Box::into_raw in lvsnap_rollback_start; freed once.
        let rb = unsafe { Box::from_raw(rb) };
        let _ = catch_unwind(AssertUnwindSafe(|| drop(rb)));
    }
}

/// Restores snapshot `snapshot` into a new, active LV `new_lv` of
/// `size_bytes` (0: the snapshot's size; never below it) and returns when
/// done. From a COW snapshot the data is copied, calling `progress` (may be
/// NULL) after each buffer and at the end; from a thin snapshot the new LV
/// is a thin snapshot of it. A failure midway removes the new LV.
///
/// # Safety
/// `vg` is a live handle; `snapshot` and `new_lv` NUL-terminated strings;
/// `progress` NULL or a function safe to call with `ctx` from this thread;
/// `err` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_restore(
    vg: *mut lvsnap_vg,
    snapshot: *const c_char,
    new_lv: *const c_char,
    size_bytes: u64,
    progress: lvsnap_progress_fn,
    ctx: *mut c_void,
    err: *mut *mut lvsnap_error,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        boundary(err, || {
            let vg = obj_arg(vg, "vg")?;
            let snapshot = str_arg(snapshot, "snapshot")?;
            let new_lv = str_arg(new_lv, "new_lv")?;
            let mut opts = RestoreOptions::default();
            if size_bytes != 0 {
                opts = opts.size(Bytes(u128::from(size_bytes)));
            }
            vg.vg.restore(snapshot, new_lv, &opts, |p| {
                if let Some(f) = progress {
                    let done = u64::try_from(*p.copied).unwrap_or(u64::MAX);
                    let total = u64::try_from(*p.total).unwrap_or(u64::MAX);
                    // The caller's contract makes `f(.., ctx)` safe to call.
                    f(done, total, ctx);
                }
            })?;
            Ok(0)
        })
    }
}

/// Waits up to `timeout_ms` for active COW snapshot `name` to turn invalid
/// or, when `percent` is from 0 to 100, for its data_percent to reach
/// `percent` (a negative `percent`: invalid only). Returns
/// `LVSNAP_WATCH_INVALID`, `LVSNAP_WATCH_PERCENT` (then `*percent_out`, if
/// not NULL, is the value seen) or `LVSNAP_WATCH_TIMED_OUT`, or a negative
/// error.
///
/// # Safety
/// `vg` is a live handle; `name` a NUL-terminated string; `percent_out`
/// NULL or valid for a write; `err` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvsnap_watch_wait(
    vg: *mut lvsnap_vg,
    name: *const c_char,
    percent: f64,
    timeout_ms: u64,
    percent_out: *mut f64,
    err: *mut *mut lvsnap_error,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        boundary(err, || {
            let vg = obj_arg(vg, "vg")?;
            let name = str_arg(name, "name")?;
            let until = if percent < 0.0 {
                Until::Invalid
            } else {
                Until::InvalidOrPercent(percent)
            };
            let ev = vg
                .vg
                .watch(name)?
                .wait(until, Duration::from_millis(timeout_ms))?;
            Ok(match ev {
                WatchEvent::Invalid => LVSNAP_WATCH_INVALID,
                WatchEvent::Percent(p) => {
                    if !percent_out.is_null() {
                        *percent_out = p;
                    }
                    LVSNAP_WATCH_PERCENT
                }
                WatchEvent::TimedOut => LVSNAP_WATCH_TIMED_OUT,
            })
        })
    }
}

// A handle is shared between threads by C callers: the types must allow it.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<lvsnap_vg>();
    shareable::<lvsnap_rollback>();
    shareable::<lvsnap_error>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_their_kind_and_message() {
        let mut err = ptr::null_mut();
        let mut vg = ptr::null_mut();
        // SAFETY: valid pointers; the error is freed once.
        unsafe {
            assert_eq!(
                lvsnap_vg_open(ptr::null(), &mut vg, &mut err),
                LVSNAP_E_INVALID_ARGUMENT
            );
            assert_eq!(lvsnap_error_code(err), LVSNAP_E_INVALID_ARGUMENT);
            let msg = CStr::from_ptr(lvsnap_error_message(err)).to_str().unwrap();
            assert_eq!(msg, "vg is NULL");
            lvsnap_error_free(err);
            assert!(vg.is_null());
            // A bad VG name is refused before any device is read.
            let code = lvsnap_vg_open(c"no/such".as_ptr(), &mut vg, ptr::null_mut());
            assert!(code < 0, "{code}");
        }
    }

    #[test]
    fn a_panic_stops_at_the_boundary() {
        let mut err = ptr::null_mut();
        // SAFETY: a valid error pointer, freed once.
        unsafe {
            let code = boundary(&mut err, || panic!("boom"));
            assert_eq!(code, LVSNAP_E_IO);
            let msg = CStr::from_ptr(lvsnap_error_message(err)).to_str().unwrap();
            assert!(msg.contains("boom"), "{msg}");
            lvsnap_error_free(err);
        }
    }

    #[test]
    fn names_are_cut_to_fit_with_their_nul() {
        let mut a = [1 as c_char; LVSNAP_NAME_MAX];
        copy_name(&mut a, &"x".repeat(300));
        assert_eq!(a[LVSNAP_NAME_MAX - 1], 0);
        copy_name(&mut a, "ab");
        assert_eq!(&a[..3], &[b'a' as c_char, b'b' as c_char, 0]);
    }
}
