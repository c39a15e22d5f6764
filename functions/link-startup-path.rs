//! Build script of every function crate (`build = "../link-startup-path.rs"`): release builds
//! for Linux link with `startup-path.ld`, which packs the code run before the first
//! `/runtime/invocation/next` at the front of `.text`, so a cold start maps fewer pages of the
//! binary (BENCHMARKS.md, "Cold start"). lld (rustc's default linker on x86_64 Linux, and the
//! one cargo-lambda's zig uses) and GNU ld take the script; gold does not support `INSERT`, so
//! `EVENTLY_NO_STARTUP_PATH=1` links without it. Debug builds skip it: they are never
//! measured, and matching its patterns against their many more sections only slows the link.

use std::path::Path;

fn main() {
    let script = Path::new("..").join("startup-path.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-env-changed=EVENTLY_NO_STARTUP_PATH");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let opted_out = std::env::var_os("EVENTLY_NO_STARTUP_PATH").is_some();
    if linux && release && !opted_out {
        let script = std::fs::canonicalize(&script).expect("functions/startup-path.ld is present");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
