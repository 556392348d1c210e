//! Generates the kernel UAPI constants and structs lvsnap uses (block-device
//! and loop-device ioctls, device-mapper's status ioctl) from the system's
//! `<linux/*.h>` with bindgen, so no ioctl number is written by hand:
//! `_IOR(0x12, 114, size_t)` differs between architectures (powerpc, mips
//! and sparc encode directions apart).

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
        .allowlist_var("DM_TABLE_STATUS|DM_BUFFER_FULL_FLAG")
        .allowlist_type("dm_ioctl|dm_target_spec")
        .derive_default(true)
        .use_core()
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect(
            "bindgen over <linux/fs.h>, <linux/loop.h> and <linux/dm-ioctl.h> (needs libclang-dev and linux-libc-dev)",
        )
        .write_to_file(out.join("uapi.rs"))
        .expect("write uapi.rs");
}
