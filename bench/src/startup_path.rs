//! `evently-bench startup-path`: which functions each Lambda runs between `exec` and its first
//! `GET /runtime/invocation/next`, written as a linker script that places them side by side at
//! the front of `.text`.
//!
//! Why: at start a function executes about 0.5 MB of its 5 MB of code, but spread over ~65
//! separate 64 KiB windows; the kernel maps file pages around every fault, so most of the
//! binary ends up resident. Packed together, the same code touches a few contiguous windows.
//!
//! How: each binary of the `release-syms` profile (the release build with its symbol table)
//! starts once under callgrind against the same Runtime API as the cold-start harness, and is
//! interrupted at its first `next`. The executed addresses are mapped to symbols with `nm`.
//! The crate hashes inside Rust symbols differ between targets and builds, so each name
//! becomes a glob with its hashes wildcarded: the script made on x86_64 also orders the
//! arm64 build that is deployed. A stale script orders less, never breaks a link.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Function symbols of `binary` (address, size, name), sorted by address.
fn text_symbols(binary: &Path) -> Result<Vec<(u64, u64, String)>, String> {
    let output = Command::new("nm")
        .args(["--defined-only", "-S"])
        .arg(binary)
        .output()
        .map_err(|e| format!("nm: {e}"))?;
    let mut symbols: Vec<(u64, u64, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (address, size, kind, name) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            if !matches!(kind, "t" | "T" | "w" | "W") {
                return None;
            }
            Some((
                u64::from_str_radix(address, 16).ok()?,
                u64::from_str_radix(size, 16).ok()?,
                name.to_owned(),
            ))
        })
        .collect();
    symbols.sort();
    if symbols.is_empty() {
        return Err(format!("{} has no symbol table", binary.display()));
    }
    Ok(symbols)
}

/// Whether `binary` has the `.text.startup_path` section of `linker_script`.
fn is_packed(binary: &Path) -> Result<bool, String> {
    let output = Command::new("readelf")
        .args(["--section-headers", "--wide"])
        .arg(binary)
        .output()
        .map_err(|e| format!("readelf: {e}"))?;
    if !output.status.success() {
        return Err(format!("readelf could not read {}", binary.display()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).contains(" .text.startup_path "))
}

/// The functions of `object` that ran, from a callgrind profile written with
/// `--demangle=no`: named ones as they are, the others (`0x...`) as addresses.
fn executed(profile: &str, object: &str) -> (BTreeSet<String>, BTreeSet<u64>) {
    // Callgrind compresses names: `ob=(3) /path` defines id 3, a later `ob=(3)` reuses it.
    let (mut objects, mut functions) = (HashMap::new(), HashMap::new());
    let mut current_object = None;
    let (mut names, mut addresses) = (BTreeSet::new(), BTreeSet::new());
    for line in profile.lines() {
        let Some((key, rest)) = line.split_once('=') else {
            continue;
        };
        let Some((id, name)) = rest
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .map(|(id, name)| (id.to_owned(), name.trim()))
        else {
            continue;
        };
        let table = match key {
            "ob" | "cob" => &mut objects,
            "fn" | "cfn" => &mut functions,
            _ => continue,
        };
        if !name.is_empty() {
            table.insert(id.clone(), name.to_owned());
        }
        match key {
            "ob" => current_object = objects.get(&id).cloned(),
            "fn" if current_object.as_deref() == Some(object) => {
                // `name'2` is the same function at recursion depth 2.
                let name = functions[&id].split('\'').next().unwrap_or_default();
                match name.strip_prefix("0x") {
                    Some(hex) => addresses.extend(u64::from_str_radix(hex, 16).ok()),
                    None => {
                        names.insert(name.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    (names, addresses)
}

/// A section-name glob for a function symbol that matches the same function in another build
/// or target: the hashes Rust puts in symbol names are wildcards, so is an LTO suffix.
fn glob(symbol: &str) -> String {
    let (base, lto_suffix) = match symbol.find(".llvm.") {
        Some(at) => (&symbol[..at], true),
        None => (symbol, false),
    };
    let mut glob = if base.starts_with("_ZN") {
        // Legacy mangling ends in `17h<16 hex digits>E`.
        match base.rfind("17h") {
            Some(at) if base.len() == at + 3 + 16 + 1 => format!("{}17h*", &base[..at]),
            _ => base.to_owned(),
        }
    } else if base.starts_with("_R") {
        // v0 mangling names each crate as `Cs<disambiguator>_<len><name>`.
        let mut out = String::with_capacity(base.len());
        let mut rest = base;
        while let Some(at) = rest.find("Cs") {
            out.push_str(&rest[..at + 2]);
            rest = &rest[at + 2..];
            let hash_len = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            if rest[hash_len..].starts_with('_') && hash_len > 0 {
                out.push('*');
                rest = &rest[hash_len..];
            }
        }
        out.push_str(rest);
        out
    } else {
        base.to_owned()
    };
    if lto_suffix && !glob.ends_with('*') {
        glob.push('*');
    }
    glob
}

/// Runs `binary` under callgrind until its first `next` and returns the globs of the
/// functions it ran.
pub fn trace(
    binary: &Path,
    environment: &HashMap<String, String>,
    out_dir: &Path,
) -> Result<BTreeSet<String>, String> {
    let binary = binary
        .canonicalize()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let name = binary.file_name().unwrap_or_default().to_string_lossy();
    if is_packed(&binary)? {
        return Err(format!(
            "{} was linked with the start-up path packed, which callgrind cannot attribute: \
             rebuild it with EVENTLY_NO_STARTUP_PATH=1 (`--build` does)",
            binary.display()
        ));
    }
    let profile_path = out_dir.join(format!("{name}.callgrind"));
    let (address, next) = crate::runtime_api();
    let mut valgrind = Command::new("valgrind");
    valgrind
        .args(["--tool=callgrind", "--demangle=no", "--quiet"])
        .arg(format!("--callgrind-out-file={}", profile_path.display()))
        .arg(&binary);
    let child = crate::as_lambda(&mut valgrind, environment, &address)
        .spawn()
        .map_err(|e| format!("valgrind (the trace runs under callgrind): {e}"))?;
    let reached = next.recv_timeout(Duration::from_secs(120));
    // SIGINT, not SIGKILL: callgrind writes its profile as the program ends.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();
    reached.map_err(|_| format!("{} never asked for an event under callgrind", name))?;

    let profile = std::fs::read_to_string(&profile_path)
        .map_err(|e| format!("{}: {e}", profile_path.display()))?;
    let (names, addresses) = executed(&profile, &binary.to_string_lossy());
    let symbols = text_symbols(&binary)?;
    let mut globs: BTreeSet<String> = names
        .iter()
        .filter(|n| !n.starts_with('('))
        .map(|n| glob(n))
        .collect();
    for address in addresses {
        let at = symbols.partition_point(|(start, _, _)| *start <= address);
        if let Some((start, size, name)) = at.checked_sub(1).map(|i| &symbols[i])
            && address < start + (*size).max(1)
        {
            globs.insert(glob(name));
        }
    }
    Ok(globs)
}

/// The linker script: one output section of the start-up functions, before `.text`.
pub fn linker_script(globs: &BTreeSet<String>, functions: &[&str]) -> String {
    let mut script = format!(
        "/* Generated by `make startup-path`; do not edit by hand (bench/src/startup_path.rs).\n   \
         The code each function runs before its first /runtime/invocation/next, placed\n   \
         together so that starting touches few pages of the binary. Traced from:\n   \
         {}. */\n\
         SECTIONS\n{{\n  .text.startup_path : {{\n",
        functions.join(", ")
    );
    for glob in globs {
        // LLVM puts `#[cold]` functions (many one-time initialisers among them) in
        // `.text.unlikely.<name>`.
        script.push_str(&format!("    *(.text.{glob} .text.unlikely.{glob})\n"));
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_symbols_lose_their_hash() {
        assert_eq!(
            glob("_ZN5tokio7runtime4task3raw4poll17h81772d747ace52c8E"),
            "_ZN5tokio7runtime4task3raw4poll17h*"
        );
        assert_eq!(
            glob("_ZN4core3fmt5write17h0123456789abcdefE.llvm.1234"),
            "_ZN4core3fmt5write17h*"
        );
    }

    #[test]
    fn v0_symbols_lose_their_crate_disambiguators() {
        assert_eq!(
            glob("_RNvMNtCsgEmfK2I1SDS_4core3stre4trim"),
            "_RNvMNtCs*_4core3stre4trim"
        );
        assert_eq!(
            glob("_RINvCs1a_3stdB2_4main.llvm.99"),
            "_RINvCs*_3stdB2_4main*"
        );
    }

    #[test]
    fn c_symbols_stay_exact() {
        assert_eq!(glob("aws_lc_0_32_sha256_init"), "aws_lc_0_32_sha256_init");
    }

    #[test]
    fn only_functions_of_the_traced_object_count_and_names_are_reused_by_id() {
        let profile = "ob=(1) /lib/libc.so.6\nfn=(1) malloc\nob=(2) /bin/f\nfn=(2) 0x0000000000001000\n\
                       cob=(1)\ncfn=(1)\nfn=(3) _ZN1f4main17h0123456789abcdefE'2\nob=(1)\nfn=(2)\n";

        let (names, addresses) = executed(profile, "/bin/f");

        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["_ZN1f4main17h0123456789abcdefE"]
        );
        assert_eq!(addresses.into_iter().collect::<Vec<_>>(), [0x1000]);
    }

    #[test]
    fn the_committed_script_is_well_formed_for_lld() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/startup-path.ld");
        let script = std::fs::read_to_string(path).unwrap();

        let body = script
            .split_once(".text.startup_path : {\n")
            .and_then(|(_, rest)| rest.split_once("  }\n}\nINSERT BEFORE .text;\n"))
            .map(|(body, _)| body)
            .expect("one output section inserted before .text");
        // Anything outside these characters would end lld's token (or start a quoted,
        // non-glob one) and break every release link.
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_.$*".contains(c);
        for line in body.lines() {
            let (hot, cold) = line
                .strip_prefix("    *(.text.")
                .and_then(|l| l.strip_suffix(')'))
                .and_then(|l| l.split_once(" .text.unlikely."))
                .unwrap_or_else(|| panic!("not an input section pattern: {line}"));
            assert_eq!(hot, cold, "{line}");
            assert!(hot.chars().all(allowed), "{line}");
        }
        assert!(body.lines().count() > 100);
    }

    #[test]
    fn the_script_puts_every_glob_in_one_section_before_text() {
        let globs = BTreeSet::from(["a".to_owned(), "_ZN1b17h*".to_owned()]);

        let script = linker_script(&globs, &["f"]);

        assert!(script.contains(
            "    *(.text._ZN1b17h* .text.unlikely._ZN1b17h*)\n    *(.text.a .text.unlikely.a)\n"
        ));
        assert!(script.ends_with("}\nINSERT BEFORE .text;\n"));
    }
}
