#!/usr/bin/env bash
# Fetches DynamoDB Local (the official AWS emulator, 1.25.1) from the npm package
# amplify-dynamodb-simulator, without its dependency tree, into .cache/dynamodb-local.
# Idempotent: does nothing when the emulator is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/dynamodb-local"
pkg="amplify-dynamodb-simulator@2.9.30"
if [ -f "$dest/emulator/DynamoDBLocal.jar" ]; then
  exit 0
fi
if ! command -v java >/dev/null 2>&1; then
  echo "java not found: installing openjdk-17-jre-headless" >&2
  apt-get install -y openjdk-17-jre-headless >/dev/null
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetching DynamoDB Local ($pkg) into $dest" >&2
(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
mkdir -p "$tmp/x"
tar -xzf "$tmp"/amplify-dynamodb-simulator-*.tgz -C "$tmp/x"
mkdir -p "$dest"
rm -rf "$dest/emulator"
mv "$tmp/x/package/emulator" "$dest/emulator"
echo "DynamoDB Local ready: $dest/emulator" >&2
