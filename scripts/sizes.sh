#!/usr/bin/env bash
# Raw and zipped size of each function binary in a build directory: what Lambda's 50 MB zip
# limit and the cold-start download see. Zipped as CDK zips an asset (deflate, level 9).
#   scripts/sizes.sh target/release            # host builds (cargo build --release)
#   scripts/sizes.sh target/release-s
#   scripts/sizes.sh target/lambda             # cargo lambda builds: <fn>/bootstrap
set -euo pipefail
dir="${1:?usage: scripts/sizes.sh <build dir>}"
python3 - "$dir" <<'PY'
import io, os, sys, zipfile
root = sys.argv[1]
functions = ["evently-hello", "events-api", "outbox-relay", "read-model-updater", "auth-api",
             "welcome-email", "jwt-keys", "analytics", "notifications", "search-index"]
print(f"{'binary':<20} {'raw MiB':>8} {'zipped MiB':>11}   ({root})")
for name in functions:
    path = os.path.join(root, name, "bootstrap")
    if not os.path.exists(path):
        path = os.path.join(root, name)
    if not os.path.isfile(path):
        continue
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(path, "bootstrap")
    mib = 1024 * 1024
    print(f"{name:<20} {os.path.getsize(path) / mib:>8.2f} {len(buffer.getvalue()) / mib:>11.2f}")
PY
