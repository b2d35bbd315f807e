"""Credentials of ``oci://`` sources: ``spec.storage.parameters.auth`` → an oci SDK signer.

Where it sits: sources layer, called by :mod:`ome_agent.sources.oci` before it lists
a bucket. The oci SDK does every bit of the cryptography (request signing, security
tokens, their refresh); this module only picks the principal and turns the SDK's
failures into one-line errors that name the field to fix, never a secret.

Principals (``parameters.auth``, or the reference doc's ``auth_type``; case, ``_``,
``-`` and spaces ignored, so OME's ``InstancePrincipal`` and ``instance_principal``
both work):

- ``UserPrincipal`` (also ``ApiKey``): an API signing key. From the Secret named by
  ``storage.key`` when there is one, with keys ``user``, ``tenancy``,
  ``fingerprint``, ``key`` (the PEM private key; ``private_key`` and ``key_content``
  are accepted too), optional ``passphrase`` (or ``pass_phrase``) and ``region``.
  Without a Secret: the OCI config file (``OCI_CONFIG_FILE``, default
  ``~/.oci/config``), profile ``parameters.profile`` (default ``DEFAULT``).
- ``InstancePrincipal``: the node's own identity, from the instance metadata service
  (``OCI_METADATA_BASE_URL`` overrides its address, as in the SDK) exchanged for a
  security token at the regional auth service (``parameters.federation_endpoint``
  overrides it, for dedicated realms).
- ``ResourcePrincipal``: the ``OCI_RESOURCE_PRINCIPAL_*`` environment of the pod.
- ``OkeWorkloadIdentity``: the pod's service-account token exchanged at the OKE
  proxymux (``KUBERNETES_SERVICE_HOST``, port 12250).

With no ``auth`` parameter: ``UserPrincipal`` when a Secret is named or a config
file exists, else an error asking for ``parameters.auth`` (OME itself silently
assumes InstancePrincipal; an explicit choice gives a clearer failure off OCI).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ome_agent.errors import BadInput, ParameterError, TransferFailed
from ome_agent.sources.auth import StorageAuth, first_value

USER = "UserPrincipal"
INSTANCE = "InstancePrincipal"
RESOURCE = "ResourcePrincipal"
OKE = "OkeWorkloadIdentity"

_KINDS = {
    "userprincipal": USER,
    "user": USER,
    "apikey": USER,
    "instanceprincipal": INSTANCE,
    "instance": INSTANCE,
    "resourceprincipal": RESOURCE,
    "resource": RESOURCE,
    "okeworkloadidentity": OKE,
    "workloadidentity": OKE,
    "oke": OKE,
}
CHOICES = f"{USER}, {INSTANCE}, {RESOURCE} or {OKE}"

# Secret key → the OCI config-file key it fills; the first spelling is the documented one
_SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_ocid"),
    "tenancy": ("tenancy", "tenancy_ocid"),
    "fingerprint": ("fingerprint",),
    "key_content": ("key", "private_key", "key_content"),
    "pass_phrase": ("passphrase", "pass_phrase"),
    "region": ("region",),
}


@dataclass(frozen=True)
class OciCredentials:
    """A ready signer and what the principal knows about where it lives."""

    kind: str  # one of USER, INSTANCE, RESOURCE, OKE
    signer: Any = field(repr=False)  # an oci SDK signer: a requests auth object
    region: str | None  # the principal's own region (config, metadata service, env)
    origin: str  # for messages: where the credentials came from (no values)
    # the SDK client's config: a UserPrincipal's user, tenancy, key, ...; {} for tokens
    config: Mapping[str, str] = field(default_factory=dict, repr=False)


def auth_kind(auth: StorageAuth) -> str:
    """The principal named by ``parameters.auth`` / ``auth_type``, or the default."""
    raw = auth.param("auth", "auth_type")
    if raw is None:
        if auth.secret is not None or os.path.isfile(config_file_path()):
            return USER
        raise ParameterError(
            "auth",
            "oci:// needs credentials: set ",
            f" to {CHOICES} (UserPrincipal reads the Secret named by spec.storage.key or "
            "the OCI config file)",
        )
    kind = _KINDS.get("".join(c for c in raw.lower() if c.isalnum()))
    if kind is None:
        raise ParameterError("auth", "", f" is not an OCI principal: use {CHOICES}", value=raw)
    return kind


def config_file_path() -> str:
    return os.path.expanduser(os.environ.get("OCI_CONFIG_FILE") or "~/.oci/config")


def oci_credentials(auth: StorageAuth) -> OciCredentials:
    """Build the signer of the principal the spec names (BadInput when unusable)."""
    kind = auth_kind(auth)
    if kind == USER:
        if auth.secret is not None:
            return _user_from_secret(auth)
        return _user_from_config_file(auth)
    return _token_principal(kind, auth)


def _user_from_secret(auth: StorageAuth) -> OciCredentials:
    import oci  # type: ignore[import-untyped]

    assert auth.secret is not None
    where = f"Secret {auth.secret_name!r}" if auth.secret_name else "the storage Secret"
    config: dict[str, str] = {}
    source_key: dict[str, str] = {}
    for config_key, names in _SECRET_KEYS.items():
        if (hit := first_value(auth.secret, names)) is not None:
            source_key[config_key], config[config_key] = hit
    missing = [
        _SECRET_KEYS[k][0]
        for k in ("user", "tenancy", "fingerprint", "key_content")
        if k not in config
    ]
    if missing:
        raise BadInput(
            f"{where} lacks {', '.join(repr(m) for m in missing)} for an OCI UserPrincipal: "
            "give the keys user, tenancy, fingerprint and key (the PEM private key), "
            "optionally passphrase and region"
        )
    region = auth.param("region") or config.get("region")
    _validate(
        oci, config, region, lambda k: f"{where} key {source_key.get(k, _SECRET_KEYS[k][0])!r}"
    )
    try:
        signer = oci.signer.Signer(
            config["tenancy"],
            config["user"],
            config["fingerprint"],
            private_key_file_location=None,
            pass_phrase=config.get("pass_phrase"),
            private_key_content=config["key_content"],
        )
    except (oci.exceptions.MissingPrivateKeyPassphrase, oci.exceptions.InvalidPrivateKey) as e:
        raise BadInput(
            _key_problem(e, where, f"key {source_key['key_content']!r}", "key 'passphrase'")
        ) from None
    if region:
        config["region"] = region
    return OciCredentials(USER, signer, region, where, config)


def _user_from_config_file(auth: StorageAuth) -> OciCredentials:
    import oci

    path = config_file_path()
    profile = auth.param("profile") or "DEFAULT"
    where = f"OCI config file {path} [{profile}]"
    if not os.path.isfile(path):
        raise BadInput(
            f"UserPrincipal: no Secret named (spec.storage.key) and no OCI config file at {path}: "
            "name a Secret with user, tenancy, fingerprint and key, or set OCI_CONFIG_FILE"
        )
    try:
        config = oci.config.from_file(file_location=path, profile_name=profile)
    except oci.exceptions.ProfileNotFound:
        raise ParameterError(
            "profile", f"{where}: no such profile: set ", " to one in the file"
        ) from None
    except oci.exceptions.ConfigFileNotFound:
        raise BadInput(f"{where}: cannot read the file") from None
    except oci.exceptions.InvalidKeyFilePath:
        raise BadInput(
            f"{where}: its key_file is not a file: fix the path in the profile"
        ) from None
    except ValueError:  # keys a config file may not hold (e.g. key_content)
        raise BadInput(f"{where}: the profile holds keys only a program may set") from None
    except oci.exceptions.InvalidConfig as e:
        raise BadInput(f"{where}: {_config_errors(e, lambda k: repr(k))}") from None
    region = auth.param("region") or config.get("region")
    _validate(oci, dict(config), region, lambda k: f"{where} entry {k!r}")
    try:
        signer = oci.signer.Signer.from_config(config)
    except (oci.exceptions.MissingPrivateKeyPassphrase, oci.exceptions.InvalidPrivateKey) as e:
        raise BadInput(_key_problem(e, where, "key_file", "pass_phrase")) from None
    except OSError:
        raise BadInput(f"{where}: cannot read its key_file: fix the path in the profile") from None
    return OciCredentials(USER, signer, region, where, dict(config))


def _validate(oci: Any, config: dict[str, str], region: str | None, name: Any) -> None:
    """The SDK's own checks (OCID and fingerprint shapes); region may come later."""
    probe = dict(config)
    probe["region"] = region or "placeholder-region-1"  # checked where it is needed
    try:
        oci.config.validate_config(probe)
    except oci.exceptions.InvalidConfig as e:
        raise BadInput(f"OCI UserPrincipal: {_config_errors(e, name)}") from None


def _config_errors(e: Exception, name: Any) -> str:
    errors = e.args[0] if e.args and isinstance(e.args[0], dict) else {}
    if not errors:
        return "invalid configuration"
    parts = [f"{name(k)} is {v}" for k, v in sorted(errors.items())]
    return (
        "; ".join(parts)
        + " (OCIDs look like ocid1.user.oc1..xxxx, a fingerprint like 12:34:...:ef)"
    )


def _key_problem(e: Exception, where: str, key_name: str, passphrase_name: str) -> str:
    import oci

    if isinstance(e, oci.exceptions.MissingPrivateKeyPassphrase):
        return (
            f"{where}: {key_name} is an encrypted private key: give its passphrase in "
            f"{passphrase_name}"
        )
    return (
        f"{where}: {key_name} is not a PEM private key, or {passphrase_name} is wrong: give "
        "the API signing key (-----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----) "
        "and its passphrase"
    )


def _token_principal(kind: str, auth: StorageAuth) -> OciCredentials:
    """Instance, resource and workload principals: the SDK fetches and refreshes tokens."""
    import oci

    signers = oci.auth.signers
    try:
        if kind == INSTANCE:
            federation = auth.param("federation_endpoint")
            kwargs = {"federation_endpoint": federation} if federation else {}
            signer = signers.InstancePrincipalsSecurityTokenSigner(**kwargs)
            origin = "the instance metadata service"
        elif kind == RESOURCE:
            _require_env(
                "OCI_RESOURCE_PRINCIPAL_VERSION",
                "ResourcePrincipal works in a pod given a resource principal "
                "(OCI_RESOURCE_PRINCIPAL_* environment)",
            )
            signer = signers.get_resource_principals_signer()
            origin = "the resource principal environment"
        else:
            _require_env(
                "KUBERNETES_SERVICE_HOST",
                "OkeWorkloadIdentity works in a pod of an OKE enhanced cluster",
            )
            signer = signers.get_oke_workload_identity_resource_principal_signer()
            origin = "the OKE workload identity"
    except BadInput:
        raise
    except oci.exceptions.ServiceError as e:
        raise _principal_failure(kind, f"{e.status} {e.code or ''}".strip(), e.status) from None
    except OSError as e:  # the SDK's HTTP errors (requests') are OSErrors
        # never str(e): SDK messages may quote token endpoints' answers
        status = getattr(getattr(e, "response", None), "status_code", None)
        raise _principal_failure(kind, type(e).__name__, status) from None
    except (ValueError, RuntimeError, KeyError) as e:  # malformed environment or answer
        raise _principal_failure(kind, type(e).__name__, 400) from None
    region = getattr(signer, "region", None)
    return OciCredentials(kind, signer, str(region) if region else None, origin)


def _require_env(name: str, hint: str) -> None:
    if not os.environ.get(name):
        raise ParameterError("auth", f"{hint}: {name} is not set; choose another ", "")


def _principal_failure(kind: str, what: str, status: int | None) -> Exception:
    hints = {
        INSTANCE: "it works on OCI compute instances only, and the instance's dynamic group "
        "needs a policy allowing it to read the bucket",
        RESOURCE: "check the OCI_RESOURCE_PRINCIPAL_* environment of the pod",
        OKE: "check the pod's service account and that the cluster is an OKE enhanced cluster",
    }
    message = f"{kind}: could not get a security token ({what}): {hints[kind]}"
    # a timeout or 5xx may pass; a refusal will not
    if status is None or status >= 500 or status == 429:
        return TransferFailed(message)
    return BadInput(message)
