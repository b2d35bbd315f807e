"""Test-setup helpers over a running control plane: apply manifests, make Nodes,
namespaces, Secrets, and ServiceAccount kubeconfigs bound to deploy/'s RBAC.

Where it sits: test infrastructure for the Kubernetes adapter's integration tests
(docs/architecture.md, layer 5). It uses the official sync ``kubernetes`` client as cluster
admin; the agent under test runs as a subprocess with its own ServiceAccount
kubeconfig (``service_account_kubeconfig``), so a rule missing from
``deploy/agent/rbac.yaml`` fails a test instead of being masked by admin rights.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.cluster.controlplane import REPO_ROOT, ControlPlane

DEPLOY_DIR = REPO_ROOT / "deploy"
CRD_DIR = DEPLOY_DIR / "crds"
RBAC_MANIFEST = DEPLOY_DIR / "agent" / "rbac.yaml"
FIELD_MANAGER = "ome-tests"
# A day: well past any test run; the API server's minimum is ten minutes.
TOKEN_SECONDS = 24 * 3600


T = TypeVar("T")


def wait_until(
    probe: Callable[[], T], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Call ``probe`` until it returns a truthy value and return that value; on timeout
    raise ``TimeoutError`` naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what or probe!r} not true after {timeout}s (last: {value!r})")
        time.sleep(interval)


def unique_name(prefix: str) -> str:
    """A DNS-1123 name unlikely to collide with another test's objects."""
    return f"{prefix}-{secrets.token_hex(3)}"


def load_manifests(paths: Iterable[Path | str]) -> list[dict[str, Any]]:
    """YAML documents of files, or of every ``*.yaml`` in a folder (sorted)."""
    docs: list[dict[str, Any]] = []
    for p in map(Path, paths):
        files = sorted(p.glob("*.yaml")) if p.is_dir() else [p]
        for f in files:
            docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


class Cluster:
    """Admin access to a ``ControlPlane`` plus helpers to set up test objects."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane
        self.api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            str(control_plane.admin_kubeconfig)
        )
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.apiext = client.ApiextensionsV1Api(self.api)
        self.authz = client.AuthorizationV1Api(self.api)
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}
        self._kubeconfigs = control_plane.workdir / "kubeconfigs"

    @property
    def server(self) -> str:
        return self.control_plane.server

    @property
    def admin_kubeconfig(self) -> Path:
        return self.control_plane.admin_kubeconfig

    # ------------------------------------------------------------ raw REST
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        """One REST call as admin; JSON in and out; errors as ``ApiException``."""
        m, url, headers, data, post = self.api.param_serialize(
            method,
            path,
            query_params=query,
            header_params={"Content-Type": content_type, "Accept": accept},
            body=body,
            auth_settings=["BearerToken"],
        )
        resp = self.api.call_api(m, url, headers, data, post)
        raw: bytes = resp.read()  # type: ignore[no-untyped-call]
        if resp.status >= 400:
            raise ApiException(http_resp=resp, body=raw.decode(errors="replace"))
        return json.loads(raw) if raw else None

    def resource(self, api_version: str, kind: str, timeout: float = 5.0) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from discovery. A miss re-reads discovery
        for up to ``timeout`` seconds, so kinds of CRDs just created are found."""
        key = (api_version, kind)
        deadline = time.monotonic() + timeout
        while key not in self._resources:
            for r in self._discover(api_version):
                if "/" not in r["name"]:
                    self._resources[(api_version, r["kind"])] = (r["name"], r["namespaced"])
            if key in self._resources:
                break
            if time.monotonic() > deadline:
                raise KeyError(f"{kind} in {api_version} is not served by the API server")
            time.sleep(0.1)
        return self._resources[key]

    def _discover(self, api_version: str) -> list[dict[str, Any]]:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            found = self.request("GET", base)
        except ApiException as e:
            if e.status == 404:  # the group itself is not registered (yet)
                return []
            raise
        # "resources" can be null while the group's first CRD is being registered
        resources: list[dict[str, Any]] = found.get("resources") or []
        return resources

    def path(self, api_version: str, kind: str, namespace: str | None, name: str = "") -> str:
        plural, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced:
            if not namespace:
                raise ValueError(f"{kind} is namespaced: give a namespace")
            base += f"/namespaces/{namespace}"
        return f"{base}/{plural}" + (f"/{name}" if name else "")

    # ------------------------------------------------------------ objects
    def apply(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Server-side apply of one object (``namespace`` fills a missing
        metadata.namespace of namespaced kinds); returns the stored object."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        _, namespaced = self.resource(obj["apiVersion"], obj["kind"])
        if namespaced and namespace and not meta.get("namespace"):
            meta["namespace"] = namespace
        ns = meta.get("namespace") if namespaced else None
        path = self.path(obj["apiVersion"], obj["kind"], ns, meta["name"])
        stored: dict[str, Any] = self.request(
            "PATCH",
            path,
            obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return stored

    def apply_manifests(
        self, paths: Iterable[Path | str], namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Apply every document of the files/folders; CRDs first, and waited for
        (Established and served) before the objects that may use them."""
        docs = load_manifests(paths)
        crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
        stored = [self.apply(d) for d in crds]
        self.wait_crds_established([d["metadata"]["name"] for d in crds])
        stored += [self.apply(d, namespace) for d in docs if d not in crds]
        return stored

    def wait_crds_established(self, names: Iterable[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                crd = self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
                # a brand-new CRD has status.conditions: null, not a missing key
                status = crd.get("status") or {}
                conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
                if conds.get("Established") == "True":
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRD {name} not Established after {timeout}s: {conds}")
                time.sleep(0.05)
            # Established can precede discovery by a moment; wait until it is served.
            gv = f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
            kind = crd["spec"]["names"]["kind"]
            while kind not in self._served_kinds(gv):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRD {name} not in discovery after {timeout}s")
                time.sleep(0.05)
            self._resources.pop((gv, kind), None)

    def _served_kinds(self, group_version: str) -> set[str]:
        return {r["kind"] for r in self._discover(group_version)}

    def create(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """POST one object (``namespace`` for namespaced kinds); returns the stored
        object. Unlike ``apply``, an existing object is a 409."""
        _, namespaced = self.resource(obj["apiVersion"], obj["kind"])
        ns = (namespace or obj.get("metadata", {}).get("namespace")) if namespaced else None
        stored: dict[str, Any] = self.request(
            "POST", self.path(obj["apiVersion"], obj["kind"], ns), obj
        )
        return stored

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any]:
        obj: dict[str, Any] = self.request("GET", self.path(api_version, kind, namespace, name))
        return obj

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        self.request("DELETE", self.path(api_version, kind, namespace, name))

    def make_namespace(self, name: str | None = None) -> str:
        """Create a namespace (a fresh unique name by default); returns its name.
        Namespaces are never deleted: with no controller-manager they would stay
        Terminating, and unique names keep tests apart anyway."""
        name = name or unique_name("ns")
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name

    def make_node(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """Create (or re-label) a Node object; no kubelet stands behind it."""
        return self.apply(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": dict(labels or {})},
            }
        )

    def make_namespace_and_node(
        self, selector: str, labels: dict[str, str] | None = None
    ) -> tuple[str, str]:
        """A fresh namespace and a fresh Node (``node-...``) labelled ``selector: <its
        name>``, so that a model selecting that label lands on this Node alone; ``labels``
        go on the Node too. Returns (namespace, node)."""
        namespace = self.make_namespace()
        node = unique_name("node")
        self.make_node(node, {**(labels or {}), selector: node})
        return namespace, node

    def label_node(self, name: str, labels: dict[str, str | None]) -> dict[str, Any]:
        """Merge-patch a Node's labels (None removes a label), like `kubectl label`."""
        node: dict[str, Any] = self.request(
            "PATCH",
            f"/api/v1/nodes/{name}",
            {"metadata": {"labels": labels}},
            content_type="application/merge-patch+json",
        )
        return node

    def make_secret(
        self, namespace: str, name: str, data: dict[str, str | bytes]
    ) -> dict[str, Any]:
        """Create (or replace the data of) an Opaque Secret."""
        encoded = {
            k: base64.b64encode(v.encode() if isinstance(v, str) else v).decode()
            for k, v in data.items()
        }
        return self.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
                "type": "Opaque",
                "data": encoded,
            }
        )

    # ------------------------------------------------------------ service accounts
    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        *,
        rbac_manifest: Path | str = RBAC_MANIFEST,
        without: tuple[str, str] | None = None,
        path: Path | None = None,
    ) -> Path:
        """A kubeconfig file (CA data, server, bearer token) for ServiceAccount
        ``namespace/name``, bound to the roles of ``rbac_manifest``.

        The manifest's ClusterRoles/Roles are created under names unique to this
        account and bound to it alone; its Roles land in ``namespace`` (the agent's
        namespace, ``ome`` in deploy/). ``without=(resource, verb)`` removes that
        verb for that resource from every rule granting it (raises if none does),
        for tests proving the rule is needed. The token comes from TokenRequest.
        """
        self.make_namespace(namespace)
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": namespace},
            }
        )
        docs = _rebind(load_manifests([rbac_manifest]), namespace, name, without)
        for doc in docs:
            self.apply(doc)
        self._wait_rbac_effective(namespace, name, docs)
        status = self.core.create_namespaced_service_account_token(
            name,
            namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS)
            ),
        ).status
        if status is None or not status.token:
            raise RuntimeError(f"TokenRequest for {namespace}/{name} returned no token")
        token: str = status.token
        self._kubeconfigs.mkdir(exist_ok=True)
        path = path or self._kubeconfigs / f"{namespace}.{name}.kubeconfig"
        user = f"system:serviceaccount:{namespace}:{name}"
        return self.control_plane.write_kubeconfig(path, user, {"token": token})

    def can(
        self,
        user: str,
        verb: str,
        resource: str,
        *,
        group: str = "",
        namespace: str | None = None,
        groups: list[str] | None = None,
        subresource: str = "",
    ) -> bool:
        """Whether ``user`` may do ``verb`` on ``resource`` (SubjectAccessReview)."""
        attrs = {"verb": verb, "resource": resource, "group": group, "subresource": subresource}
        if namespace:
            attrs["namespace"] = namespace
        review = self.request(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {"user": user, "groups": groups or [], "resourceAttributes": attrs},
            },
        )
        return bool(review["status"].get("allowed", False))

    def _wait_rbac_effective(
        self, namespace: str, name: str, docs: list[dict[str, Any]], timeout: float = 10.0
    ) -> None:
        # The RBAC authorizer reads roles from an informer cache: a token used the
        # instant after the bindings were written could still be denied.
        user = f"system:serviceaccount:{namespace}:{name}"
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        checks = []
        for doc in docs:
            if doc["kind"] in ("ClusterRole", "Role"):
                ns = namespace if doc["kind"] == "Role" else None
                for rule in doc.get("rules", []):
                    for res in rule.get("resources", []):
                        group = (rule.get("apiGroups") or [""])[0]
                        checks.append((rule["verbs"][0], res, group, ns))
        deadline = time.monotonic() + timeout
        for verb, res, group, ns in checks:
            while not self.can(user, verb, res, group=group, namespace=ns, groups=groups):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"RBAC for {user} not effective: {verb} {res}")
                time.sleep(0.05)


def _rebind(
    docs: list[dict[str, Any]],
    namespace: str,
    name: str,
    without: tuple[str, str] | None,
) -> list[dict[str, Any]]:
    """The RBAC documents renamed for one ServiceAccount and bound to it only."""
    suffix = f"{namespace}.{name}"
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    out = []
    removed = False
    for doc in map(copy.deepcopy, docs):
        kind = doc["kind"]
        meta = doc["metadata"]
        if kind not in ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"):
            continue  # the ServiceAccount itself is made by the caller
        meta["name"] = f"{meta['name']}.{suffix}"
        if kind in ("Role", "RoleBinding"):
            meta["namespace"] = namespace
        if kind in ("ClusterRole", "Role"):
            rules = []
            for rule in doc.get("rules", []):
                if (
                    without
                    and without[0] in rule.get("resources", [])
                    and (without[1] in rule["verbs"])
                ):
                    removed = True
                    rules += _split_rule(rule, *without)
                else:
                    rules.append(rule)
            doc["rules"] = rules
        else:
            doc["roleRef"]["name"] = f"{doc['roleRef']['name']}.{suffix}"
            doc["subjects"] = [subject]
        out.append(doc)
    if without and not removed:
        raise ValueError(f"no rule grants {without[1]} on {without[0]}: nothing to remove")
    return out


def _split_rule(rule: dict[str, Any], resource: str, verb: str) -> list[dict[str, Any]]:
    """``rule`` without ``verb`` on ``resource``; other resources keep every verb."""
    rest = [r for r in rule["resources"] if r != resource]
    verbs = [v for v in rule["verbs"] if v != verb]
    out = []
    if rest:
        out.append({**rule, "resources": rest})
    if verbs:
        out.append({**rule, "resources": [resource], "verbs": verbs})
    return out
