"""Is there a cluster to talk to? Checked before the Kubernetes client is imported
(adapter, layer 5: the first step of ``status``, ``controller`` and ``run`` in cluster
mode).

Importing the client takes seconds on a small machine; a user without a cluster
should hear so at once. The check is the one the client's loaders make, done on the
file itself so that its error names what is wrong with it:

- ``--kubeconfig FILE`` (or ``KUBECONFIG``): the file exists and is a kubeconfig: a
  YAML mapping whose ``clusters``, ``contexts`` and ``users`` are lists, and whose
  ``current-context`` names one of its contexts;
- otherwise, in a Pod: ``KUBERNETES_SERVICE_HOST``/``_PORT`` are set and the
  ServiceAccount token is mounted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ome_agent.errors import BadInput

TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
MAX_KUBECONFIG_BYTES = 4 * 1024 * 1024  # a kubeconfig with many embedded certificates


def check_cluster_config(kubeconfig: str | None) -> None:
    """BadInput naming the file and what is wrong, or that there is no configuration."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    if path:
        _check_kubeconfig(path, "--kubeconfig" if kubeconfig else "KUBECONFIG")
        return
    if not (
        os.environ.get("KUBERNETES_SERVICE_HOST") and os.environ.get("KUBERNETES_SERVICE_PORT")
    ):
        raise BadInput(
            "no cluster configuration: pass --kubeconfig (or set KUBECONFIG), or run inside "
            "a Pod with a ServiceAccount (KUBERNETES_SERVICE_HOST is not set)"
        )
    if not TOKEN.is_file():
        raise BadInput(
            f"no cluster configuration: in a Pod, but no ServiceAccount token at {TOKEN}: "
            "mount one (automountServiceAccountToken), or pass --kubeconfig"
        )


def _check_kubeconfig(path: str, flag: str) -> None:
    where = f"{flag} {path}"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KUBECONFIG_BYTES + 1)
    except FileNotFoundError:
        raise BadInput(f"{where}: no such file; give a kubeconfig file") from None
    except OSError as e:
        raise BadInput(f"{where}: cannot read it ({e.strerror})") from None
    if len(data) > MAX_KUBECONFIG_BYTES:
        raise BadInput(f"{where}: larger than {MAX_KUBECONFIG_BYTES} bytes: not a kubeconfig")
    try:
        doc: Any = yaml.safe_load(data)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise BadInput(f"{where}: not YAML{at}: give a kubeconfig file") from None
    except RecursionError:
        raise BadInput(f"{where}: nested too deeply: not a kubeconfig") from None
    hint = "give a kubeconfig (kind: Config, with clusters, contexts and users)"
    if not isinstance(doc, Mapping):
        raise BadInput(
            f"{where}: not a kubeconfig (a YAML {type(doc).__name__}, not a mapping): {hint}"
        )
    for section in ("clusters", "contexts", "users"):
        if not isinstance(doc.get(section) or [], list):
            raise BadInput(f"{where}: {section} is not a list: {hint}")
    contexts = [c.get("name") for c in doc.get("contexts") or [] if isinstance(c, Mapping)]
    if not doc.get("clusters") or not contexts:
        raise BadInput(f"{where}: no clusters or no contexts: {hint}")
    current = doc.get("current-context")
    if not current:
        raise BadInput(f"{where}: no current-context: set one (kubectl config use-context NAME)")
    if current not in contexts:
        raise BadInput(f"{where}: current-context {current!r} is not one of its contexts")


__all__ = ["check_cluster_config"]
