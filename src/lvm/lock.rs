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
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

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
    file: Option<File>,
    mode: LockMode,
}

fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Opens, locks, and checks that `path` still names the locked file.
fn do_flock(path: &Path, op: libc::c_int) -> Result<File> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o777)
            .open(path)
            .map_err(|e| Error::io_path("open lock file", path, e))?;
        if let Err(e) = flock(&file, op) {
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(Error::Busy(format!("{} is locked", path.display())));
            }
            return Err(Error::io_path("flock", path, e));
        }
        let same = match (fs::metadata(path), file.metadata()) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            return Ok(file);
        }
        // Unlinked by its last holder between our open and flock: retry.
        if op & libc::LOCK_NB != 0 {
            return Err(Error::Busy(format!("{} is being released", path.display())));
        }
    }
}

/// Unlinks the lock file if nobody else holds it, as LVM's `_undo_flock`.
fn undo_flock(path: &Path, file: File) {
    if flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_ok() {
        let same = match (fs::metadata(path), file.metadata()) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            if let Err(e) = fs::remove_file(path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::debug!("unlink {}: {e}", path.display());
                }
            }
        }
    }
    drop(file);
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
        let nb = if wait { 0 } else { libc::LOCK_NB };
        let op = match mode {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        } | nb;
        let mut aux = path.clone().into_os_string();
        aux.push(":aux");
        let aux = PathBuf::from(aux);
        let aux_file = do_flock(&aux, libc::LOCK_EX | nb)?;
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
        if let Some(file) = self.file.take() {
            if let Err(e) = flock(&file, libc::LOCK_UN | libc::LOCK_NB) {
                log::debug!("unlock {}: {e}", self.path.display());
            }
            undo_flock(&self.path, file);
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
