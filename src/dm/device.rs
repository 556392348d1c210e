//! Generic device operations: create, load, suspend, resume, remove, status.

use std::fmt;
use std::sync::{Arc, OnceLock};

use devicemapper::{
    DM, DevId, Device, DeviceInfo, DmError, DmFlags, DmName, DmNameBuf, DmOptions, DmUuid, Sectors,
    TargetLine, TargetParams, errors,
};

use super::error::{Error, Result};
use super::node;

/// Longest target type name the kernel takes (16 bytes with the NUL).
const TARGET_TYPE_MAX: usize = 15;

/// One line of a device-mapper table: `<start> <length> <type> <params>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLine {
    /// First sector this line maps.
    pub start: Sectors,
    /// Number of sectors it maps.
    pub length: Sectors,
    /// The target type (`linear`, `snapshot`, ...).
    pub target_type: String,
    /// The target's parameters (or, from [`DmControl::status`], its status).
    pub params: String,
}

impl TableLine {
    /// A line of any target.
    pub fn new(
        start: Sectors,
        length: Sectors,
        target_type: impl Into<String>,
        params: impl Into<String>,
    ) -> TableLine {
        TableLine {
            start,
            length,
            target_type: target_type.into(),
            params: params.into(),
        }
    }

    /// A `linear` line mapping `length` sectors at `start` to `dev` from `offset`.
    ///
    /// ```
    /// use lvsnap::{dm::TableLine, units::Sectors};
    /// use devicemapper::Device;
    /// let l = TableLine::linear(Sectors(0), Sectors(2048), Device { major: 7, minor: 0 }, Sectors(8));
    /// assert_eq!(l.to_string(), "0 2048 linear 7:0 8");
    /// ```
    pub fn linear(start: Sectors, length: Sectors, dev: Device, offset: Sectors) -> TableLine {
        Self::new(start, length, "linear", format!("{dev} {}", *offset))
    }

    /// An `error` line: every I/O fails.
    pub fn error(start: Sectors, length: Sectors) -> TableLine {
        Self::new(start, length, "error", "")
    }

    /// A line of `length` sectors at `start` mapped by one of the
    /// devicemapper crate's typed targets (or ours).
    pub fn target(start: Sectors, length: Sectors, params: &impl TargetParams) -> TableLine {
        Self::new(
            start,
            length,
            params.target_type().to_string(),
            params.param_str(),
        )
    }

    /// The line's target as typed params `T` (which check the target type):
    /// `T::from_str` of `<type> <params>`, as the typed targets parse.
    ///
    /// ```
    /// use lvsnap::{dm::{LinearTargetParams, TableLine, ThinTargetParams}, units::Sectors};
    /// let l = TableLine::new(Sectors(0), Sectors(8), "linear", "7:0 2048");
    /// assert_eq!(*l.params_as::<LinearTargetParams>()?.offset, 2048);
    /// assert!(l.params_as::<ThinTargetParams>().is_err());
    /// # Ok::<(), lvsnap::dm::Error>(())
    /// ```
    pub fn params_as<T: std::str::FromStr<Err = Error>>(&self) -> Result<T> {
        format!("{} {}", self.target_type, self.params).parse()
    }

    /// A line from one of the devicemapper crate's typed targets (or ours).
    pub fn from_target<T: TargetParams>(line: &TargetLine<T>) -> TableLine {
        Self::new(
            line.start,
            line.length,
            line.params.target_type().to_string(),
            line.params.param_str(),
        )
    }

    fn check(&self) -> Result<()> {
        let t = &self.target_type;
        if t.is_empty() || t.len() > TARGET_TYPE_MAX || !t.is_ascii() {
            return Err(Error::InvalidArgument(format!(
                "target type {t:?} is empty, not ASCII or longer than {TARGET_TYPE_MAX} bytes"
            )));
        }
        if *self.length == 0 || self.params.contains('\0') {
            return Err(Error::InvalidArgument(format!(
                "table line \"{self}\" has zero length or a NUL"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for TableLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            *self.start, *self.length, self.target_type, self.params
        )
    }
}

/// The size a table maps (the end of its last line).
pub fn table_size(table: &[TableLine]) -> Sectors {
    table
        .iter()
        .map(|l| Sectors(l.start.saturating_add(*l.length)))
        .max()
        .unwrap_or_default()
}

fn check_table(table: &[TableLine]) -> Result<()> {
    if table.is_empty() {
        return Err(Error::InvalidArgument("empty table".into()));
    }
    let mut next = 0u64;
    for l in table {
        l.check()?;
        if *l.start != next {
            return Err(Error::InvalidArgument(format!(
                "table line \"{l}\" does not start at sector {next}"
            )));
        }
        next = (*l.start)
            .checked_add(*l.length)
            .ok_or_else(|| Error::InvalidArgument(format!("table line \"{l}\" overflows")))?;
    }
    Ok(())
}

/// The command number of `DM_TABLE_STATUS` (`<linux/dm-ioctl.h>`), as the
/// devicemapper crate's errors name the ioctl.
const DM_TABLE_STATUS_CMD: u8 = 12;

/// How to suspend a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspend {
    /// Wait for in-flight I/O to finish (`false`: `DM_NOFLUSH`, I/O is queued).
    pub flush: bool,
    /// Freeze a filesystem on the device first (`false`: `DM_SKIP_LOCKFS`).
    pub lockfs: bool,
}

impl Suspend {
    /// Freeze and flush: what LVM uses on an origin before snapshotting it.
    pub const FREEZE: Suspend = Suspend {
        flush: true,
        lockfs: true,
    };
    /// Flush without a filesystem freeze: for internal layers.
    pub const FLUSH: Suspend = Suspend {
        flush: true,
        lockfs: false,
    };

    fn flags(self) -> DmFlags {
        let mut f = DmFlags::DM_SUSPEND;
        if !self.flush {
            f |= DmFlags::DM_NOFLUSH;
        }
        if !self.lockfs {
            f |= DmFlags::DM_SKIP_LOCKFS;
        }
        f
    }
}

/// A suspended device that is resumed when this is dropped: see
/// [`DmControl::suspend_guard`].
#[must_use = "dropping the guard resumes the device at once"]
pub struct Suspended<'a> {
    dm: &'a DmControl,
    name: &'a DmName,
    unchanged: bool,
    armed: bool,
}

impl Suspended<'_> {
    /// On drop, drop any table loaded into the inactive slot first, so the
    /// device resumes with the table it had (an undo).
    pub fn undo_on_drop(&mut self) {
        self.unchanged = true;
    }

    /// On drop, resume with whatever table is loaded (the new one).
    pub fn keep_on_drop(&mut self) {
        self.unchanged = false;
    }

    /// Resumes now (with a loaded table, if any). On failure the guard
    /// still tries once more, then resumes the old table, when dropped.
    pub fn resume(mut self) -> Result<()> {
        let r = self.dm.resume(self.name);
        if r.is_ok() {
            self.armed = false;
        }
        r
    }
}

impl Drop for Suspended<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let dm = self.dm;
        let name = self.name;
        if self.unchanged {
            if let Ok(i) = dm.info(name) {
                if i.inactive_table {
                    if let Err(e) = dm.clear_inactive(name) {
                        log::error!("undo: {e}");
                    }
                }
            }
        }
        if let Err(e) = dm.resume(name) {
            // A table that cannot go live: fall back to the live one.
            log::error!("resuming {name}: {e}; retrying with its live table");
            let _ = dm.clear_inactive(name);
            if let Err(e) = dm.resume(name) {
                log::error!("{name} is left suspended: {e}");
            }
        }
    }
}

/// What the kernel says about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Its name.
    pub name: DmNameBuf,
    /// Its UUID, if it has one.
    pub uuid: Option<String>,
    /// Its `major:minor`.
    pub device: Device,
    /// How many openers it has.
    pub open_count: i32,
    /// Its event counter.
    pub event_nr: u32,
    /// Whether it is suspended.
    pub suspended: bool,
    /// Whether it is read-only.
    pub read_only: bool,
    /// Whether a table is loaded in its inactive slot.
    pub inactive_table: bool,
    /// Whether a table is active.
    pub live_table: bool,
}

impl Info {
    fn from_dm(name: &DmName, i: &DeviceInfo) -> Info {
        let name = i
            .name()
            .map(|n| n.to_owned())
            .unwrap_or_else(|| name.to_owned());
        let uuid = i.uuid().map(|u| u.to_string());
        Info::new(
            name,
            uuid,
            i.device(),
            i.open_count(),
            i.event_nr(),
            i.flags(),
        )
    }

    /// An `Info` from the header's fields; `flags` give the four states.
    fn new(
        name: DmNameBuf,
        uuid: Option<String>,
        device: Device,
        open_count: i32,
        event_nr: u32,
        f: DmFlags,
    ) -> Info {
        Info {
            name,
            uuid,
            device,
            open_count,
            event_nr,
            suspended: f.contains(DmFlags::DM_SUSPEND),
            read_only: f.contains(DmFlags::DM_READONLY),
            inactive_table: f.contains(DmFlags::DM_INACTIVE_PRESENT),
            live_table: f.contains(DmFlags::DM_ACTIVE_PRESENT),
        }
    }
}

/// An open device-mapper control file (`/dev/mapper/control`) with
/// typed, checked operations on devices named by their device-mapper name.
///
/// ```no_run
/// use lvsnap::dm::{DmControl, TableLine, check_dm_name};
/// use lvsnap::units::Sectors;
/// use devicemapper::Device;
/// let dm = DmControl::open()?;
/// let name = check_dm_name("demo")?;
/// let table = [TableLine::linear(Sectors(0), Sectors(2048), Device { major: 7, minor: 0 }, Sectors(0))];
/// let dev = dm.create(&name, None, &table, false)?;
/// println!("{dev} at {}", lvsnap::dm::node_path(&name).display());
/// dm.remove(&name)?;
/// # Ok::<(), lvsnap::dm::Error>(())
/// ```
#[derive(Clone)]
pub struct DmControl {
    dm: Arc<DM>,
}

impl fmt::Debug for DmControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DmControl")
    }
}

impl DmControl {
    /// Opens `/dev/mapper/control`.
    pub fn open() -> Result<DmControl> {
        let dm = DM::new().map_err(|e| Error::ioctl("open", "/dev/mapper/control", e))?;
        Ok(DmControl { dm: Arc::new(dm) })
    }

    /// The process's shared control file, opened on first use: one
    /// descriptor serves every operation (threads may share it: each ioctl
    /// carries its own buffer). A failed open is not remembered, so a later
    /// call retries.
    pub fn shared() -> Result<DmControl> {
        static SHARED: OnceLock<DmControl> = OnceLock::new();
        if let Some(dm) = SHARED.get() {
            return Ok(dm.clone());
        }
        let dm = DmControl::open()?;
        Ok(SHARED.get_or_init(|| dm).clone())
    }

    /// The devicemapper crate's context, for what this type does not cover.
    pub fn dm(&self) -> &DM {
        &self.dm
    }

    /// Creates device `name`, loads `table` and resumes it; makes its
    /// /dev/mapper node when udev is absent. On failure nothing is left.
    pub fn create(
        &self,
        name: &DmName,
        uuid: Option<&DmUuid>,
        table: &[TableLine],
        read_only: bool,
    ) -> Result<Device> {
        let dev = self.create_inactive(name, uuid, table, read_only)?;
        let done = self.resume(name).and_then(|_| node::ensure_node(name, dev));
        match done {
            Ok(_) => Ok(dev),
            Err(e) => {
                self.remove_quietly(name);
                Err(e)
            }
        }
    }

    /// Creates device `name` with `table` in its inactive slot, not resumed
    /// (I/O to it waits until [`DmControl::resume`]). On failure nothing is left.
    pub fn create_inactive(
        &self,
        name: &DmName,
        uuid: Option<&DmUuid>,
        table: &[TableLine],
        read_only: bool,
    ) -> Result<Device> {
        check_table(table)?;
        crate::fault::point("dm create");
        let info = self
            .dm
            .device_create(name, uuid, DmOptions::default())
            .map_err(|e| Error::ioctl("create", name, e))?;
        if let Err(e) = self.load(name, table, read_only) {
            self.remove_quietly(name);
            return Err(e);
        }
        Ok(info.device())
    }

    /// Loads `table` into the inactive slot of `name`; it goes live on resume.
    pub fn load(&self, name: &DmName, table: &[TableLine], read_only: bool) -> Result<()> {
        check_table(table)?;
        let raw: Vec<(u64, u64, String, String)> = table
            .iter()
            .map(|l| (*l.start, *l.length, l.target_type.clone(), l.params.clone()))
            .collect();
        let opts = if read_only {
            DmOptions::default().set_flags(DmFlags::DM_READONLY)
        } else {
            DmOptions::default()
        };
        crate::fault::point("dm load");
        self.dm
            .table_load(&DevId::Name(name), &raw, opts)
            .map_err(|e| Error::ioctl("table load", name, e))?;
        Ok(())
    }

    /// Drops a table loaded into the inactive slot of `name`.
    pub fn clear_inactive(&self, name: &DmName) -> Result<()> {
        crate::fault::point("dm clear");
        self.dm
            .table_clear(&DevId::Name(name))
            .map_err(|e| Error::ioctl("table clear", name, e))?;
        Ok(())
    }

    /// Suspends `name`.
    pub fn suspend(&self, name: &DmName, how: Suspend) -> Result<()> {
        crate::fault::point("dm suspend");
        self.dm
            .device_suspend(
                &DevId::Name(name),
                DmOptions::default().set_flags(how.flags()),
            )
            .map_err(|e| Error::ioctl("suspend", name, e))?;
        Ok(())
    }

    /// Suspends `name` and returns a guard that resumes it when dropped,
    /// on every path (an error, an early return, a panic): a device is
    /// never left suspended by lvsnap. [`Suspended::resume`] resumes it
    /// early and reports the error; after [`Suspended::undo_on_drop`] the
    /// drop first drops a table loaded meanwhile.
    pub fn suspend_guard<'a>(&'a self, name: &'a DmName, how: Suspend) -> Result<Suspended<'a>> {
        self.suspend(name, how)?;
        Ok(Suspended {
            dm: self,
            name,
            unchanged: false,
            armed: true,
        })
    }

    /// Resumes `name`, making a loaded inactive table live.
    pub fn resume(&self, name: &DmName) -> Result<()> {
        crate::fault::point("dm resume");
        self.dm
            .device_suspend(&DevId::Name(name), DmOptions::default())
            .map_err(|e| Error::ioctl("resume", name, e))?;
        Ok(())
    }

    /// Removes device `name` and its node.
    pub fn remove(&self, name: &DmName) -> Result<()> {
        crate::fault::point("dm remove");
        self.dm
            .device_remove(&DevId::Name(name), DmOptions::default())
            .map_err(|e| Error::ioctl("remove", name, e))?;
        node::remove_node(name)
    }

    /// Best-effort removal while undoing a failed step: the first error is
    /// what the caller reports, so a failure here is only logged.
    pub(crate) fn remove_quietly(&self, name: &DmName) {
        if let Err(e) = self.remove(name) {
            log::warn!("undo: {e}");
        }
    }

    /// Information on `name`.
    pub fn info(&self, name: &DmName) -> Result<Info> {
        let i = self
            .dm
            .device_info(&DevId::Name(name))
            .map_err(|e| Error::ioctl("info", name, e))?;
        Ok(Info::from_dm(name, &i))
    }

    /// Whether a device called `name` exists. One info ioctl, not a list of
    /// every device: callers ask this per LV, so it must not grow with the
    /// number of devices.
    pub fn exists(&self, name: &DmName) -> Result<bool> {
        match self.dm.device_info(&DevId::Name(name)) {
            Ok(_) => Ok(true),
            Err(DmError::Core(errors::Error::Ioctl(_, _, _, errno)))
                if *errno == nix::errno::Errno::ENXIO =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::ioctl("info", name, e)),
        }
    }

    /// All devices: name and `major:minor`.
    pub fn list(&self) -> Result<Vec<(DmNameBuf, Device)>> {
        let l = self
            .dm
            .list_devices()
            .map_err(|e| Error::ioctl("list", "all devices", e))?;
        Ok(l.into_iter().map(|(n, d, _)| (n, d)).collect())
    }

    /// The live table of `name`, devices shown as `major:minor`.
    pub fn table(&self, name: &DmName) -> Result<Vec<TableLine>> {
        self.table_or_status(name, true, false)
    }

    /// The table loaded in the inactive slot of `name`.
    pub fn inactive_table(&self, name: &DmName) -> Result<Vec<TableLine>> {
        self.table_or_status(name, true, true)
    }

    /// The status of each target of `name` (in [`TableLine::params`]).
    pub fn status(&self, name: &DmName) -> Result<Vec<TableLine>> {
        self.table_or_status(name, false, false)
    }

    /// [`DmControl::status`] of `name`, or `None` if there is no such device.
    pub fn status_if_exists(&self, name: &DmName) -> Result<Option<Vec<TableLine>>> {
        match self.status(name) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`DmControl::info`] and [`DmControl::status`] of `name` in one ioctl
    /// (the kernel answers a status with the device's info): the cost
    /// recovery's survey pays for every device of a VG.
    pub fn info_and_status(&self, name: &DmName) -> Result<(Info, Vec<TableLine>)> {
        let st = self.table_status(name, DmFlags::empty(), "status")?;
        let info = Info::new(
            DmNameBuf::new(st.name).unwrap_or_else(|_| name.to_owned()),
            Some(st.uuid).filter(|u| !u.is_empty()),
            // The kernel's "huge" kdev_t is in the low 32 bits.
            Device::from_kdev_t(st.dev as u32),
            st.open_count,
            st.event_nr,
            DmFlags::from_bits_truncate(st.flags),
        );
        Ok((info, lines_of(st.targets)))
    }

    fn table_or_status(
        &self,
        name: &DmName,
        table: bool,
        inactive: bool,
    ) -> Result<Vec<TableLine>> {
        let mut flags = DmFlags::empty();
        if table {
            flags |= DmFlags::DM_STATUS_TABLE;
        }
        if inactive {
            flags |= DmFlags::DM_QUERY_INACTIVE_TABLE;
        }
        let op = if table { "table" } else { "status" };
        Ok(lines_of(self.table_status(name, flags, op)?.targets))
    }

    /// `DM_TABLE_STATUS` of `name` with `flags`, through
    /// [`crate::sys::dm_table_status`]: its buffer is sized to the answer
    /// (1 KiB first) rather than the devicemapper crate's 16 KiB, which the
    /// kernel copies in whole and allocates for a status, so a status cost
    /// three times an info. Errors are the crate's, as its ioctls give them.
    fn table_status(
        &self,
        name: &DmName,
        flags: DmFlags,
        op: &'static str,
    ) -> Result<crate::sys::DmTableStatus> {
        // DM_NOFLUSH: a status must never wait on a suspended device's I/O.
        crate::sys::dm_table_status(
            self.dm.file(),
            &name.to_string(),
            (flags | DmFlags::DM_NOFLUSH).bits(),
        )
        .map_err(|e| {
            let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
            let source = DmError::Core(errors::Error::Ioctl(
                DM_TABLE_STATUS_CMD,
                None,
                None,
                Box::new(errno),
            ));
            Error::ioctl(op, name, source)
        })
    }

    /// The status of a device with exactly one target, and that target's type.
    pub fn single_status(&self, name: &DmName) -> Result<(String, String)> {
        let mut lines = self.status(name)?;
        match (lines.pop(), lines.is_empty()) {
            (Some(l), true) => Ok((l.target_type, l.params)),
            _ => Err(Error::state(
                name,
                crate::ErrorKind::Corrupt,
                "expected a table of exactly one target",
            )),
        }
    }

    /// As [`DmControl::single_status`], or `None` if there is no device
    /// `name`: one ioctl where an existence check first would take two.
    /// A device with other than one target is `None` too.
    pub fn single_status_if_exists(&self, name: &DmName) -> Result<Option<(String, String)>> {
        match self.single_status(name) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == crate::ErrorKind::Corrupt => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The status of `name`, which must have one target, of type `ty`;
    /// another type is an error of `kind`.
    pub fn status_of(&self, name: &DmName, ty: &str, kind: crate::ErrorKind) -> Result<String> {
        let (t, p) = self.single_status(name)?;
        if t != ty {
            return Err(Error::state(
                name,
                kind,
                format!("has a {t} target, not {ty}"),
            ));
        }
        Ok(p)
    }

    /// Sends a target message (e.g. to a thin pool) to sector 0 of `name`.
    pub fn message(&self, name: &DmName, msg: &str) -> Result<Option<String>> {
        crate::fault::point("dm message");
        let (_, out) = self
            .dm
            .target_msg(&DevId::Name(name), None, msg)
            .map_err(|e| Error::ioctl("message", format!("{name} ({msg})"), e))?;
        Ok(out)
    }
}

/// The table lines of a status answer's targets.
fn lines_of(targets: Vec<crate::sys::DmTargetStatus>) -> Vec<TableLine> {
    targets
        .into_iter()
        .map(|t| TableLine::new(Sectors(t.start), Sectors(t.length), t.target_type, t.params))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_checked() {
        let d = Device { major: 7, minor: 0 };
        let ok = [
            TableLine::linear(Sectors(0), Sectors(8), d, Sectors(0)),
            TableLine::linear(Sectors(8), Sectors(8), d, Sectors(16)),
        ];
        assert!(check_table(&ok).is_ok());
        assert_eq!(table_size(&ok), Sectors(16));
        assert!(check_table(&[]).is_err());
        assert!(check_table(&ok[1..]).is_err());
        assert!(
            check_table(&[TableLine::new(Sectors(0), Sectors(8), "x".repeat(16), "")]).is_err()
        );
        assert!(check_table(&[TableLine::new(Sectors(0), Sectors(0), "error", "")]).is_err());
        assert!(check_table(&[TableLine::new(Sectors(0), Sectors(8), "linear", "a\0b")]).is_err());
        assert!(
            check_table(&[TableLine::new(Sectors(u64::MAX), Sectors(8), "error", "")]).is_err()
        );
    }
}
