//! The workspace's release profile, as `cargo lambda build --release` reads it. cargo-lambda adds
//! its own defaults for `strip`, `lto`, `codegen-units` and `panic` to a release profile that does
//! not name them (`--config profile.release.panic="abort"` on the cargo command line); for
//! `panic` its default would undo a guarantee: the consumer kit catches a panicking message and
//! fails that message alone, which needs unwinding.

use std::path::Path;

/// The `key = value` lines of the manifest's `[profile.release]` table, comments dropped.
fn release_profile() -> Vec<(String, String)> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("the workspace manifest");
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .skip_while(|line| *line != "[profile.release]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

#[test]
fn the_release_profile_names_unwinding_so_cargo_lambda_does_not_make_it_abort() {
    let profile = release_profile();

    let panic = profile.iter().find(|(key, _)| key == "panic");

    assert_eq!(
        panic.map(|(_, value)| value.as_str()),
        Some("\"unwind\""),
        "[profile.release] must say panic = \"unwind\"; found {profile:?}"
    );
}

#[test]
fn the_release_profile_names_every_setting_cargo_lambda_would_otherwise_choose() {
    let profile = release_profile();

    let unnamed: Vec<&str> = ["strip", "lto", "codegen-units", "panic"]
        .into_iter()
        .filter(|name| !profile.iter().any(|(key, _)| key == name))
        .collect();

    assert!(
        unnamed.is_empty(),
        "cargo-lambda would choose {unnamed:?} for the AWS builds, unlike the measured ones"
    );
}
