//! Every VM test file in one binary, so `cargo test` boots one VM. Each
//! file still builds alone too (`cargo test --test faults`); plain
//! `cargo test` runs this binary instead (Cargo.toml: `test = false` on the
//! files).
//!
//! libtest starts tests in the order of their names (the `a_`, `b_`, `c_`
//! of the groups below), and an unkeyed `#[serial]` test runs only once no
//! `#[parallel]` test is running:
//! - `a_serial`: the files with `#[serial]` tests (timed ones, ones that
//!   damage or duplicate PVs, ones that set the process's environment), so
//!   those run one after another at the start and nothing waits for them;
//! - `b_sweeps`: the files of the long fault sweeps, started next so the
//!   short tests fill the threads around them rather than the sweeps
//!   running alone at the end;
//! - `c_side_by_side`: the other files, whose tests each use their own VG
//!   and devices.
// Each file declares `mod common;` for its standalone build, so the
// merged binary holds one copy of tests/common per file.
#![allow(clippy::duplicate_mod)]

#[path = "."]
mod a_serial {
    #[path = "dm.rs"]
    mod dm;

    #[path = "lvm2_thin_ports.rs"]
    mod lvm2_thin_ports;

    #[path = "lvm_conf.rs"]
    mod lvm_conf;

    #[path = "lvm_disk.rs"]
    mod lvm_disk;

    #[path = "monitor.rs"]
    mod monitor;

    #[path = "snapshot.rs"]
    mod snapshot;

    #[path = "validate.rs"]
    mod validate;
}

#[path = "."]
mod b_sweeps {
    #[path = "faults.rs"]
    mod faults;

    #[path = "thin_rollback.rs"]
    mod thin_rollback;
}

#[path = "."]
mod c_side_by_side {
    #[path = "activate.rs"]
    mod activate;

    #[path = "changed.rs"]
    mod changed;

    #[path = "extend.rs"]
    mod extend;

    #[path = "foundation.rs"]
    mod foundation;

    #[path = "group.rs"]
    mod group;

    #[path = "lvm_text.rs"]
    mod lvm_text;

    #[path = "restore_inactive.rs"]
    mod restore_inactive;

    #[path = "rollback.rs"]
    mod rollback;
}
