#!/usr/bin/env bash
# Installs Azurite (Microsoft's Azure Storage emulator, from the npm registry) for the
# az:// source tests into .cache/azurite/<version>/ (git-ignored) and prints the path
# of its azurite-blob executable. A rerun with that version present does nothing.
# Needs Node.js >= 18 and npm on PATH.
set -euo pipefail
version=3.37.0
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.cache/azurite/$version"
bin="$out/node_modules/.bin/azurite-blob"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
command -v npm >/dev/null || { echo "install-azurite: npm not found: install Node.js (>= 18) and npm" >&2; exit 1; }
mkdir -p "$out"
# --prefix keeps it out of the global node_modules; the lock npm writes there pins
# the dependency tree of this install
npm install --prefix "$out" --no-audit --no-fund --loglevel=error "azurite@$version" >&2
[ -x "$bin" ] || { echo "install-azurite: $bin missing after npm install" >&2; exit 1; }
echo "$bin"
