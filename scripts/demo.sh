#!/usr/bin/env bash
# The README's main job. Filled in as the agent grows.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ome-agent --help
