//! The CLI's arguments: any argument vector parses or fails with one line.
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/bin/lvsnap.rs"]
mod lvsnap_bin;

fuzz_target!(|args: Vec<String>| {
    let argv = std::iter::once("lvsnap".to_owned()).chain(args.iter().cloned());
    match lvsnap_bin::Cli::try_parse_from(argv) {
        Ok(_) => {}
        Err(e) => {
            if let Some(line) = lvsnap_bin::usage_line(&e) {
                assert!(!line.contains('\n') && !line.chars().any(char::is_control), "{line:?}");
                assert!(line.starts_with("lvsnap: error: "), "{line:?}");
            }
        }
    }
    for a in &args {
        let _ = lvsnap_bin::vg_and_name(a);
        let _ = lvsnap::snapshot::parse_size(a);
        assert!(!lvsnap_bin::one_line(a).chars().any(char::is_control));
    }
});
