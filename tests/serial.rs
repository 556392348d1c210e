//! The VM test files with `#[serial]` tests (tests that look at the whole
//! system or set the process's environment), in one binary: one VM boot
//! for all of them. An unkeyed `#[serial]` test waits for every running
//! `#[parallel]` test, so these files are kept apart from the long
//! side-by-side sweeps of tests/parallel.rs. Each file still builds alone
//! too (`cargo test --test dm`); plain `cargo test` runs this binary.
// Each file declares `mod common;` for its standalone build, so the
// merged binary holds one copy of tests/common per file.
#![allow(clippy::duplicate_mod)]

#[path = "dm.rs"]
mod dm;

#[path = "foundation.rs"]
mod foundation;

#[path = "lvm2_thin_ports.rs"]
mod lvm2_thin_ports;

#[path = "lvm_conf.rs"]
mod lvm_conf;

#[path = "lvm_disk.rs"]
mod lvm_disk;

#[path = "monitor.rs"]
mod monitor;

#[path = "restore_inactive.rs"]
mod restore_inactive;

#[path = "snapshot.rs"]
mod snapshot;

#[path = "validate.rs"]
mod validate;
