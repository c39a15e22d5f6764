//! Build script of every function crate (`build = "../release-link.rs"`): how release builds for
//! Linux are linked, for a shorter cold start (BENCHMARKS.md, "Cold start"). Debug builds are
//! linked as usual: they are never measured.
//!
//! - `startup-path.ld` packs the code run before the first `/runtime/invocation/next` at the
//!   front of `.text`, so a start maps fewer pages of the binary. lld (rustc's default linker on
//!   x86_64 Linux, and the one cargo-lambda's zig uses) and GNU ld take the script; gold does
//!   not support `INSERT`, so `EVENTLY_NO_STARTUP_PATH=1` links without it. Matching its
//!   patterns against a debug build's many more sections would only slow the link.
//! - `-no-pie`: a position-independent binary has the dynamic loader apply about 18 000
//!   relocations at every start, which reads 0.4 MiB of relocation entries and writes every
//!   page of `.data.rel.ro`; linked at a fixed address there are none. The price is that the
//!   executable's own image is not randomised (its libraries still are); `EVENTLY_PIE=1` links
//!   position-independent again. `bench/hello` is linked the same way, so the floor compares
//!   like with like.

use std::path::Path;

fn main() {
    let script = Path::new("..").join("startup-path.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-env-changed=EVENTLY_NO_STARTUP_PATH");
    println!("cargo:rerun-if-env-changed=EVENTLY_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if !(linux && release) {
        return;
    }
    if std::env::var_os("EVENTLY_NO_STARTUP_PATH").is_none() {
        let script = std::fs::canonicalize(&script).expect("functions/startup-path.ld is present");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
    if std::env::var_os("EVENTLY_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
