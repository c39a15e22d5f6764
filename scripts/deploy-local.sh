#!/usr/bin/env bash
# `make up` (after `make venv npm`): the whole local stack from nothing, or an in-place update.
# Emulator -> host builds of the functions -> cdklocal bootstrap + deploy of the same
# CDK app that deploys to AWS (context local=true) -> infra/outputs.local.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/local-env.sh
stack="${STACK_NAME:-Evently}"

step() { printf '\n==> %s\n' "$*"; }

step "emulator"
scripts/emulator.sh start

step "functions (host build, shared with the tests)"
scripts/build-local.sh

[[ -d infra/node_modules ]] || { echo "infra/node_modules missing: run 'make npm' (make up does)" >&2; exit 1; }
cd infra
cdk=(npx --no-install cdklocal)
step "cdk bootstrap"
"${cdk[@]}" bootstrap "aws://$CDK_DEFAULT_ACCOUNT/$AWS_REGION" -c local=true --output cdk.local.out >/dev/null

step "cdk deploy"
"${cdk[@]}" deploy "$stack" -c local=true -c stackName="$stack" \
  --require-approval never --output cdk.local.out --outputs-file outputs.local.json --progress events

api_id=$(python3 -c 'import json,sys; print(json.load(open("outputs.local.json"))[sys.argv[1]]["ApiId"])' "$stack")
echo
echo "API: $AWS_ENDPOINT_URL/_aws/execute-api/$api_id/"
echo "     (also http://$api_id.execute-api.localhost:4566/ for clients that resolve *.localhost)"
echo "Outputs: infra/outputs.local.json"
