//! LVM's file locks, taken the way LVM2's `lib/misc/lvm-flock.c` takes them,
//! so `lvm` commands and lvsnap never interleave on one volume group.
//!
//! A VG lock is `flock` on `<locking_dir>/V_<vg>`; the global lock is
//! `<locking_dir>/P_global`, which LVM takes exclusively only for commands
//! that change which PVs exist or belong to a VG (pvcreate, vgextend,
//! vgreduce, vgremove, ...) and shared when listing all VGs. Changing one
//! VG's LVs, as lvcreate/lvchange do, takes only the VG lock. As LVM does with
//! `prioritise_write_locks` (on by default), a taker first holds
//! `<file>:aux` exclusively, so a stream of readers cannot starve a writer.
//! The lock file is created if missing and unlinked on release when nobody
//! else holds it; after `flock` returns, the path must still name the locked
//! inode, or the file was unlinked meanwhile and the lock is retaken.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::{Error, Result};

/// LVM's default `global/locking_dir`.
pub const DEFAULT_LOCK_DIR: &str = "/run/lock/lvm";

/// Shared (read) or exclusive (write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Shared: other readers may hold it too (LVM's read-only commands).
    Shared,
    /// Exclusive: what any metadata change needs.
    Exclusive,
}

/// A held LVM lock; dropping it releases it.
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    file: Option<Flock<File>>,
    mode: LockMode,
}

/// Opens, locks, and checks that `path` still names the locked file.
fn do_flock(path: &Path, arg: FlockArg) -> Result<Flock<File>> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o777)
            .open(path)
            .map_err(|e| Error::io_path("open lock file", path, e))?;
        let locked = match Flock::lock(file, arg) {
            Ok(l) => l,
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(Error::Busy(format!("{} is locked", path.display())));
            }
            Err((_, e)) => return Err(Error::io_path("flock", path, e.into())),
        };
        if names(path, &locked) {
            return Ok(locked);
        }
        // Unlinked by its last holder between our open and flock: retry.
        if matches!(
            arg,
            FlockArg::LockSharedNonblock | FlockArg::LockExclusiveNonblock
        ) {
            return Err(Error::Busy(format!("{} is being released", path.display())));
        }
    }
}

/// Whether `path` names the open `file` (the same inode).
fn names(path: &Path, file: &File) -> bool {
    match (fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Releases `lock` and unlinks its file if nobody else holds it, as LVM's
/// `_undo_flock`: a non-blocking exclusive relock succeeds only then.
fn undo_flock(path: &Path, lock: Flock<File>) {
    if lock.relock(FlockArg::LockExclusiveNonblock).is_ok() && names(path, &lock) {
        if let Err(e) = fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::debug!("unlink {}: {e}", path.display());
            }
        }
    }
    // Closing the file releases the lock whatever unlock says.
    if let Err((_, e)) = lock.unlock().map(drop) {
        log::debug!("unlock {}: {e}", path.display());
    }
}

impl LockGuard {
    /// Takes LVM's lock on the volume group `vg` in `lock_dir`.
    /// With `wait` false, a lock held elsewhere gives [`Error::Busy`].
    ///
    /// ```no_run
    /// use lvsnap::lvm::lock::{LockGuard, LockMode, DEFAULT_LOCK_DIR};
    /// let _guard = LockGuard::vg(DEFAULT_LOCK_DIR.as_ref(), "vg0", LockMode::Exclusive, true)?;
    /// // read, change and commit vg0's metadata; `lvm` waits meanwhile.
    /// # Ok::<(), lvsnap::lvm::Error>(())
    /// ```
    pub fn vg(lock_dir: &Path, vg: &str, mode: LockMode, wait: bool) -> Result<LockGuard> {
        if vg.is_empty() || vg.contains('/') || vg.starts_with('#') {
            return Err(Error::InvalidArgument(format!("{vg:?} is not a VG name")));
        }
        LockGuard::take(lock_dir.join(format!("V_{vg}")), mode, wait)
    }

    /// Takes LVM's global lock (`P_global`).
    pub fn global(lock_dir: &Path, mode: LockMode, wait: bool) -> Result<LockGuard> {
        LockGuard::take(lock_dir.join("P_global"), mode, wait)
    }

    fn take(path: PathBuf, mode: LockMode, wait: bool) -> Result<LockGuard> {
        if let Some(dir) = path.parent() {
            if !dir.is_dir() {
                fs::create_dir_all(dir).map_err(|e| Error::io_path("create lock dir", dir, e))?;
            }
        }
        let (op, aux_op) = match (mode, wait) {
            (LockMode::Shared, true) => (FlockArg::LockShared, FlockArg::LockExclusive),
            (LockMode::Exclusive, true) => (FlockArg::LockExclusive, FlockArg::LockExclusive),
            (LockMode::Shared, false) => (
                FlockArg::LockSharedNonblock,
                FlockArg::LockExclusiveNonblock,
            ),
            (LockMode::Exclusive, false) => (
                FlockArg::LockExclusiveNonblock,
                FlockArg::LockExclusiveNonblock,
            ),
        };
        let mut aux = path.clone().into_os_string();
        aux.push(":aux");
        let aux = PathBuf::from(aux);
        let aux_file = do_flock(&aux, aux_op)?;
        let file = match mode {
            LockMode::Exclusive => {
                let r = do_flock(&path, op);
                undo_flock(&aux, aux_file);
                r?
            }
            LockMode::Shared => {
                undo_flock(&aux, aux_file);
                do_flock(&path, op)?
            }
        };
        log::debug!("locked {} {mode:?}", path.display());
        Ok(LockGuard {
            path,
            file: Some(file),
            mode,
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mode held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(lock) = self.file.take() {
            // Unlock first, as LVM does, so a waiter may take it before the
            // unlink test below.
            let lock = match lock.unlock() {
                Ok(file) => Flock::lock(file, FlockArg::LockExclusiveNonblock).ok(),
                Err((lock, e)) => {
                    log::debug!("unlock {}: {e}", self.path.display());
                    Some(lock)
                }
            };
            if let Some(lock) = lock {
                undo_flock(&self.path, lock);
            }
            log::debug!("unlocked {}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_drop_releases() {
        let dir = std::env::temp_dir().join(format!("lvsnap-lock-{}", std::process::id()));
        let a = LockGuard::vg(&dir, "vgx", LockMode::Exclusive, false).unwrap();
        assert!(dir.join("V_vgx").exists());
        let e = LockGuard::vg(&dir, "vgx", LockMode::Shared, false).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Busy);
        drop(a);
        assert!(
            !dir.join("V_vgx").exists(),
            "released lock file is unlinked"
        );
        let s1 = LockGuard::vg(&dir, "vgx", LockMode::Shared, false).unwrap();
        let s2 = LockGuard::vg(&dir, "vgx", LockMode::Shared, false).unwrap();
        drop((s1, s2));
        assert!(LockGuard::vg(&dir, "a/b", LockMode::Shared, false).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
