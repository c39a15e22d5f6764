#!/usr/bin/env bash
# Supply-chain checks, deterministic for a given commit:
#  - cargo-deny (pinned version, installed into .local/tools) on the whole workspace:
#    advisories from the pinned RustSec snapshot in supply-chain/advisory-db, licenses,
#    duplicate versions, sources (deny.toml says what is allowed and why);
#  - the CDK app's production npm tree: lockfile-consistent (`npm ls --omit=dev`), permissive
#    licenses only, and `npm audit --omit=dev` where the registry offers its audit endpoint.
#
# `scripts/supply-chain.sh --refresh <advisory-db checkout>` replaces the snapshot.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
SNAPSHOT=supply-chain/advisory-db
# cargo-deny keeps the database for https://github.com/rustsec/advisory-db in this folder.
DB_DIR=.local/advisory-dbs/advisory-db-3157b0e258782691

if [[ "${1:-}" == "--refresh" ]]; then
  source_dir="${2:?usage: $0 --refresh <advisory-db checkout>}"
  rm -rf "$SNAPSHOT/crates" "$SNAPSHOT/rust"
  cp -r "$source_dir/crates" "$source_dir/rust" "$source_dir/LICENSE.txt" "$SNAPSHOT/"
  {
    echo "RustSec advisory database (https://github.com/rustsec/advisory-db, CC0-1.0: LICENSE.txt)"
    echo "commit $(git -C "$source_dir" rev-parse HEAD)"
    echo "date   $(git -C "$source_dir" log -1 --format=%cI)"
    echo "Only crates/ and rust/ are kept. Refresh: scripts/supply-chain.sh --refresh <advisory-db checkout>"
  } > "$SNAPSHOT/SNAPSHOT"
  echo "snapshot replaced: $(sed -n 2p "$SNAPSHOT/SNAPSHOT")"
  exit 0
fi

# ---- cargo-deny ----------------------------------------------------------------------------
deny=.local/tools/bin/cargo-deny
if ! "$deny" --version 2>/dev/null | grep -q " $CARGO_DENY_VERSION\$"; then
  echo "==> installing cargo-deny $CARGO_DENY_VERSION (once, into .local/tools)"
  cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --root .local/tools --quiet
fi

# The snapshot becomes the git repository cargo-deny reads, dated as the snapshot is.
stamp="$DB_DIR/.snapshot"
if ! cmp -s "$SNAPSHOT/SNAPSHOT" "$stamp" 2>/dev/null; then
  rm -rf "$DB_DIR"
  mkdir -p "$DB_DIR"
  cp -r "$SNAPSHOT/crates" "$SNAPSHOT/rust" "$SNAPSHOT/LICENSE.txt" "$DB_DIR/"
  snapshot_date="$(sed -n 's/^date *//p' "$SNAPSHOT/SNAPSHOT")"
  (
    cd "$DB_DIR"
    git init --quiet --initial-branch=main
    git add --all
    GIT_AUTHOR_DATE="$snapshot_date" GIT_COMMITTER_DATE="$snapshot_date" \
      git -c user.name=evently -c user.email=ci@evently.invalid commit --quiet -m "advisory-db snapshot"
  )
  cp "$SNAPSHOT/SNAPSHOT" "$stamp"
fi

# cargo-deny reads `cargo metadata` for every target, so every crate in the lockfile must be
# on disk, not only the ones this machine builds; it then runs offline (no database fetch).
cargo fetch --locked --quiet
echo "==> cargo deny (advisories as of $(sed -n 's/^date *//p' "$SNAPSHOT/SNAPSHOT"))"
PATH="$PWD/.local/tools/bin:$PATH" cargo deny --offline --locked --color never check

# ---- npm (the CDK app's production dependencies) -------------------------------------------
echo "==> npm: production tree matches the lockfile"
(cd infra && npm ls --omit=dev --all > /dev/null)

echo "==> npm: production licenses"
node - <<'JS'
const fs = require('fs');
const path = require('path');
const allowed = new Set(['Apache-2.0', 'MIT', 'ISC', 'BSD-2-Clause', 'BSD-3-Clause', '0BSD', 'CC0-1.0', 'BlueOak-1.0.0', 'Python-2.0']);
const lock = JSON.parse(fs.readFileSync('infra/package-lock.json', 'utf8'));
const bad = [];
let count = 0;
for (const [where, entry] of Object.entries(lock.packages)) {
  if (!where || entry.dev) continue;
  count++;
  const manifest = path.join('infra', where, 'package.json');
  const license = entry.license ?? (fs.existsSync(manifest) ? JSON.parse(fs.readFileSync(manifest, 'utf8')).license : undefined);
  const parts = String(license ?? 'UNKNOWN').replace(/[()]/g, '').split(/ OR | AND /);
  if (!parts.some((p) => allowed.has(p.trim()))) bad.push(`${where}: ${license}`);
}
if (bad.length) {
  console.error(`licenses outside the allow-list:\n  ${bad.join('\n  ')}`);
  process.exit(1);
}
console.log(`${count} production packages, all permissively licensed`);
JS

echo "==> npm audit --omit=dev"
set +e
audit="$(cd infra && npm audit --omit=dev --audit-level=moderate 2>&1)"
status=$?
set -e
if [[ $status -eq 0 ]]; then
  echo "$audit" | tail -n 3
elif grep -qE "audit endpoint returned an error|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT" <<<"$audit"; then
  # No advisory source for npm is reachable (this registry mirror answers the bulk-advisory
  # endpoint with 405). Say so plainly rather than pass or fail on no data.
  echo "SKIPPED: the npm registry's audit endpoint is not reachable from here:"
  grep -E "npm (warn|error)" <<<"$audit" | head -n 2 | sed 's/^/  /'
else
  echo "$audit"
  exit 1
fi
