//! What the CLI prints: JSON objects, text tables and lines, progress.

use std::time::{Duration, SystemTime};

use lvsnap::snapshot::{ChangedBlocks, MonitorEvent, RollbackState, SnapshotStatus};
use serde_json::json;

/// `{"block_size": N, "ranges": [{"byte_offset": N, "size_bytes": N}, ...]}`.
pub(crate) fn changed_json(c: &ChangedBlocks) -> serde_json::Value {
    let ranges: Vec<_> = c
        .ranges
        .iter()
        .map(|r| json!({"byte_offset": r.byte_offset, "size_bytes": r.size_bytes}))
        .collect();
    json!({"block_size": c.block_size, "ranges": ranges})
}

/// One `BYTE_OFFSET SIZE_BYTES` row per range under a header, then a total.
pub(crate) fn changed_text(c: &ChangedBlocks) -> String {
    let mut s = String::from("BYTE_OFFSET   SIZE_BYTES\n");
    for r in &c.ranges {
        s.push_str(&format!("{:<13} {}\n", r.byte_offset, r.size_bytes));
    }
    s.push_str(&format!(
        "{} range(s), {} bytes, in blocks of {} bytes\n",
        c.ranges.len(),
        c.total_bytes(),
        c.block_size
    ));
    s
}

/// One monitor event as a JSON line: `{"event", "vg", "snapshot", ...}`.
pub(crate) fn monitor_json(ev: &MonitorEvent) -> serde_json::Value {
    let (vg, snapshot) = ev.snapshot();
    let mut v = json!({"event": ev.name(), "vg": vg, "snapshot": snapshot});
    let bytes = |b: lvsnap::units::Bytes| u64::try_from(*b).unwrap_or(u64::MAX);
    match ev {
        MonitorEvent::Extended {
            old, new, percent, ..
        } => {
            v["old_size_bytes"] = json!(bytes(*old));
            v["new_size_bytes"] = json!(bytes(*new));
            v["data_percent"] = json!(percent);
        }
        MonitorEvent::Merged { origin, .. } => v["origin"] = json!(origin),
        MonitorEvent::NoSpace { reason, .. } => v["reason"] = json!(reason),
        MonitorEvent::Invalid { .. } => {}
    }
    v
}

/// One monitor event as a line of text.
pub(crate) fn monitor_line(ev: &MonitorEvent) -> String {
    let (vg, snap) = ev.snapshot();
    match ev {
        MonitorEvent::Extended {
            old, new, percent, ..
        } => format!("extended {vg}/{snap}: {percent:.2}% used, {old} -> {new}"),
        MonitorEvent::Invalid { .. } => format!("invalid {vg}/{snap}: its store overflowed"),
        MonitorEvent::Merged { origin, .. } => format!("merged {vg}/{snap} into {origin}"),
        MonitorEvent::NoSpace { reason, .. } => format!("no_space {vg}/{snap}: {reason}"),
    }
}

/// `{"state": .., "percent": .., "reason": ..}`; reason is "" when none.
pub(crate) fn rollback_json(st: &RollbackState) -> serde_json::Value {
    json!({
        "state": st.name(),
        "percent": st.percent(),
        "reason": st.reason().unwrap_or_default(),
    })
}

/// A one-line progress display on stderr, only when it is a terminal.
pub(crate) struct Progress {
    tty: bool,
    shown: bool,
    last: Option<std::time::Instant>,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            tty: std::io::stderr().is_terminal(),
            shown: false,
            last: None,
        }
    }

    pub(crate) fn show(&mut self, what: &str, percent: f64) {
        if !self.tty {
            return;
        }
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_millis(200) && percent < 100.0)
        {
            return;
        }
        self.last = Some(now);
        eprint!("\r{what}: {percent:6.2}%");
        self.shown = true;
    }

    pub(crate) fn done(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

pub(crate) fn to_json(s: &SnapshotStatus) -> serde_json::Value {
    let mut v = json!({
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
    });
    if let Some(r) = &s.reason {
        v["reason"] = json!(r);
    }
    v
}

/// `kubectl get lvs` columns; booleans print `true` or nothing, as there.
pub(crate) fn table(snaps: &[SnapshotStatus], now: SystemTime) -> String {
    let mut rows = vec![
        [
            "NAME",
            "CAPACITY",
            "SOURCEVOLUME",
            "STATE",
            "MERGING",
            "INVALID",
            "AGE",
        ]
        .map(String::from),
    ];
    for s in snaps {
        let flag = |b: bool| if b { "true".to_string() } else { String::new() };
        let age = now
            .duration_since(s.creation_time)
            .unwrap_or(Duration::ZERO);
        rows.push([
            s.name.clone(),
            (*s.capacity).to_string(),
            s.source_volume.clone(),
            s.state.to_string(),
            flag(s.merging),
            flag(s.invalid),
            human_age(age),
        ]);
    }
    let mut w = [0usize; 7];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let mut s = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(&format!("{:<width$}   ", c, width = w[i]));
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// An age as kubectl prints it (`42s`, `5m31s`, `3h2m`, `5d`, `53y`).
pub(crate) fn human_age(d: Duration) -> String {
    let secs = d.as_secs();
    let (m, h, days) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{days}d"),
            hh => format!("{days}d{hh}h"),
        }
    } else if h < 24 * 365 * 2 {
        format!("{days}d")
    } else if h < 24 * 365 * 8 {
        let y = days / 365;
        match days % 365 {
            0 => format!("{y}y"),
            dd => format!("{y}y{dd}d"),
        }
    } else {
        format!("{}y", days / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_like_kubectl() {
        let s = |n| human_age(Duration::from_secs(n));
        assert_eq!(s(0), "0s");
        assert_eq!(s(119), "119s");
        assert_eq!(s(331), "5m31s");
        assert_eq!(s(600), "10m");
        assert_eq!(s(3 * 3600 + 120), "3h2m");
        assert_eq!(s(47 * 3600), "47h");
        assert_eq!(s(5 * 86400), "5d");
        assert_eq!(s(53 * 365 * 86400), "53y");
    }
}
