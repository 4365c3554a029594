#!/usr/bin/env bash
# Installs what the tests and the local runtime need on a fresh machine:
# Go modules, the pinned Node packages (CDK CLI), and DynamoDB Local.
set -euo pipefail
cd "$(dirname "$0")/.."
go mod download
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
# node_modules holds Go template files (aws-cdk's init templates); a go.mod there
# makes it a module of its own, so that ./... skips it.
[ -f node_modules/go.mod ] || echo 'module node_modules // keeps ./... out of npm packages' > node_modules/go.mod
./scripts/fetch-dynamodb-local.sh
# The page's browser test drives Debian's chromium with playwright-core; without
# it (no root, not Debian) that one test is skipped, nothing else needs it.
install_chromium() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    $sudo apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
}
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  install_chromium || echo "deps: could not install chromium; the browser test will be skipped" >&2
fi
