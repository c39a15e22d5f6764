//! Build script of every function crate (`build = "../link-startup-path.rs"`): release builds
//! for Linux link with `startup-path.ld`, which packs the code run before the first
//! `/runtime/invocation/next` at the front of `.text`, so a cold start maps fewer pages of the
//! binary (BENCHMARKS.md, "Cold start"). Debug builds skip it: they are never measured and
//! matching its patterns against their many more sections only slows the link.

use std::path::Path;

fn main() {
    let script = Path::new("..").join("startup-path.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if linux && release {
        let script = std::fs::canonicalize(&script).expect("functions/startup-path.ld is present");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
