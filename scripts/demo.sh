#!/usr/bin/env bash
# The README's main job (see scripts/demo.py): runs from the repository root so the
# local Hub server under tests/servers/ can be imported.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m scripts.demo "$@"
