#!/usr/bin/env bash
# A second venv, .venv-hub-latest, for the other end of the supported huggingface_hub
# range: the newest huggingface_hub from PyPI, plus olah (an open-source Hub mirror
# the tests run against; it needs huggingface_hub >= 1.x). Everything else comes from
# the main .venv through a site dir added after this venv's own, so this venv's
# huggingface_hub wins. `make test` runs the Hub-facing tests again in it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=.venv-hub-latest
if [ ! -x "$venv/bin/python" ]; then
  echo "installing the newest huggingface_hub and olah into $venv (about 1 minute)" >&2
  .venv/bin/python -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q --upgrade huggingface_hub olah
main_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
own_site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# addsitedir (not a bare path) so the main venv's own .pth files, such as the
# editable install of ome_agent, are read too
echo "import site; site.addsitedir('$main_site')" > "$own_site/zz-ome-agent-main-venv.pth"
"$venv/bin/python" -c 'import huggingface_hub, ome_agent._core; print("huggingface_hub", huggingface_hub.__version__, "in '"$venv"'")' >&2
