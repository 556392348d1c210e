//! The executor: carries out a [`Plan`] on the kernel in LVM's order, and
//! takes it down again.

use std::collections::HashMap;

use devicemapper::{Device, DmName, DmNameBuf, ThinPoolStatus};

use super::error::{Error, Result};
use super::layer::Layer;
use super::links;
use super::plan::{
    Plan, PlannedDevice, PlannedLine, PlannedTarget, PvMap, Role, Step, dm_name, plan,
};
use crate::dm::{self, DmControl, TableLine, ThinPoolMessage};
use crate::lvm::flags::LvFlags;
use crate::lvm::vg::{SegmentKind, Vg};

/// How to activate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivateOptions {
    /// Activate an LV flagged `ACTIVATION_SKIP` (thin snapshots) anyway,
    /// as `lvchange -ay -K` does; without it such an LV is skipped, as
    /// `lvchange -ay` does.
    pub ignore_activation_skip: bool,
    /// Make a thin pool without running thin_check on its metadata first:
    /// for a caller that has just checked it (and written nothing to it
    /// since but through the kernel).
    pub skip_thin_check: bool,
}

/// What [`activate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// Devices were created (those listed; others of the tree were active).
    Activated(Vec<DmNameBuf>),
    /// Every device was active already, with the tables the metadata gives.
    AlreadyActive,
    /// The LV has `ACTIVATION_SKIP` and the options did not override it.
    Skipped,
}

/// A device of an LV's tree, as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDevice {
    /// Its name.
    pub name: DmNameBuf,
    /// The LV it is made from.
    pub lv: String,
    /// Its layer, if any.
    pub layer: Option<Layer>,
    /// Its UUID.
    pub uuid: Option<String>,
    /// Its `major:minor`.
    pub device: Device,
    /// How many openers it has.
    pub open_count: i32,
    /// Whether its table is read-only.
    pub read_only: bool,
    /// Its live table.
    pub table: Vec<TableLine>,
}

type LiveMap = HashMap<DmNameBuf, Device>;

fn live_map(dm: &DmControl) -> Result<LiveMap> {
    Ok(dm.list()?.into_iter().collect())
}

fn resolve(vg: &Vg, pvs: &PvMap, d: &PlannedDevice, live: &LiveMap) -> Result<Vec<TableLine>> {
    let lookup = |n: &DmName| live.get(n).copied();
    d.table
        .iter()
        .map(|l| l.resolve(vg, pvs, &lookup))
        .collect()
}

/// Tables compared as the kernel prints them (it adds trailing spaces).
fn same_table(a: &[TableLine], b: &[TableLine]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.start == y.start
                && x.length == y.length
                && x.target_type == y.target_type
                && x.params.split_whitespace().eq(y.params.split_whitespace())
        })
}

fn show(t: &[TableLine]) -> String {
    t.iter()
        .map(|l| l.to_string().trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks an active device is what the plan says: UUID, table, read-only.
fn verify(dm: &DmControl, vg: &Vg, pvs: &PvMap, d: &PlannedDevice, live: &LiveMap) -> Result<()> {
    let info = dm.info(&d.name)?;
    let uuid = d.uuid.to_string();
    let mismatch = |expected: String, found: String| Error::Mismatch {
        device: d.name.to_string(),
        expected,
        found,
    };
    if info.uuid.as_deref() != Some(uuid.as_str()) {
        let found = info.uuid.unwrap_or_else(|| "no uuid".into());
        return Err(mismatch(format!("uuid {uuid}"), format!("uuid {found}")));
    }
    let want = resolve(vg, pvs, d, live)?;
    let have = dm.table(&d.name)?;
    if !same_table(&want, &have) {
        return Err(mismatch(
            format!("table \"{}\"", show(&want)),
            format!("table \"{}\"", show(&have)),
        ));
    }
    if info.read_only != d.read_only {
        let ro = |r: bool| if r { "read-only" } else { "read-write" }.to_owned();
        return Err(mismatch(ro(d.read_only), ro(info.read_only)));
    }
    Ok(())
}

/// A thin pool must be at the metadata's transaction id. When it is one
/// behind and the metadata queues messages (a thin LV created or removed
/// but not yet sent to the kernel), they are sent first, then the
/// transaction id is moved on, as LVM does when it activates a pool.
fn check_pool(dm: &DmControl, vg: &Vg, d: &PlannedDevice, live: &LiveMap) -> Result<()> {
    if d.layer != Some(Layer::Tpool) {
        return Ok(());
    }
    let Some(SegmentKind::ThinPool {
        transaction_id,
        messages,
        ..
    }) = vg
        .lv(&d.lv)
        .and_then(|l| l.segments.first())
        .map(|s| &s.kind)
    else {
        return Ok(());
    };
    let ThinPoolStatus::Working(w) = dm::thin_pool_status(dm, &d.name)? else {
        return Err(Error::invalid(
            &d.lv,
            "the kernel reports the thin pool failed",
        ));
    };
    let kernel = w.transaction_id;
    let wrong = || Error::Transaction {
        pool: d.name.to_string(),
        kernel,
        metadata: *transaction_id,
    };
    if kernel == *transaction_id {
        return Ok(());
    }
    if messages.is_empty() || kernel.checked_add(1) != Some(*transaction_id) {
        return Err(wrong());
    }
    for m in messages {
        let q = super::thin::queued_message(vg, m)?.ok_or_else(&wrong)?;
        // An active origin would have to be suspended around the message:
        // leave that to the snapshot layer.
        if let Some(o) = q.origin {
            if live.contains_key(&*dm_name(vg, o, None)?) {
                return Err(wrong());
            }
        }
        log::info!("{}: replaying queued message {}", &*d.name, q.message);
        super::thin::replay_message(dm, &d.name, &q.message)?;
    }
    let set = ThinPoolMessage::SetTransactionId {
        old: kernel,
        new: *transaction_id,
    };
    dm::thin_pool_message(dm, &d.name, &set)?;
    Ok(())
}

/// Checks a pool's metadata before its `thin-pool` device is made, as
/// LVM's `_pool_callback` does once the metadata LV is active: lvm.conf's
/// `global/thin_check_executable` with `global/thin_check_options` on
/// `/dev/mapper/<vg>-<pool>_tmeta`. Skipped, as LVM skips it, when the
/// executable is set to "", when it is not installed (with LVM's warning),
/// and when the metadata's first 64 bytes are zero (a pool never used).
fn thin_check(vg: &Vg, pool: &str) -> Result<()> {
    use std::io::Read;
    let cfg = crate::lvm::config::LvmConfig::load_or_default();
    let exe = cfg.thin_check_executable.as_str();
    if exe.is_empty() {
        return Ok(());
    }
    let Some(SegmentKind::ThinPool { metadata, .. }) = vg
        .lv(pool)
        .and_then(|l| l.segments.first())
        .map(|s| &s.kind)
    else {
        return Err(Error::invalid(pool, "not a thin pool"));
    };
    let path = dm::node_path(&dm_name(vg, metadata, None)?);
    let show = path.display();
    let mut head = [0u8; 64];
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| Error::io(format!("reading {show}"), e))?;
    if head.iter().all(|&b| b == 0) {
        log::debug!("metadata checking skipped, detected empty disk header on {show}");
        return Ok(());
    }
    let opts = cfg.thin_check_options.iter().filter(|o| !o.is_empty());
    let out = match std::process::Command::new(exe)
        .args(opts)
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::warn!(
                "WARNING: Check is skipped, please install recommended missing binary {exe}!"
            );
            return Ok(());
        }
        Err(e) => return Err(Error::io(format!("running {exe}"), e)),
    };
    if out.status.success() {
        return Ok(());
    }
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let detail = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map_or_else(|| format!("{exe} {show}"), |l| format!("{exe}: {l}"));
    Err(Error::ThinCheck {
        pool: format!("{}/{pool}", vg.name),
        status: out.status.code().unwrap_or(-1),
        detail,
    })
}

/// Devices this call created, removed newest first unless the call succeeds.
struct Created<'a> {
    dm: &'a DmControl,
    names: Vec<DmNameBuf>,
}

impl Drop for Created<'_> {
    fn drop(&mut self) {
        while let Some(n) = self.names.pop() {
            if let Err(e) = self.dm.remove(&n) {
                log::error!("undo: cannot remove {}: {e}", &*n);
            }
        }
    }
}

/// Activates LV `lv` of `vg` as LVM would: its whole tree (a COW origin with
/// all its snapshots, a snapshot with its origin, a thin LV with its pool's
/// layers), creating what is missing in LVM's create/load/resume order,
/// with /dev/mapper nodes and `/dev/<vg>/<lv>` links when udev is absent.
///
/// Devices already active are checked against the metadata (UUID, table,
/// read-only flag) and kept; a difference is [`Error::Mismatch`]. On any
/// failure the devices this call created are removed.
///
/// ```no_run
/// use lvsnap::activate::{activate, pv_map, ActivateOptions};
/// use lvsnap::lvm::{vg::Metadata, ScanOptions, VgDisk};
/// let disk = VgDisk::open("vg0", &ScanOptions::default())?;
/// let md = Metadata::parse(disk.text()).map_err(|e| lvsnap::Error::InvalidArgument(e.to_string()))?;
/// let pvs = pv_map(md.vg(), &disk)?;
/// let dm = lvsnap::dm::DmControl::open()?;
/// activate(&dm, md.vg(), &pvs, "lv0", &ActivateOptions::default())?;
/// # Ok::<(), lvsnap::Error>(())
/// ```
pub fn activate(
    dm: &DmControl,
    vg: &Vg,
    pvs: &PvMap,
    lv: &str,
    opts: &ActivateOptions,
) -> Result<Activation> {
    let plan = plan(vg, lv)?;
    let skip = vg
        .lv(lv)
        .is_some_and(|l| l.has_flag(LvFlags::ACTIVATION_SKIP));
    if skip && !opts.ignore_activation_skip {
        return Ok(Activation::Skipped);
    }
    let mut live = live_map(dm)?;
    let existing: Vec<bool> = plan
        .devices
        .iter()
        .map(|d| live.contains_key(&*d.name))
        .collect();
    for (d, _) in plan.devices.iter().zip(&existing).filter(|(_, e)| **e) {
        verify(dm, vg, pvs, d, &live)?;
        check_pool(dm, vg, d, &live)?;
    }
    let mut created = Created {
        dm,
        names: Vec::new(),
    };
    for step in &plan.steps {
        let (Step::Create(i) | Step::Resume(i)) = *step;
        let (Some(d), Some(false)) = (plan.devices.get(i), existing.get(i).copied()) else {
            continue;
        };
        match step {
            Step::Create(_) => {
                let table = resolve(vg, pvs, d, &live)?;
                // A new pool: its metadata is checked first; a failed check
                // removes what this call made, as LVM reverts its preload.
                let pool = |l: &PlannedLine| matches!(l.target, PlannedTarget::ThinPool { .. });
                if !opts.skip_thin_check && d.table.first().is_some_and(pool) {
                    thin_check(vg, &d.lv)?;
                }
                let uuid = d.uuid.as_dm_uuid();
                let dev = dm.create_inactive(&d.name, Some(uuid), &table, d.read_only)?;
                created.names.push(d.name.clone().into_dm_name());
                live.insert(d.name.clone().into_dm_name(), dev);
                dm::ensure_node(&d.name, dev)?;
            }
            Step::Resume(_) => {
                dm.resume(&d.name)?;
                check_pool(dm, vg, d, &live)?;
            }
        }
    }
    for d in &plan.devices {
        if let Some(l) = &d.link {
            links::ensure_link(&vg.name, l, &d.name)?;
        }
    }
    let names = std::mem::take(&mut created.names);
    Ok(if names.is_empty() {
        Activation::AlreadyActive
    } else {
        log::info!("activated {}/{}: created {}", vg.name, lv, names.len());
        Activation::Activated(names)
    })
}

/// Deactivates LV `lv` of `vg` and its tree, users before what they use, as
/// LVM does; layers another LV still uses (a pool's `-tpool` under another
/// thin LV) stay. Refused with [`Error::Busy`], before anything changes, if
/// one of the LV's devices is open: held by another device at once, open
/// otherwise only after about 5 s of looking again, as LVM waits out a
/// passing opener (a scan reading its label).
pub fn deactivate(dm: &DmControl, vg: &Vg, lv: &str) -> Result<()> {
    let plan = plan(vg, lv)?;
    let live = live_map(dm)?;
    let present: Vec<&PlannedDevice> = plan
        .devices
        .iter()
        .filter(|d| live.contains_key(&*d.name))
        .collect();
    for d in &present {
        let info = dm.info(&d.name)?;
        let uuid = d.uuid.to_string();
        if info.uuid.as_deref() != Some(uuid.as_str()) {
            return Err(Error::Mismatch {
                device: d.name.to_string(),
                expected: format!("uuid {uuid}"),
                found: format!("uuid {}", info.uuid.unwrap_or_default()),
            });
        }
        if d.role == Role::Top && info.open_count > 0 {
            let open_count = open_count_settled(dm, &info)?;
            if open_count > 0 {
                return Err(Error::Busy {
                    lv: lv.to_owned(),
                    device: d.name.to_string(),
                    open_count,
                });
            }
        }
    }
    for d in plan
        .remove_order
        .iter()
        .filter_map(|&i| plan.devices.get(i))
    {
        if !live.contains_key(&*d.name) {
            continue;
        }
        if d.role == Role::Layer && dm.info(&d.name)?.open_count > 0 {
            log::info!("keeping {}: still in use", d.name);
            continue;
        }
        dm.remove(&d.name)?;
        if let Some(l) = &d.link {
            links::remove_link(&vg.name, l)?;
        }
    }
    Ok(())
}

/// How many times, and how often, an open device is looked at again before
/// its deactivation is refused: LVM's `lv_check_not_in_use` with
/// `activation/retry_deactivation` on (its default), 25 looks 200 ms apart.
const OPEN_RETRIES: u32 = 25;
const OPEN_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// The open count of the device `info` describes, once a passing opener
/// has gone: a scan (blkid from udev, another LVM command reading labels)
/// holds a device open for a moment, and LVM waits such an opener out
/// rather than refuse (`lv_check_not_in_use`, for deactivation and
/// `lvremove`): up to 25 looks 200 ms apart. A device another device holds
/// (sysfs `holders`) is not waited for: that user stays. 0 if the device
/// went away meanwhile.
pub fn open_count_settled(dm: &DmControl, info: &dm::Info) -> Result<i32> {
    let name = &*info.name;
    let holders = format!(
        "/sys/dev/block/{}:{}/holders",
        info.device.major, info.device.minor
    );
    let held = std::fs::read_dir(&holders).is_ok_and(|mut d| d.next().is_some());
    let mut open_count = info.open_count;
    let mut left = OPEN_RETRIES;
    while open_count > 0 && !held && left > 1 {
        left -= 1;
        std::thread::sleep(OPEN_RETRY_DELAY);
        log::debug!("{name} is open ({open_count}): looking again");
        match dm.info(name) {
            Ok(i) => open_count = i.open_count,
            // Gone meanwhile: nothing holds it open.
            Err(e) if e.kind() == crate::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(open_count)
}

/// Whether LV `lv` of `vg` is active: its own device (`vg-lv`) exists with
/// the LV's UUID, which is what `lvs` reports as the 5th `lv_attr` character.
pub fn is_active(dm: &DmControl, vg: &Vg, lv: &str) -> Result<bool> {
    let name = dm_name(vg, lv, None)?;
    if !live_map(dm)?.contains_key(&*name) {
        return Ok(false);
    }
    let uuid = super::plan::dm_uuid(vg, lv, None)?.to_string();
    let found = dm.info(&name)?.uuid;
    // A pool's public device and `_tmeta`/`_tdata` LVs carry a layer in the UUID.
    Ok(found.is_some_and(|f| {
        f.strip_prefix(&uuid).is_some_and(|r| {
            r.is_empty()
                || r.strip_prefix('-')
                    .and_then(Layer::parse)
                    .is_some_and(|l| !l.in_name())
        })
    }))
}

/// The devices of LV `lv`'s tree that are active, in the plan's order.
pub fn live_devices(dm: &DmControl, vg: &Vg, lv: &str) -> Result<Vec<LiveDevice>> {
    let plan: Plan = plan(vg, lv)?;
    let live = live_map(dm)?;
    let mut out = Vec::new();
    for d in plan.devices.iter().filter(|d| live.contains_key(&*d.name)) {
        let info = dm.info(&d.name)?;
        out.push(LiveDevice {
            name: d.name.clone().into_dm_name(),
            lv: d.lv.clone(),
            layer: d.layer,
            uuid: info.uuid,
            device: info.device,
            open_count: info.open_count,
            read_only: info.read_only,
            table: dm.table(&d.name)?,
        });
    }
    Ok(out)
}
