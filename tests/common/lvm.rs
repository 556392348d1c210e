//! LVM2's tools as the oracle: scratch VGs on loop devices and report parsing.
#![allow(dead_code)]

use super::{LoopDev, sh};
use std::collections::HashMap;

/// Runs LVM commands one after another in one `lvm` process (its script
/// mode, which stops at the first that fails): one process start instead
/// of one per command. Lines are split at blanks, with no shell quoting.
/// Panics unless all succeed; returns their stdout.
pub fn script(cmds: &[&str]) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    // One copy of this module per test file in a merged binary: the
    // module path tells their files apart (see LoopDev::new).
    let file = std::env::temp_dir().join(format!(
        "lvsnap-script-{}-{}-{}.lvm",
        std::process::id(),
        module_path!().replace("::", "."),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    // The script mode takes a file whose first line starts with "#!".
    std::fs::write(&file, format!("#!lvm\n{}\n", cmds.join("\n"))).expect("lvm script");
    let out = super::output(&["lvm", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    out
}

/// A scratch VG on its own loop devices; removed with everything in it on drop.
pub struct ScratchVg {
    pub name: String,
    pub pvs: Vec<LoopDev>,
}

impl ScratchVg {
    /// A VG `name` on `count` PVs of `mib` MiB each, made by `vgcreate` with
    /// `extra` options (e.g. `-s 1M`).
    pub fn new(name: &str, count: usize, mib: u64, extra: &str) -> ScratchVg {
        let pvs: Vec<LoopDev> = (0..count).map(|_| LoopDev::new(mib << 20)).collect();
        let paths: Vec<String> = pvs.iter().map(|p| p.path.display().to_string()).collect();
        // One `lvm` process for both (a shell and two execs before).
        script(&[
            &format!("pvcreate -q {}", paths.join(" ")),
            &format!("vgcreate -q {extra} {name} {}", paths.join(" ")),
        ]);
        ScratchVg {
            name: name.to_string(),
            pvs,
        }
    }

    /// `lvm` with this VG's name appended, e.g. `vg.lvm("lvcreate -L 8M -n lv0")`.
    pub fn lvm(&self, args: &str) -> String {
        sh(&format!("{args} {}", self.name))
    }

    /// The VG's metadata sequence number, as `vgs` reports it.
    pub fn seqno(&self) -> u64 {
        sh(&format!("vgs --noheadings -o seqno {}", self.name))
            .trim()
            .parse()
            .expect("seqno")
    }

    /// Asserts `vgck` finds nothing wrong.
    pub fn vgck(&self) {
        sh(&format!("vgck {}", self.name));
    }

    /// `lvs -a` rows (hidden LVs included) keyed by lv_name, with the given
    /// fields, sizes in bytes.
    pub fn lvs(&self, fields: &str) -> HashMap<String, HashMap<String, String>> {
        let out = sh(&format!(
            "lvs -a --reportformat json --units b --nosuffix -o lv_name,{fields} {}",
            self.name
        ));
        let v: serde_json::Value = serde_json::from_str(&out).expect("lvs json");
        let mut rows = HashMap::new();
        for lv in v["report"][0]["lv"].as_array().expect("lv array") {
            let obj = lv.as_object().expect("lv object");
            let row: HashMap<String, String> = obj
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            rows.insert(row["lv_name"].trim_matches(['[', ']']).to_string(), row);
        }
        rows
    }
}

impl Drop for ScratchVg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("vgremove")
            .args(["-f", "-q", &self.name])
            .output();
    }
}
