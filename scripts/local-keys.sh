#!/usr/bin/env bash
# Makes (once) the Ed25519 key pair the local stack's tokens are signed with, in .local/jwt/.
# Local only: never committed, never used for AWS. Prints the public key as a JWK `x` value.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.local/jwt"
mkdir -p "$dir"
chmod 700 "$dir"
if [[ ! -f $dir/private.pem ]]; then
  (umask 077 && openssl genpkey -algorithm ed25519 -out "$dir/private.pem")
fi
# The last 32 bytes of the SubjectPublicKeyInfo DER are the raw Ed25519 public key.
openssl pkey -in "$dir/private.pem" -pubout -outform DER | tail -c 32 | base64 | tr '+/' '-_' | tr -d '=\n' >"$dir/public.x"
cat "$dir/public.x"
