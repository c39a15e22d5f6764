//! Links the floor for release as the functions are linked (`functions/release-link.rs`), less
//! the start-up path packing, which is traced from the functions: not position-independent, so
//! the harness compares like with like. `EVENTLY_PIE=1` links it position-independent, as it
//! does the functions.

fn main() {
    println!("cargo:rerun-if-env-changed=EVENTLY_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if linux && release && std::env::var_os("EVENTLY_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
