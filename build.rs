//! Generates the kernel UAPI constants and structs lvsnap uses (block-device
//! and loop-device ioctls) from the system's `<linux/*.h>` with bindgen, so
//! no ioctl number is written by hand: `_IOR(0x12, 114, size_t)` differs
//! between architectures (powerpc, mips and sparc encode directions apart).

use std::env;
use std::path::PathBuf;

fn main() {
    let header = "src/sys/uapi.h";
    println!("cargo:rerun-if-changed={header}");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindgen::Builder::default()
        .header(header)
        // The _IO/_IOR macros are function-like; clang evaluates them for us.
        .clang_macro_fallback()
        // Its scratch files go in OUT_DIR, not the package root, where
        // builds of other profiles or target dirs running at once (CI's
        // background builds) would take each other's.
        .clang_macro_fallback_build_dir(&out)
        .allowlist_var("BLKGETSIZE64|BLKSSZGET|BLKZEROOUT")
        .allowlist_var("LOOP_CTL_GET_FREE|LOOP_CONFIGURE|LOOP_CLR_FD")
        .allowlist_type("loop_config")
        .derive_default(true)
        .use_core()
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect(
            "bindgen over <linux/fs.h> and <linux/loop.h> (needs libclang-dev and linux-libc-dev)",
        )
        .write_to_file(out.join("uapi.rs"))
        .expect("write uapi.rs");
}
