#!/usr/bin/env bash
# The function crates, one per line: the directories of functions/ with a Cargo.toml (the
# shared build script and linker script live beside them). The Makefile and the scripts that
# build or lint every function take the list from here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for manifest in "$root"/functions/*/Cargo.toml; do
  basename "$(dirname "$manifest")"
done
