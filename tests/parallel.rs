//! The VM test files whose tests all run side by side (`#[parallel]`, or
//! scoped to their own VG and devices), in one binary: one VM boot for all
//! of them, and each file's tests run beside the others'. Each file still
//! builds alone too (`cargo test --test faults`); plain `cargo test` runs
//! this binary instead (Cargo.toml: `test = false` on the files).
// Each file declares `mod common;` for its standalone build, so the
// merged binary holds one copy of tests/common per file.
#![allow(clippy::duplicate_mod)]

#[path = "activate.rs"]
mod activate;

#[path = "changed.rs"]
mod changed;

#[path = "extend.rs"]
mod extend;

#[path = "faults.rs"]
mod faults;

#[path = "group.rs"]
mod group;

#[path = "lvm_text.rs"]
mod lvm_text;

#[path = "rollback.rs"]
mod rollback;

#[path = "thin_rollback.rs"]
mod thin_rollback;
