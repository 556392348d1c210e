//! `lvsnap`: operator CLI for LVM volume snapshots (see DESIGN.md, "CLI contract").

#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use lvsnap::Error;
use lvsnap::snapshot::Error as SnapError;
use lvsnap::snapshot::{
    ExtendSize, Monitor, MonitorOptions, RestoreOptions, RollbackOptions, RollbackState, SnapSize,
    SnapshotOptions, VolumeGroup, parse_size,
};

#[path = "lvsnap/output.rs"]
mod output;
use output::{
    Progress, changed_json, changed_text, monitor_json, monitor_line, rollback_json, table, to_json,
};

/// LVM volume snapshots without the lvm command.
#[derive(Parser)]
#[command(name = "lvsnap", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a snapshot SNAP of the volume VG/LV (thin origin: thin snapshot).
    Create {
        /// The origin, as VG/LV (or /dev/VG/LV, /dev/mapper/VG-LV).
        origin: String,
        /// The snapshot's name (or VG/SNAP, in the origin's VG).
        snap: String,
        /// COW size: bytes, a size with K/M/G/T, or a percentage of the origin
        /// such as 50% (default: the origin's size). Ignored for thin origins.
        #[arg(long)]
        snapsize: Option<String>,
        /// COW chunk size, a power of 2 from 4K to 512K (default 4K).
        #[arg(long)]
        chunk_size: Option<String>,
        /// Make the snapshot writable (default: read-only).
        #[arg(long)]
        writable: bool,
        /// Print the new snapshot's status as JSON (the keys of `list --json`).
        #[arg(long)]
        json: bool,
    },
    /// Create one snapshot per origin, all of VG, at one instant and in one
    /// commit: all or none.
    CreateGroup {
        /// The volume group.
        vg: String,
        /// LV=SNAP: snapshot SNAP of origin LV (one or more).
        #[arg(required = true, value_name = "LV=SNAP")]
        pairs: Vec<String>,
        /// COW size of each snapshot, as for create. Ignored for thin origins.
        #[arg(long)]
        snapsize: Option<String>,
        /// Make the snapshots writable (default: read-only).
        #[arg(long)]
        writable: bool,
        /// Print an array of the snapshots' statuses as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Watch the COW snapshots of the VGs (all by default), extend a store
    /// whose data_percent is above the threshold, and print one line per
    /// event (extended, invalid, merged, no_space).
    Monitor {
        /// The volume groups to watch (default: all).
        vgs: Vec<String>,
        /// Extend above this data_percent (default: lvm.conf's
        /// snapshot_autoextend_threshold; 100 never extends).
        #[arg(long)]
        threshold: Option<u32>,
        /// Extend by this percent of the store's size (default: lvm.conf's
        /// snapshot_autoextend_percent).
        #[arg(long)]
        percent: Option<u32>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
        /// Stop after this many seconds, with exit status 0.
        #[arg(long, value_name = "SECONDS")]
        exit_after: Option<u64>,
    },
    /// List snapshots, of one VG or of all.
    List {
        vg: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one snapshot's status.
    Status {
        /// The snapshot, as VG/SNAP.
        snap: String,
        #[arg(long)]
        json: bool,
    },
    /// Roll the origin back to the snapshot by merging it. Prints the state;
    /// exits 0 unless Failed (or, with --wait, Deferred).
    Rollback {
        snap: String,
        #[arg(long)]
        wait: bool,
        /// Keep the snapshot for another rollback (thin snapshots only).
        #[arg(long)]
        keep: bool,
        #[arg(long)]
        json: bool,
    },
    /// Restore the snapshot into a new volume NEWLV (always waits for the
    /// copy to end; --wait is accepted for the contract).
    Restore {
        snap: String,
        newlv: String,
        #[arg(long)]
        size: Option<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Delete a snapshot.
    Delete { snap: String },
    /// Grow a COW snapshot's store to SIZE, or by +SIZE, as lvextend does
    /// (rounded up to whole extents, capped at what the origin can fill).
    Extend {
        /// The snapshot, as VG/SNAP.
        snap: String,
        /// The new size, or +SIZE to grow by (K/M/G/T as powers of 1024).
        #[arg(allow_hyphen_values = true)]
        size: String,
    },
    /// Print the byte ranges of the origin written since VG/SNAP was taken,
    /// or (with --base) those that differ between the older VG/SNAP0 and
    /// VG/SNAP; never fewer than changed.
    Changed {
        /// The snapshot, as VG/SNAP.
        snap: String,
        /// An older snapshot of the same origin (or thin LV of the same
        /// pool), as VG/SNAP0.
        #[arg(long)]
        base: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The library's warnings (a metadata copy skipped, a PV seen twice), one
/// line each on stderr, as LVM prints its own.
struct Warnings;

impl log::Log for Warnings {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("lvsnap: warning: {}", one_line(&r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    static WARNINGS: Warnings = Warnings;
    if log::set_logger(&WARNINGS).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lvsnap: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// `--help` and `--version` print as clap prints them; any other parse
/// error is the one line clap's message starts with (its usage and tips
/// follow on other lines), as every lvsnap error is one line.
fn usage_error(e: &clap::Error) -> ExitCode {
    match usage_line(e) {
        None => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        Some(line) => {
            eprintln!("{line}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

/// The one line [`usage_error`] prints for `e`, or `None` for `--help` and
/// `--version`, which print as clap prints them.
pub(crate) fn usage_line(e: &clap::Error) -> Option<String> {
    use clap::error::ErrorKind as K;
    if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
        return None;
    }
    // Clap's message is its first paragraph (a list of missing arguments
    // runs over several lines); with no subcommand it prints the help.
    let text = e.render().to_string();
    let first = match e.kind() {
        K::DisplayHelpOnMissingArgumentOrSubcommand => "a command is required".to_owned(),
        _ => text
            .split("\n\n")
            .find(|p| !p.trim().is_empty())
            .unwrap_or("invalid arguments")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    };
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    Some(format!(
        "lvsnap: error: {} (see lvsnap --help)",
        one_line(first)
    ))
}

/// `s` with control characters escaped (`\n`, `\u{1b}`), so a name given
/// on the command line cannot break an error into lines or drive a terminal.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits `VG/NAME`.
/// Splits an LV argument as LVM's tools read one: `VG/NAME`, `/dev/VG/NAME`
/// or `/dev/mapper/VG-NAME` (with a `-` in either name doubled).
pub(crate) fn vg_and_name(s: &str) -> Result<(String, String), Error> {
    let bad = || SnapError::InvalidArgument(format!("'{}': expected VG/NAME", one_line(s)));
    if let Some(dm) = s.strip_prefix("/dev/mapper/") {
        return dm_name_split(dm).ok_or_else(|| bad().into());
    }
    let path = s.strip_prefix("/dev/").unwrap_or(s);
    match path.split_once('/') {
        Some((vg, name)) if !vg.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((vg.to_owned(), name.to_owned()))
        }
        _ => Err(bad().into()),
    }
}

/// A device-mapper name `VG-LV` as an LV argument: an LV's own device,
/// not one of its layers.
fn dm_name_split(dm: &str) -> Option<(String, String)> {
    match lvsnap::dm::LvmDmName::split(dm)? {
        (vg, lv, None) if !lv.contains('/') => Some((vg, lv)),
        _ => None,
    }
}

/// A new LV's name, given alone or, as `lvcreate -n` takes it, as a path in
/// VG, the VG of the LV it is made from; another VG is refused as LVM refuses it.
fn name_in_vg(vg: &str, s: &str) -> Result<String, Error> {
    if !s.contains('/') {
        return Ok(s.to_owned());
    }
    let (other, name) = vg_and_name(s)?;
    if other != vg {
        return Err(SnapError::InvalidArgument(format!(
            "Please use a single volume group name (\"{}\" or \"{}\").",
            one_line(vg),
            one_line(&other)
        ))
        .into());
    }
    Ok(name)
}

fn run(cmd: Cmd) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    match cmd {
        Cmd::Create {
            origin,
            snap,
            snapsize,
            chunk_size,
            writable,
            json,
        } => {
            let (vg, lv) = vg_and_name(&origin)?;
            let snap = name_in_vg(&vg, &snap)?;
            let mut opts = SnapshotOptions::default().writable(writable);
            if let Some(s) = snapsize {
                opts = opts.snapsize(s.parse::<SnapSize>()?);
            }
            if let Some(c) = chunk_size {
                opts = opts.chunk_size(parse_size(&c)?);
            }
            let vg = VolumeGroup::open(&vg)?;
            let created = vg.create_snapshot(&lv, &snap, &opts);
            aftermath(&vg, &created);
            let created = created?;
            if created.snapsize_ignored {
                eprintln!(
                    "lvsnap: {} is thin: the snapshot is thin and takes no snapsize",
                    one_line(&origin)
                );
            }
            if json {
                writeln!(out, "{}", to_json(&created.status)).ok();
            } else {
                writeln!(
                    out,
                    "Snapshot {}/{} of {} created.",
                    created.status.vg, created.status.name, created.status.source_volume
                )
                .ok();
            }
        }
        Cmd::CreateGroup {
            vg,
            pairs,
            snapsize,
            writable,
            json,
        } => {
            let items = pairs
                .iter()
                .map(|p| match p.split_once('=') {
                    Some((lv, snap)) if !lv.is_empty() && !snap.is_empty() => Ok((lv, snap)),
                    _ => Err(SnapError::InvalidArgument(format!(
                        "'{p}': expected LV=SNAP"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut opts = SnapshotOptions::default().writable(writable);
            if let Some(s) = snapsize {
                opts = opts.snapsize(s.parse::<SnapSize>()?);
            }
            let vg = VolumeGroup::open(&vg)?;
            let made = vg.create_group(&items, &opts)?;
            for c in made.iter().filter(|c| c.snapsize_ignored) {
                eprintln!(
                    "lvsnap: {}/{} is thin: its snapshot is thin and takes no snapsize",
                    c.status.vg, c.status.source_volume
                );
            }
            if json {
                let v: Vec<_> = made.iter().map(|c| to_json(&c.status)).collect();
                writeln!(out, "{}", serde_json::Value::Array(v)).ok();
            } else {
                for c in &made {
                    writeln!(
                        out,
                        "Snapshot {}/{} of {} created.",
                        c.status.vg, c.status.name, c.status.source_volume
                    )
                    .ok();
                }
            }
        }
        Cmd::Monitor {
            vgs,
            threshold,
            percent,
            json,
            exit_after,
        } => {
            let mut opts = MonitorOptions::from_lvm_conf();
            if let Some(t) = threshold {
                if t > 100 {
                    return Err(SnapError::InvalidArgument(format!(
                        "--threshold {t}: must be from 0 to 100"
                    ))
                    .into());
                }
                opts.threshold = t;
            }
            if let Some(p) = percent {
                opts.percent = p;
            }
            for vg in &vgs {
                VolumeGroup::open(vg)?;
            }
            opts.vgs = vgs;
            let mut m = Monitor::new(opts)?;
            let deadline = exit_after.map(|s| std::time::Instant::now() + Duration::from_secs(s));
            loop {
                let left = match deadline {
                    Some(d) => d.saturating_duration_since(std::time::Instant::now()),
                    None => Duration::from_secs(3600),
                };
                if left.is_zero() {
                    break;
                }
                if let Some(ev) = m.next_event(left)? {
                    let line = if json {
                        monitor_json(&ev).to_string()
                    } else {
                        monitor_line(&ev)
                    };
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                        break;
                    }
                }
            }
        }
        Cmd::List { vg, json } => {
            let snaps = match vg {
                Some(vg) => {
                    let vg = VolumeGroup::open(&vg)?;
                    warn_if_damaged(&vg);
                    let snaps = vg.snapshots();
                    aftermath(&vg, &snaps);
                    snaps?
                }
                // As lvs: the VGs that can be read, and a warning for each
                // that cannot.
                None => {
                    let (snaps, problems) = lvsnap::snapshot::all_snapshots_and_problems()?;
                    for p in problems {
                        eprintln!("lvsnap: warning: {}", one_line(&p));
                    }
                    snaps
                }
            };
            if json {
                let v: Vec<_> = snaps.iter().map(to_json).collect();
                writeln!(out, "{}", serde_json::Value::Array(v)).ok();
            } else {
                write!(out, "{}", table(&snaps, SystemTime::now())).ok();
            }
        }
        Cmd::Status { snap, json } => {
            let (vg, name) = vg_and_name(&snap)?;
            let vg = VolumeGroup::open(&vg)?;
            warn_if_damaged(&vg);
            let st = vg.snapshot_status(&name);
            aftermath(&vg, &st);
            let st = st?;
            if let Some(r) = &st.reason {
                eprintln!("lvsnap: {snap} is {}: {r}", st.state);
            }
            if json {
                writeln!(out, "{}", to_json(&st)).ok();
            } else {
                write!(
                    out,
                    "{}",
                    table(std::slice::from_ref(&st), SystemTime::now())
                )
                .ok();
            }
        }
        Cmd::Rollback {
            snap,
            wait,
            keep,
            json,
        } => {
            let (vg, name) = vg_and_name(&snap)?;
            let vg = VolumeGroup::open(&vg)?;
            let rb = vg.rollback_with(&name, &RollbackOptions::default().keep(keep));
            aftermath(&vg, &rb);
            let mut rb = rb?;
            let mut state = rb.state();
            if wait && !state.is_settled() {
                let mut bar = Progress::new();
                state = rb.wait_with(|st| bar.show("merging", st.percent()))?;
                bar.done();
            }
            if json {
                writeln!(out, "{}", rollback_json(&state)).ok();
            } else {
                writeln!(out, "Rollback of {snap} into {}: {state}", rb.origin()).ok();
            }
            // Deferred without --wait: recorded and will run, so success.
            let failed = match state {
                RollbackState::Failed { .. } => true,
                RollbackState::Deferred { .. } => wait,
                _ => false,
            };
            return Ok(if failed {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            });
        }
        Cmd::Restore {
            snap,
            newlv,
            size,
            wait: _,
        } => {
            let (vg, name) = vg_and_name(&snap)?;
            let newlv = name_in_vg(&vg, &newlv)?;
            let mut opts = RestoreOptions::default();
            if let Some(s) = size {
                opts = opts.size(parse_size(&s)?);
            }
            let vg = VolumeGroup::open(&vg)?;
            let mut bar = Progress::new();
            let made = vg.restore(&name, &newlv, &opts, |p| bar.show("copying", p.percent));
            bar.done();
            aftermath(&vg, &made);
            let made = made?;
            writeln!(
                out,
                "Snapshot {snap} restored into {}/{} ({}{}).",
                vg.name(),
                made.name,
                made.size,
                if made.thin { ", thin" } else { "" }
            )
            .ok();
        }
        Cmd::Extend { snap, size } => {
            let (vg, name) = vg_and_name(&snap)?;
            let size: ExtendSize = size.parse()?;
            let e = VolumeGroup::open(&vg)?.extend_snapshot(&name, size)?;
            if e.capped {
                eprintln!("lvsnap: reached maximum COW size ({})", e.size);
            }
            if e.size == e.old_size {
                writeln!(out, "Size of snapshot {snap} unchanged from {}.", e.size).ok();
            } else {
                writeln!(
                    out,
                    "Size of snapshot {snap} changed from {} to {}.",
                    e.old_size, e.size
                )
                .ok();
            }
        }
        Cmd::Delete { snap } => {
            let (vg, name) = vg_and_name(&snap)?;
            let v = VolumeGroup::open(&vg)?;
            let r = v.delete_snapshot(&name);
            aftermath(&v, &r);
            r?;
            writeln!(out, "Snapshot {vg}/{name} deleted.").ok();
        }
        Cmd::Changed { snap, base, json } => {
            let (vg, name) = vg_and_name(&snap)?;
            let base = match &base {
                Some(b) => {
                    let (bvg, bname) = vg_and_name(b)?;
                    if bvg != vg {
                        return Err(SnapError::InvalidArgument(format!(
                            "base {b} is not in volume group {vg}"
                        ))
                        .into());
                    }
                    Some(bname)
                }
                None => None,
            };
            let changed = VolumeGroup::open(&vg)?.changed_blocks(&name, base.as_deref())?;
            if json {
                writeln!(out, "{}", changed_json(&changed)).ok();
            } else {
                write!(out, "{}", changed_text(&changed)).ok();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Tells what recovery repaired and what went wrong after a change had
/// landed, one line each on stderr, after a command that succeeded.
fn aftermath<T, E>(vg: &VolumeGroup, outcome: &Result<T, E>) {
    // A failed command prints its one error line only; the library logs the rest.
    if outcome.is_err() {
        return;
    }
    let rec = vg.take_recovery();
    for r in &rec.repairs {
        eprintln!("lvsnap: recovered {}: {r}", vg.name());
    }
    for u in &rec.unresolved {
        eprintln!("lvsnap: warning: {u}");
    }
    for w in vg.take_warnings() {
        eprintln!("lvsnap: warning: {w}");
    }
}

/// Reads of a VG LVM refuses still report what they can, and say so.
fn warn_if_damaged(vg: &VolumeGroup) {
    if let Err(e) = vg.check() {
        eprintln!("lvsnap: warning: {}", one_line(&e.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vg_name_split() {
        let split = |s| {
            let (vg, name) = vg_and_name(s).unwrap();
            (vg, name)
        };
        let pair = |vg: &str, lv: &str| (vg.to_owned(), lv.to_owned());
        assert_eq!(split("vg0/snap"), pair("vg0", "snap"));
        assert_eq!(split("/dev/vg0/snap"), pair("vg0", "snap"));
        assert_eq!(split("/dev/mapper/vg0-snap"), pair("vg0", "snap"));
        assert_eq!(split("/dev/mapper/my--vg-a--b"), pair("my-vg", "a-b"));
        for bad in [
            "vg0",
            "/snap",
            "vg0/",
            "a/b/c",
            "",
            "/dev/vg0",
            "/dev/mapper/vg0",
            "/dev/mapper/-a",
            "/dev/mapper/vg0-",
            "/dev/mapper/vg--0",
            "/dev/mapper/vg0-a-real",
        ] {
            assert!(vg_and_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_names_may_name_their_vg() {
        assert_eq!(name_in_vg("vg0", "s1").unwrap(), "s1");
        assert_eq!(name_in_vg("vg0", "vg0/s1").unwrap(), "s1");
        assert_eq!(name_in_vg("vg0", "/dev/vg0/s1").unwrap(), "s1");
        let e = name_in_vg("vg0", "vg1/s1").unwrap_err().to_string();
        assert!(e.contains("single volume group name"), "{e}");
        assert!(name_in_vg("vg0", "vg0/").is_err());
    }
}
