#!/usr/bin/env bash
# Synthesizes the stack in AWS mode and local mode (with placeholder bootstraps: the template,
# not the binaries, is checked) and runs cfn-lint on both. cdk-nag runs during synth.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for fn in $("$root/scripts/functions.sh"); do
  mkdir -p "$work/assets/$fn"
  printf '#!/bin/sh\n' >"$work/assets/$fn/bootstrap"
done
cd "$root/infra"
for mode in aws local; do
  npx --no-install cdk synth -q -c local=$([[ $mode == local ]] && echo true || echo false) \
    -c assetDir="$work/assets" -o "$work/$mode" >/dev/null
  "$root/.venv/bin/cfn-lint" --config-file .cfnlintrc.yaml -- "$work/$mode/Evently.template.json"
  echo "cfn-lint: $mode template clean"
done
