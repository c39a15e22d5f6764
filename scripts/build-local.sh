#!/usr/bin/env bash
# Host builds of every function, laid out as CDK assets (target/lambda-local/<fn>/bootstrap).
# Same profile as `cargo test`, so the tests and the local deploy share one compile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
functions=$(scripts/functions.sh)
# The fault-injection feature lets e2e/tests/faults.rs make a consumer panic on a marked
# message; `make test` enables it too, so both share one compile. Release builds never do.
cargo build --locked --features evently-shared/fault-injection $(printf -- '--bin %s ' $functions)
for fn in $functions; do
  mkdir -p "target/lambda-local/$fn"
  cp -f "target/debug/$fn" "target/lambda-local/$fn/bootstrap"
done
echo "built: $functions"
