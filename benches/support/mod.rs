//! What the benches share beyond tests/common.

/// Whether criterion runs this binary in its test mode, each benchmark once
/// and unmeasured: `cargo test --bench NAME` (no `--bench` argument) or
/// `cargo bench -- --test`, as criterion decides it. The benches then set
/// up at a smaller scale: test mode proves every benchmark runs, not how
/// fast, and CI pays for its set-up in the VM.
pub fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    !has("--bench") || has("--test")
}
