//! Support for tests that need a real kernel device-mapper (run through vm/run).
#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Fails the test loudly unless a kernel device-mapper is reachable: a test
/// that needs one must never pass without it.
pub fn require_dm() {
    assert!(
        Path::new("/dev/mapper/control").exists(),
        "no /dev/mapper/control: run this test through vm/run (plain `cargo test` does), \
         or as root on a kernel with device-mapper"
    );
}

/// Whether `sh -c cmd` would only split `cmd` at blanks and run its first
/// word: no quoting, expansion, redirection, globbing, list or assignment.
fn plain_command(cmd: &str) -> bool {
    let first = cmd.split_whitespace().next().unwrap_or("");
    !first.is_empty()
        && !first.contains('=')
        && !cmd.contains(|c: char| "|&;<>()$`\\\"'*?[]#~{}!\n".contains(c))
}

/// Runs a command line under `sh -c`, panicking with its output unless it
/// succeeds. A plain command line (see [`plain_command`]) is run directly,
/// split at blanks as `sh` would split it: one exec, not two (each costs
/// about 0.1 s under TCG).
pub fn sh(cmd: &str) -> String {
    let mut c = if plain_command(cmd) {
        let mut w = cmd.split_whitespace();
        let mut c = Command::new(w.next().expect("a command"));
        c.args(w);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c").arg(cmd);
        c
    };
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{cmd}`: {e}"));
    assert!(
        out.status.success(),
        "`{cmd}` failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command directly, not through a shell (benches time it);
/// panics with its output unless it succeeds.
pub fn run(argv: &[&str]) {
    output(argv);
}

/// [`run`], returning the command's stdout.
pub fn output(argv: &[&str]) -> String {
    let (cmd, args) = argv.split_first().expect("a command");
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the `lvsnap` CLI built with the tests: (exit code, stdout, stderr).
pub fn lvsnap(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lvsnap"))
        .args(args)
        .output()
        .expect("run lvsnap");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A loop device over a sparse file in the (guest tmpfs) temp dir; detached on drop.
pub struct LoopDev {
    pub path: PathBuf,
    file: PathBuf,
    // Taken in drop, so the device is detached before its file goes.
    dev: Option<lvsnap::sys::LoopDevice>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl LoopDev {
    pub fn new(size_bytes: u64) -> LoopDev {
        // Each test file has its own copy of this module (and of NEXT) in
        // tests/vm.rs: the module path tells the copies' files apart.
        let file = std::env::temp_dir().join(format!(
            "lvsnap-test-{}-{}-{}.img",
            std::process::id(),
            module_path!().replace("::", "."),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        File::create(&file)
            .and_then(|f| f.set_len(size_bytes))
            .expect("create loop backing file");
        let dev = lvsnap::sys::LoopDevice::attach(&file).expect("attach a loop device");
        LoopDev {
            path: dev.path().to_path_buf(),
            file,
            dev: Some(dev),
        }
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        drop(self.dev.take());
        let _ = fs::remove_file(&self.file);
    }
}

/// Names of all device-mapper devices, sorted, for before/after comparisons.
pub fn dm_names() -> Vec<String> {
    let dm = devicemapper::DM::new().expect("open /dev/mapper/control");
    let mut v: Vec<String> = dm
        .list_devices()
        .expect("list dm devices")
        .into_iter()
        .map(|(n, _, _)| n.to_string())
        .collect();
    v.sort();
    v
}

/// Names of the device-mapper devices that start with one of `prefixes`,
/// sorted: a test whose devices (and every layer made from their names)
/// all start so compares only these, and can run beside other tests.
pub fn dm_names_with(prefixes: &[&str]) -> Vec<String> {
    dm_names()
        .into_iter()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .collect()
}

/// `sh(cmd)` for a dmsetup command over every device (`dmsetup table`,
/// `dmsetup info -c`): dmsetup lists the devices, then asks each, so a
/// device another test removes in between fails the whole command with
/// "No such device". That is a race between tests, not a finding: the
/// command runs again (at most 5 times).
pub fn dm_listing(cmd: &str) -> String {
    for _ in 0..4 {
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{cmd}`: {e}"));
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if !String::from_utf8_lossy(&out.stderr).contains("No such device") {
            break;
        }
    }
    sh(cmd)
}

/// Names of VG `vg`'s device-mapper devices (LVM's `<vg>-<lv>`, dashes in
/// the VG name doubled), sorted: a test that compares only these can run
/// beside tests on other VGs.
pub fn dm_names_of(vg: &str) -> Vec<String> {
    let prefix = format!("{}-", vg.replace('-', "--"));
    dm_names()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Writes `len` bytes of `byte` at `offset` of a block device, synchronously.
pub fn write_pattern(dev: &Path, offset: u64, len: usize, byte: u8) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dev)
        .expect("open for write");
    f.write_all_at(&vec![byte; len], offset).expect("write");
    f.sync_all().expect("fsync");
}

/// Reads `len` bytes at `offset` of a block device, bypassing the page cache.
pub fn read_at(dev: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev)
        .expect("open for read");
    // O_DIRECT needs an aligned buffer: over-allocate and slice at 4 KiB.
    let mut raw = vec![0u8; len + 4096];
    let start = raw.as_ptr().align_offset(4096);
    let buf = &mut raw[start..start + len];
    f.read_exact_at(buf, offset).expect("read");
    buf.to_vec()
}
pub mod lvm;

/// The keys of a snapshot's JSON object (`status`, `list`, `create --json`),
/// as DESIGN.md gives them.
pub const STATUS_JSON_KEYS: [&str; 10] = [
    "name",
    "vg",
    "source_volume",
    "capacity_bytes",
    "thin",
    "state",
    "merging",
    "invalid",
    "data_percent",
    "creation_time",
];

/// Points LVM_SYSTEM_DIR at a fresh dir whose lvm.conf is the VM's with
/// `extra` appended; the previous value comes back on drop.
pub struct Conf {
    dir: std::path::PathBuf,
    old: Option<std::ffi::OsString>,
}

impl Conf {
    pub fn with(extra: &str) -> Conf {
        let dir = std::env::temp_dir().join(format!(
            "lvsnap-conf-{}-{}",
            std::process::id(),
            module_path!().replace("::", ".")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let base = std::fs::read_to_string("/etc/lvm/lvm.conf").unwrap_or_default();
        std::fs::write(dir.join("lvm.conf"), format!("{base}\n{extra}\n")).unwrap();
        let old = std::env::var_os("LVM_SYSTEM_DIR");
        // SAFETY: callers are #[serial] tests, so no other test thread reads
        // the environment meanwhile.
        unsafe { std::env::set_var("LVM_SYSTEM_DIR", &dir) };
        Conf { dir, old }
    }
}

impl Drop for Conf {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe {
            match &self.old {
                Some(v) => std::env::set_var("LVM_SYSTEM_DIR", v),
                None => std::env::remove_var("LVM_SYSTEM_DIR"),
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
