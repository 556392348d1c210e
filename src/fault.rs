//! Fault injection for the project's own fault tests: compiled in only with
//! the `fault-injection` feature (which the test build turns on through a
//! dev-dependency on the crate itself), a no-op otherwise.
//!
//! Every step that changes the kernel or the disk (each device-mapper
//! ioctl that changes a device, each metadata write, each data write of a
//! copy) calls [`point`]. With `LVSNAP_FAULT=N` the process SIGKILLs itself
//! just before the Nth such step, so a test can sweep N deterministically;
//! `LVSNAP_FAULT=N:flakey:<dm names>:<feature>` instead switches the
//! `flakey` devices `<dm names>` (comma-separated) to always-down with `<feature>`
//! (`drop_writes`: a power cut; `error_writes`: a failing disk) just before
//! the Nth step, and carries on.

/// A step that changes the kernel or the disk is about to run.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn point(_what: &str) {}

/// A step that changes the kernel or the disk is about to run.
#[cfg(feature = "fault-injection")]
pub(crate) fn point(what: &str) {
    imp::point(what)
}

#[cfg(feature = "fault-injection")]
mod imp {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    use devicemapper::{DM, DevId, DmFlags, DmName, DmOptions};

    enum Action {
        Kill,
        Flakey { dev: String, feature: String },
    }

    struct Plan {
        at: u64,
        action: Action,
    }

    static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);

    fn plan() -> Option<&'static Plan> {
        PLAN.get_or_init(|| {
            let v = std::env::var("LVSNAP_FAULT").ok()?;
            let mut parts = v.splitn(4, ':');
            let at = parts.next()?.parse().ok()?;
            let action = match parts.next() {
                None | Some("kill") => Action::Kill,
                Some("flakey") => Action::Flakey {
                    dev: parts.next()?.to_owned(),
                    feature: parts.next()?.to_owned(),
                },
                Some(_) => return None,
            };
            Some(Plan { at, action })
        })
        .as_ref()
    }

    pub(super) fn point(what: &str) {
        let Some(p) = plan() else { return };
        let n = SEEN.fetch_add(1, Ordering::SeqCst) + 1;
        if n != p.at {
            return;
        }
        match &p.action {
            Action::Kill => {
                eprintln!("lvsnap fault injection: SIGKILL before step {n} ({what})");
                let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGKILL);
            }
            Action::Flakey { dev, feature } => {
                eprintln!("lvsnap fault injection: {dev} -> {feature} before step {n} ({what})");
                for d in dev.split(',') {
                    if let Err(e) = flakey_down(d, feature) {
                        eprintln!("lvsnap fault injection: {e}");
                    }
                }
            }
        }
    }

    /// Reloads flakey device `dev` as always down with `feature`.
    fn flakey_down(dev: &str, feature: &str) -> Result<(), String> {
        let dm = DM::new().map_err(|e| e.to_string())?;
        let name = DmName::new(dev).map_err(|e| e.to_string())?;
        let id = DevId::Name(name);
        let (_, table) = dm
            .table_status(
                &id,
                DmOptions::default().set_flags(DmFlags::DM_STATUS_TABLE),
            )
            .map_err(|e| e.to_string())?;
        let mut new = Vec::new();
        for (start, len, ty, params) in table {
            if ty != "flakey" {
                return Err(format!("{dev} has a {ty} target, not flakey"));
            }
            let mut w = params.split_whitespace();
            let (Some(d), Some(off)) = (w.next(), w.next()) else {
                return Err(format!("flakey table {params:?}"));
            };
            new.push((start, len, ty, format!("{d} {off} 0 100000 1 {feature}")));
        }
        dm.table_load(&id, &new, DmOptions::default())
            .map_err(|e| e.to_string())?;
        dm.device_suspend(
            &id,
            DmOptions::default().set_flags(DmFlags::DM_SUSPEND | DmFlags::DM_NOFLUSH),
        )
        .map_err(|e| e.to_string())?;
        dm.device_suspend(&id, DmOptions::default())
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}
