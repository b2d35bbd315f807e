"""The agent image as the pod runs it: slimmed (scripts/slim-site-packages.py drops the
oci SDK's service packages the agent never names, and the tests wheels ship), with
every import of the agent's code still resolving inside it, lazy per-scheme SDK
imports included (tests/node/image_imports.py, fed to the pod's python3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.node.conftest import NAMESPACE, Release, pods

pytestmark = pytest.mark.node

IMPORTS = (Path(__file__).parent / "image_imports.py").read_text()

# site-packages of the image, in bytes, and the oci SDK's share of it
SIZES = """
import json, os, oci
def size(top):
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(top) for f in fs)
oci_dir = os.path.dirname(oci.__file__)
print(json.dumps({"site": size(os.path.dirname(oci_dir)), "oci": size(oci_dir)}))
"""


def exec_python(release: Release, script: str) -> str:
    """``script``'s stdout in the agent container, whatever its exit status."""
    pod = pods(release, "node-agent")[0].metadata.name
    return release.node.kubectl(
        "-n", NAMESPACE, "exec", pod, "-c", "agent", "--", "python3", "-c", script,
        timeout=300, check=False,
    )  # fmt: skip


def test_every_import_of_the_agent_resolves_in_its_image(release: Release) -> None:
    out = exec_python(release, IMPORTS).strip().splitlines()
    # one "FAIL module: error" line per failure, then "N imports checked, F failed"
    assert out, "no output from the import check in the agent container"
    checked, failed = out[-1].split(" imports checked, ")
    assert failed == "0 failed", "\n".join(out)
    assert int(checked) > 500, out  # the agent's modules and what they import


def test_site_packages_holds_no_unused_sdk_services(release: Release) -> None:
    sizes = json.loads(exec_python(release, SIZES))
    print(f"site-packages {sizes['site'] / 1e6:.0f} MB, oci {sizes['oci'] / 1e6:.0f} MB")
    # unslimmed: 690 MB and 448 MB (the SDK's ~180 service packages with byte code)
    assert sizes["oci"] < 80e6, sizes
    assert sizes["site"] < 400e6, sizes
