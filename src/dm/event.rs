//! Waiting for device-mapper events without busy polling.
//!
//! Device-mapper bumps a device's event counter when a target raises an
//! event (a snapshot invalidated, a thin pool crossing its low-water mark,
//! ...), and wakes every `poll()` on the control file armed with
//! `DM_DEV_ARM_POLL`. We arm, re-read the counter (so an event between the
//! caller's read and the arm is not missed), then sleep in `poll()` until a
//! wake-up or the deadline.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use devicemapper::{DM, DmName};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::device::DmControl;
use super::error::{Error, Result};

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The device's event counter moved; this is its new value.
    Event(u32),
    /// The timeout passed first.
    TimedOut,
}

impl DmControl {
    /// The event counter of `name`, to pass to [`DmControl::wait_event`].
    pub fn event_nr(&self, name: &DmName) -> Result<u32> {
        Ok(self.info(name)?.event_nr)
    }

    /// Blocks until the event counter of `name` differs from `since`, or
    /// `timeout` passes. Uses its own control file, so waits in several
    /// threads do not disturb each other.
    ///
    /// ```no_run
    /// use lvsnap::dm::{check_dm_name, DmControl, WaitOutcome};
    /// use std::time::Duration;
    /// let dm = DmControl::open()?;
    /// let snap = check_dm_name("vg-snap")?;
    /// let since = dm.event_nr(&snap)?;
    /// if let WaitOutcome::Event(_) = dm.wait_event(&snap, since, Duration::from_secs(10))? {
    ///     println!("status now {:?}", dm.single_status(&snap)?);
    /// }
    /// # Ok::<(), lvsnap::dm::Error>(())
    /// ```
    pub fn wait_event(&self, name: &DmName, since: u32, timeout: Duration) -> Result<WaitOutcome> {
        let deadline = Instant::now().checked_add(timeout);
        let waiter = DM::new().map_err(|e| Error::ioctl("open", "/dev/mapper/control", e))?;
        loop {
            waiter
                .arm_poll()
                .map_err(|e| Error::ioctl("arm poll", name, e))?;
            let now = self.event_nr(name)?;
            if now != since {
                return Ok(WaitOutcome::Event(now));
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Ok(WaitOutcome::TimedOut);
            }
            poll_readable(&waiter, left, name)?;
        }
    }
}

/// A control file that wakes on an event of any device: [`EventWaiter::arm`],
/// look at the devices of interest, then [`EventWaiter::sleep`]; an event
/// after the arm ends the sleep at once, so none is missed between the look
/// and the sleep. For watching many devices with one thread.
pub struct EventWaiter {
    dm: DM,
}

impl std::fmt::Debug for EventWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventWaiter")
    }
}

impl EventWaiter {
    /// Opens its own `/dev/mapper/control`.
    pub fn new() -> Result<EventWaiter> {
        let dm = DM::new().map_err(|e| Error::ioctl("open", "/dev/mapper/control", e))?;
        Ok(EventWaiter { dm })
    }

    /// Arms the wake-up for the next event of any device.
    pub fn arm(&self) -> Result<()> {
        self.dm
            .arm_poll()
            .map(|_| ())
            .map_err(|e| Error::ioctl("arm poll", "/dev/mapper/control", e))
    }

    /// Sleeps until an event since the last [`EventWaiter::arm`], or until
    /// `timeout` passes; true if an event came.
    pub fn sleep(&self, timeout: Duration) -> Result<bool> {
        poll_in(&self.dm, timeout).map_err(|e| Error::io("poll on /dev/mapper/control", e))
    }
}

/// Sleeps until `dm`'s control file polls readable (true) or `timeout`
/// passes; a signal ends the sleep early (false).
fn poll_in(dm: &DM, timeout: Duration) -> std::io::Result<bool> {
    // Round up so a sub-millisecond remainder does not spin.
    let ms = timeout.as_micros().div_ceil(1000);
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(dm.file().as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Sleeps until the control file polls readable or `left` passes.
fn poll_readable(dm: &DM, left: Duration, name: &DmName) -> Result<()> {
    poll_in(dm, left)
        .map(|_| ())
        .map_err(|e| Error::io(format!("poll on /dev/mapper/control for {name}"), e))
}
