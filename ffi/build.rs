//! Generates `include/lvsnap.h` from `src/lib.rs` with cbindgen, and gives
//! the shared library its soname. The header is committed; it is rewritten
//! only when it changes, and CI fails when a fresh generation differs from
//! the committed file.

use std::path::Path;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&dir);
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblvsnap.so.{major}");

    let mut config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    // The header opens with the crate's own documentation: the conventions
    // every function follows, and what is thread-safe.
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("read src/lib.rs");
    let mut text = String::from("/*\n");
    for line in lib.lines().map_while(|l| l.strip_prefix("//!")) {
        text.push_str(&format!(" *{line}\n"));
    }
    text.push_str(
        " *\n * Generated from ffi/src/lib.rs by cbindgen (ffi/build.rs): do not edit.\n */",
    );
    config.header = Some(text);
    let header = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen over ffi/src");
    // write_to_file leaves an unchanged file alone.
    header.write_to_file(dir.join("include/lvsnap.h"));
}
