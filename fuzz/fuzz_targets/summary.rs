//! The summary lexer the scan reads every metadata copy with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvsnap::lvm::scan::summarize;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = summarize(text);
    }
});
