"""``pvc://`` models: the claim's phase and a short inspection Job tell their status
(controller mode, docs/architecture.md, layer 4).

A model whose ``storageUri`` is ``pvc://[namespace:]claim/sub/path`` already lives on
a PersistentVolumeClaim: no node agent downloads it (OME left such models
In_Transit forever). The controller instead:

1. parses the URI (:func:`parse_pvc_uri`) — a BaseModel may only name a claim in
   its own namespace, as a pod could only mount that one;
2. creates a Job (:func:`inspect_job`) that mounts the claim read-only and runs
   ``ome-agent inspect --json --termination-log /dev/termination-log``, which
   leaves the discovered config in the container's termination message;
3. reads the Pod's result (:func:`job_result`) and writes the status
   (:func:`pvc_status`); the config also feeds the spec back-fill.

What the API server alone can show (tests): the Job object and the status written
from a claim's phase. Running the Job and its termination message need a kubelet.
Pure: builds and reads objects, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ome_agent.api import ModelResource
from ome_agent.api.resources import DNS_LABEL, DNS_SUBDOMAIN
from ome_agent.errors import BadInput
from ome_agent.fleet import status as st
from ome_agent.wire.entry import rfc3339

SCHEME = "pvc://"
MOUNT = "/model"
TERMINATION_LOG = "/dev/termination-log"  # the kubelet reads the message from there
JOB_TTL_SECONDS = 600  # the Job and its Pod linger this long for `kubectl logs`
JOB_DEADLINE_SECONDS = 600  # a stuck inspection (unreadable volume) fails the Job
RUN_AS = 65532  # non-root; read-only mount, so any uid that can read the files works
# labels a controller finds its Jobs by (uid: names may exceed a label value's 63 chars)
LABEL_COMPONENT = "app.kubernetes.io/component"
COMPONENT = "pvc-inspect"
LABEL_MODEL_UID = "ome.io/model-uid"
LABEL_MODEL_KIND = "ome.io/model-kind"
ANNOTATION_MODEL = "ome.io/model"
MAX_ERROR = 1024

_FIELD = "spec.storage.storageUri"


@dataclass(frozen=True)
class PvcRef:
    namespace: str
    claim: str
    sub_path: str  # inside the claim, no leading "/", "" for the claim's root


def parse_pvc_uri(uri: str, resource: ModelResource, default_namespace: str) -> PvcRef:
    """``pvc://{claim}/{sub}`` or ``pvc://{ns}:{claim}/{sub}`` → :class:`PvcRef`.

    A BaseModel's claim is in its own namespace (naming another is
    :class:`BadInput`); a cluster-scoped resource's claim is in the namespace given,
    else ``default_namespace`` (the controller's)."""
    where = f"{resource.key}: {_FIELD}"
    if not uri.startswith(SCHEME):
        raise BadInput(f"{where} {uri!r} is not a pvc:// URI")
    rest = uri[len(SCHEME) :]
    head, _, sub = rest.partition("/")
    namespace, colon, claim = head.rpartition(":")
    if not colon:
        namespace = ""
    if not claim or not DNS_SUBDOMAIN.fullmatch(claim):
        raise BadInput(
            f"{where} {uri!r}: {claim!r} is not a claim name: "
            "write pvc://<claim>/<path> or pvc://<namespace>:<claim>/<path>"
        )
    if colon and not DNS_LABEL.fullmatch(namespace):
        raise BadInput(f"{where} {uri!r}: {namespace!r} is not a namespace name")
    if resource.namespace is not None:
        if namespace and namespace != resource.namespace:
            raise BadInput(
                f"{where} {uri!r}: a BaseModel can only use a claim in its own namespace "
                f"{resource.namespace!r}: drop {namespace + ':'!r}, or use a ClusterBaseModel"
            )
        namespace = resource.namespace
    elif not namespace:
        namespace = default_namespace
    return PvcRef(namespace=namespace, claim=claim, sub_path=_sub_path(sub, where, uri))


def _sub_path(sub: str, where: str, uri: str) -> str:
    parts = [p for p in sub.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadInput(f"{where} {uri!r}: '..' would leave the claim: name a folder inside it")
    return "/".join(parts)


def job_name(resource: ModelResource) -> str:
    """One inspection Job per resource and storageUri: a new URI gives a new name (a
    new inspection), while the spec back-fill, which bumps the generation, does not
    cause a second one. Short enough for the ``job-name`` label of its Pod (63)."""
    digest = hashlib.sha256(f"{resource.uid}/{resource.storage_uri}".encode()).hexdigest()
    return f"ome-inspect-{digest[:12]}"


def model_dir(ref: PvcRef) -> str:
    """Where the model is inside the inspection Pod."""
    return posixpath.join(MOUNT, ref.sub_path) if ref.sub_path else MOUNT


def inspect_job(
    ref: PvcRef, resource: ModelResource, *, image: str, job_name: str
) -> dict[str, Any]:
    """A batch/v1 Job (in the claim's namespace) that inspects the model on the claim.

    Found by the labels ``app.kubernetes.io/component=pvc-inspect`` and
    ``ome.io/model-uid=<uid>``; its Pod by ``job-name=<job_name>``."""
    labels = {
        "app.kubernetes.io/name": "ome-agent",
        LABEL_COMPONENT: COMPONENT,
        LABEL_MODEL_KIND: resource.kind,
    }
    if resource.uid:
        labels[LABEL_MODEL_UID] = resource.uid
    command = ["ome-agent", "inspect", model_dir(ref), "--json"]
    command += ["--termination-log", TERMINATION_LOG]
    schema_path = resource.storage.schema_path if resource.storage is not None else None
    if schema_path:
        command += ["--schema-path", schema_path]
    container = {
        "name": "inspect",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        # the result travels in the termination message, read by job_result()
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "model", "mountPath": MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": ref.namespace,
            "labels": labels,
            "annotations": {ANNOTATION_MODEL: str(resource.key)},
        },
        "spec": {
            "backoffLimit": 1,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "model",
                            "persistentVolumeClaim": {"claimName": ref.claim, "readOnly": True},
                        },
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def job_result(pod: Mapping[str, Any]) -> tuple[str, Mapping[str, Any] | None, str | None]:
    """``(state, config, error)`` of an inspection Pod: state is ``Running`` (also while
    pending), ``Succeeded`` with the config from the termination message, or
    ``Failed`` with the reason."""
    status = pod.get("status") if isinstance(pod, Mapping) else None
    status = status if isinstance(status, Mapping) else {}
    phase = status.get("phase")
    terminated = _terminated(status)
    if phase == "Succeeded" or (terminated is not None and terminated.get("exitCode") == 0):
        message = terminated.get("message") if terminated is not None else None
        config = _config(message)
        if config is None:
            return "Failed", None, "the inspection wrote no readable config"
        return "Succeeded", config, None
    if phase == "Failed" or terminated is not None:
        return "Failed", None, _failure(status, terminated)
    waiting = _waiting_reason(status)
    return "Running", None, waiting


def _container_statuses(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = status.get("containerStatuses")
    return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for container in _container_statuses(status):
        state = container.get("state")
        if isinstance(state, Mapping) and isinstance(state.get("terminated"), Mapping):
            terminated: Mapping[str, Any] = state["terminated"]
            return terminated
    return None


def _waiting_reason(status: Mapping[str, Any]) -> str | None:
    for container in _container_statuses(status):
        state = container.get("state")
        waiting = state.get("waiting") if isinstance(state, Mapping) else None
        if isinstance(waiting, Mapping) and waiting.get("reason"):
            detail = waiting.get("message")
            text = f"{waiting['reason']}: {detail}" if detail else str(waiting["reason"])
            return st.clip(text, MAX_ERROR)
    return None


def _config(message: Any) -> Mapping[str, Any] | None:
    if not isinstance(message, str) or not message.strip():
        return None
    try:
        parsed = json.loads(message)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _failure(status: Mapping[str, Any], terminated: Mapping[str, Any] | None) -> str:
    if terminated is not None:
        message = terminated.get("message")
        reason = terminated.get("reason") or "Error"
        code = terminated.get("exitCode")
        text = f"{reason} (exit code {code})"
        return st.clip(
            f"{text}: {message.strip()}" if isinstance(message, str) and message.strip() else text,
            MAX_ERROR,
        )
    fallback = status.get("message") or status.get("reason") or "the inspection Pod failed"
    return st.clip(str(fallback), MAX_ERROR)


def pvc_status(
    resource: ModelResource,
    pvc: Mapping[str, Any] | None,
    job_state: str | None,
    config: Mapping[str, Any] | None,
    error: str | None,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """The ``.status`` of a pvc:// model, same shape as :func:`status.aggregate`'s.

    ``pvc``: the claim object (None when it does not exist); ``job_state``, ``config``,
    ``error``: :func:`job_result` of the inspection (``job_state`` None before a Job
    ran). Bound with a config → Ready; Bound under the skip-config-parsing annotation →
    Ready without an inspection (no Job needed); Pending → In_Transit; missing or Lost →
    Failed naming the claim; inspection failed → Failed with its message. Node fields
    stay empty: the model is on a volume, not on nodes."""
    claim = _claim_name(pvc, resource)
    phase = _phase(pvc)
    ready = False
    if resource.disabled:
        state, lifecycle = st.DISABLED, st.LC_DISABLED
        cond = ("Disabled", "spec.disabled is true")
    elif pvc is None:
        state, lifecycle = st.FAILED, st.LC_FAILED
        cond = (
            "ClaimNotFound",
            f"PersistentVolumeClaim {claim} does not exist: create it or fix {_FIELD}",
        )
    elif phase == "Lost":
        state, lifecycle = st.FAILED, st.LC_FAILED
        cond = ("ClaimLost", f"PersistentVolumeClaim {claim} is Lost: its volume is gone")
    elif phase != "Bound":
        state, lifecycle = st.IN_TRANSIT, st.LC_PENDING
        cond = ("ClaimPending", f"PersistentVolumeClaim {claim} is {phase or 'not bound yet'}")
    elif resource.skip_config_parsing:
        # the user asked for no config reading: a bound claim is all there is to check
        state, lifecycle, ready = st.READY, st.LC_READY, True
        cond = ("ClaimReady", f"PersistentVolumeClaim {claim} is Bound (config parsing skipped)")
    elif job_state == "Failed":
        state, lifecycle = st.FAILED, st.LC_FAILED
        cond = (
            "InspectionFailed",
            f"reading the model on {claim} failed: {error or 'no reason given'}",
        )
    elif job_state == "Succeeded" and config is not None:
        state, lifecycle, ready = st.READY, st.LC_READY, True
        cond = ("ClaimReady", f"PersistentVolumeClaim {claim} is Bound and its model was read")
    else:
        state, lifecycle = st.IN_TRANSIT, st.LC_PENDING
        detail = f" ({error})" if error else ""
        cond = ("Inspecting", f"PersistentVolumeClaim {claim} is Bound; reading the model{detail}")
    if resource.deleting:
        lifecycle = st.LC_DELETING
    failed = state == st.FAILED
    conditions = [
        {
            "type": st.COND_READY,
            "status": "True" if ready else "False",
            "reason": cond[0],
            "message": cond[1],
        },
        {
            "type": st.COND_PROGRESSING,
            "status": "True" if cond[0] == "Inspecting" else "False",
            "reason": "Inspecting" if cond[0] == "Inspecting" else "Idle",
            "message": cond[1] if cond[0] == "Inspecting" else "no inspection running",
        },
        {
            "type": st.COND_DEGRADED,
            "status": "True" if failed else "False",
            "reason": cond[0] if failed else "NoFailures",
            "message": cond[1] if failed else "no failure",
        },
    ]
    return {
        "state": state,
        "lifecycle": lifecycle,
        "nodesReady": [],
        "nodesFailed": [],
        "eligibleNodeCount": 0,
        "readyNodeCount": 0,
        "failedNodeCount": 0,
        "observedGeneration": resource.generation,
        "lastReconcileTime": rfc3339(now),
        "conditions": st.merge_conditions(previous, conditions, now, resource.generation),
    }


def _phase(pvc: Mapping[str, Any] | None) -> str | None:
    status = pvc.get("status") if isinstance(pvc, Mapping) else None
    phase = status.get("phase") if isinstance(status, Mapping) else None
    return phase if isinstance(phase, str) else None


def _claim_name(pvc: Mapping[str, Any] | None, resource: ModelResource) -> str:
    meta = pvc.get("metadata") if isinstance(pvc, Mapping) else None
    if isinstance(meta, Mapping) and meta.get("name"):
        return f"{meta.get('namespace', '')}/{meta['name']}".lstrip("/")
    uri = resource.storage_uri
    if not uri.startswith(SCHEME):
        return "(no pvc:// storageUri)"
    # "ns:claim/sub" -> "ns/claim": how kubectl names it
    head = uri[len(SCHEME) :].partition("/")[0]
    return head.replace(":", "/")
