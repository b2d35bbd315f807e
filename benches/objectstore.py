"""Object-store benchmarks: ours against the vendors' own download tools (O1 OCI, O2 S3).

Entry points: ``python -m benches.run --scenarios O1,O2`` (scenarios of the main
harness, same rounds, measures and JSON), and the helper commands this module runs
as subprocesses: ``python -m benches.objectstore boto3 ...`` (the boto3 peer) and
``python -m benches.objectstore serve-oci ...`` (the OCI server in its own process).

Where it sits: beside ``benches.run``, whose round-robin runner it reuses. It writes
one sharded model (safetensors shards + small json files) into a bucket directory,
serves it with a protocol-faithful server in its own process (the fast S3 server
``tests/servers/s3_fast.py``; the OCI server ``tests/servers/oci_server.py``), both of
which check every request's signature and move bytes with sendfile, and measures
each tool into a fresh destination on tmpfs. Each server's ceiling is a row of the
table: ``curl -Z`` of every object in parallel, with presigned URLs (S3) or headers
signed beforehand by the oci SDK's signer (OCI; valid five minutes). moto's server
is measured the same way on one shard, as the slow reference benches/README.md names.

Credentials are made up per harness run; none is printed or written to the results.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".cache" / "bench-peers"
AWS = PEERS / "awscli" / "bin" / "aws"
OCI = PEERS / "oci-cli" / "bin" / "oci"
BUCKET, PREFIX = "bench", "model"
NAMESPACE = "benchns"
TENANCY, USER = "ocid1.tenancy.oc1..bench", "ocid1.user.oc1..bench"
REGION_S3, REGION_OCI = "us-east-1", "us-ashburn-1"
MiB = 1024 * 1024
# How the objects were "uploaded", which decides the digests each service gives:
# `aws s3 cp` uploads in 8 MiB parts above 8 MiB (S3 ETag md5-of-md5s "-N"),
# `oci os object put` in 128 MiB parts above 128 MiB (opc-multipart-md5, no Content-MD5).
S3_PART = 8 * MiB
OCI_PART = 128 * MiB
CURL_PARALLEL = 16

TITLES = {
    "O1": "OCI Object Storage: sharded model through the local OCI server, destination on tmpfs",
    "O2": "S3: sharded model through the fast S3 server, destination on tmpfs",
}


@dataclass
class Creds:
    """Made-up credentials for one harness run (S3 keys, an OCI API key pair)."""

    access_key: str
    secret_key: str
    aws_credentials: Path
    oci_key_file: Path
    oci_config: Path
    oci_fingerprint: str
    oci_public_pem: Path


def make_creds(workdir: Path) -> Creds:
    from tests.servers.oci_server import ApiKey, config_profile

    key = ApiKey.generate()
    key_file = workdir / "oci_api_key.pem"
    key_file.write_text(key.private_pem)
    key_file.chmod(0o600)
    public = workdir / "oci_api_key_public.pem"
    public.write_text(key.public_pem)
    config = workdir / "oci_config"
    config.write_text(
        config_profile(
            "DEFAULT",
            user=USER,
            tenancy=TENANCY,
            fingerprint=key.fingerprint,
            region=REGION_OCI,
            key_file=key_file,
        )
    )
    config.chmod(0o600)
    access_key, secret_key = "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    # every S3 client here (ours, aws-cli, boto3) reads keys from this file, so no
    # secret sits in an environment that the results record
    aws = workdir / "aws_credentials"
    aws.write_text(
        f"[default]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret_key}\n"
    )
    aws.chmod(0o600)
    return Creds(access_key, secret_key, aws, key_file, config, key.fingerprint, public)


# ---------------------------------------------------------------- servers
@contextlib.contextmanager
def server_process(argv: list[str], marker: str, log: Path, env: dict[str, str]) -> Iterator[str]:
    """Start a server in its own process; yields what it prints after ``marker=``."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(marker + "="):
            raise RuntimeError(f"{argv[2]} did not start: see {log}")
        yield line.strip().split("=", 1)[1]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(timeout=10)


def s3_server(objects: Path, creds: Creds, workdir: Path) -> contextlib.AbstractContextManager[str]:
    argv = [sys.executable, "-m", "tests.servers.s3_fast", "--root", str(objects)]
    argv += ["--part-size", str(S3_PART), "--region", REGION_S3]
    # what S3 stores for every new upload now: a full-object CRC64NVME beside the ETag
    argv += ["--crc64nvme"]
    # the keys go by environment, not argv (visible in ps)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": creds.access_key}
    env["AWS_SECRET_ACCESS_KEY"] = creds.secret_key
    return server_process(argv, "AWS_ENDPOINT_URL", workdir / "s3_fast.log", env)


def oci_server(
    objects: Path, creds: Creds, workdir: Path
) -> contextlib.AbstractContextManager[str]:
    argv = [sys.executable, "-m", "benches.objectstore", "serve-oci", "--root", str(objects)]
    argv += ["--public-key", str(creds.oci_public_pem), "--fingerprint", creds.oci_fingerprint]
    argv += ["--workdir", str(workdir / "oci-server")]
    return server_process(argv, "OCI_ENDPOINT", workdir / "oci_server.log", dict(os.environ))


def serve_oci(a: argparse.Namespace) -> None:
    """The OCI server with every file under ROOT/bucket as an object, until killed."""
    from tests.servers import oci_server

    server = oci_server.OciServer(a.workdir, namespace=NAMESPACE)
    server.add_user(TENANCY, USER, a.fingerprint, Path(a.public_key).read_text())
    for bucket in sorted(p for p in a.root.iterdir() if p.is_dir()):
        server.add_bucket(bucket.name)
        for f in sorted(p for p in bucket.rglob("*") if p.is_file()):
            big = f.stat().st_size > OCI_PART
            name = f.relative_to(bucket).as_posix()
            server.add_object(bucket.name, name, f, multipart_part_size=OCI_PART if big else None)
    with server:
        print(f"OCI_ENDPOINT={server.endpoint}", flush=True)
        while True:
            time.sleep(3600)


# ---------------------------------------------------------------- ceilings
def _curl_config(path: Path, entries: list[tuple[str, Path, dict[str, str]]]) -> Path:
    """A curl config of one transfer per object (-Z runs them in parallel)."""

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    blocks = []
    for url, out, headers in entries:
        lines = [f"url = {quoted(url)}", f"output = {quoted(str(out))}"]
        lines += [f"header = {quoted(f'{k}: {v}')}" for k, v in headers.items()]
        blocks.append("\n".join(lines))
    path.write_text("\nnext\n".join(blocks) + "\n")
    path.chmod(0o600)  # signed headers and URLs are credentials for their lifetime
    return path


def curl_argv(config: Path) -> list[str]:
    parallel = ["-Z", "--parallel-max", str(CURL_PARALLEL)]
    return ["curl", "-sS", "--fail", *parallel, "--create-dirs", "-K", str(config)]


def s3_presigned(endpoint: str, creds: Creds, keys: list[str]) -> list[str]:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION_S3,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=Config(signature_version="s3v4"),
    )
    return [
        client.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=3600
        )
        for k in keys
    ]


def oci_signed_headers(url: str, creds: Creds) -> dict[str, str]:
    """Headers of a GET signed by the oci SDK's own signer (valid five minutes)."""
    import oci
    import requests

    signer = oci.signer.Signer(
        TENANCY, USER, creds.oci_fingerprint, private_key_file_location=str(creds.oci_key_file)
    )
    req = signer(requests.Request("GET", url).prepare())
    return {k: req.headers[k] for k in ("date", "host", "authorization")}


# ---------------------------------------------------------------- peers
def boto3_download(endpoint: str, bucket: str, prefix: str, dest: str) -> None:
    """What a user's boto3 script does: list, then ``download_file`` per object with
    the transfer manager's defaults (TransferConfig: 8 MiB parts, 10 threads)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)  # keys and region from the env
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    for page in pages:
        for obj in page.get("Contents", []):
            out = Path(dest, obj["Key"][len(prefix) + 1 :])
            out.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(out))


# ---------------------------------------------------------------- scenarios
def s3_env(endpoint: str, creds: Creds, workdir: Path) -> dict[str, str]:
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(creds.aws_credentials),
        "AWS_REGION": REGION_S3,
        "AWS_DEFAULT_REGION": REGION_S3,
        "AWS_ENDPOINT_URL": endpoint,
        # nobody's ~/.aws/config or instance metadata takes part
        "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def s3_tools(endpoint: str, creds: Creds, keys: list[str], workdir: Path) -> list[Any]:
    from benches.run import OME_AGENT, PY, Tool

    env = s3_env(endpoint, creds, workdir)
    uri = f"s3://{BUCKET}/{PREFIX}"

    def curl(c: Any) -> list[str]:
        urls = s3_presigned(endpoint, creds, keys)
        entries = [(u, c.dest / k[len(PREFIX) + 1 :], {}) for u, k in zip(urls, keys, strict=True)]
        return curl_argv(_curl_config(workdir / "curl-s3.cfg", entries))

    return [
        Tool(
            "ours",
            "ome-agent pull s3:// (crc64nvme)",
            "ours",
            lambda c: [OME_AGENT, "pull", uri, str(c.dest), "--json"],
            env=env,
            require_sha256=False,
        ),
        Tool(
            "ours-noverify",
            "ome-agent pull s3:// --no-verify",
            "ours",
            lambda c: [OME_AGENT, "pull", uri, str(c.dest), "--no-verify", "--json"],
            env=env,
        ),
        Tool(
            "aws-cli",
            "aws s3 cp --recursive (awscli v1 defaults)",
            "peer",
            lambda c: [
                str(AWS),
                "s3",
                "cp",
                "--recursive",
                uri,
                str(c.dest),
                "--endpoint-url",
                endpoint,
                "--only-show-errors",
            ],
            env=env,
        ),
        Tool(
            "boto3",
            "boto3 download_file per object (TransferConfig defaults)",
            "peer",
            lambda c: [
                PY,
                "-m",
                "benches.objectstore",
                "boto3",
                endpoint,
                BUCKET,
                PREFIX,
                str(c.dest),
            ],
            env=env,
        ),
        Tool(
            "curl-ceiling",
            f"curl -Z --parallel-max {CURL_PARALLEL}, presigned (server ceiling)",
            "reference",
            curl,
        ),
    ]


def oci_tools(endpoint: str, creds: Creds, names: list[str], workdir: Path) -> list[Any]:
    from benches.run import OME_AGENT, Tool

    env = {
        "OCI_CONFIG_FILE": str(creds.oci_config),
        "OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING": "True",
    }
    uri = f"oci://n/{NAMESPACE}/b/{BUCKET}/o/{PREFIX}"
    params = ["--param", f"endpoint={endpoint}", "--param", "auth=UserPrincipal"]

    def url(name: str) -> str:
        return f"{endpoint}/n/{NAMESPACE}/b/{BUCKET}/o/{quote(name, safe='/')}"

    def curl(c: Any) -> list[str]:
        entries = [
            (url(n), c.dest / n[len(PREFIX) + 1 :], oci_signed_headers(url(n), creds))
            for n in names
        ]
        return curl_argv(_curl_config(workdir / "curl-oci.cfg", entries))

    return [
        Tool(
            "ours",
            "ome-agent pull oci:// (crc32c / md5)",
            "ours",
            lambda c: [OME_AGENT, "pull", uri, str(c.dest), *params, "--json"],
            env=env,
            require_sha256=False,
        ),
        Tool(
            "ours-noverify",
            "ome-agent pull oci:// --no-verify",
            "ours",
            lambda c: [OME_AGENT, "pull", uri, str(c.dest), *params, "--no-verify", "--json"],
            env=env,
        ),
        Tool(  # each OCI request costs an RSA signature: fewer, larger ranges
            "ours-chunk64",
            "ome-agent pull oci:// --chunk-size 64M (crc32c / md5)",
            "ours",
            lambda c: [
                OME_AGENT,
                "pull",
                uri,
                str(c.dest),
                *params,
                "--chunk-size",
                "64M",
                "--json",
            ],
            env=env,
            require_sha256=False,
        ),
        Tool(
            "oci-cli",
            "oci os object bulk-download (oci-cli defaults)",
            "peer",
            lambda c: [
                str(OCI),
                "os",
                "object",
                "bulk-download",
                "--config-file",
                str(creds.oci_config),
                "--endpoint",
                endpoint,
                "--namespace",
                NAMESPACE,
                "--bucket-name",
                BUCKET,
                "--prefix",
                PREFIX + "/",
                "--download-dir",
                str(c.dest),
            ],
            env=env,
            subdir=PREFIX,  # it keeps the object names' prefix under the directory
        ),
        Tool(
            "curl-ceiling",
            f"curl -Z --parallel-max {CURL_PARALLEL}, pre-signed headers (server ceiling)",
            "reference",
            curl,
        ),
    ]


def moto_ceiling(src: Path, rel_names: list[str], workdir: Path, runs: int) -> dict[str, Any]:
    """moto's server serving a subset of the model to parallel curl: its ceiling.

    moto runs without its signature checks here: with them on, it answers a
    presigned GET with a 500 (it looks for an Authorization header)."""
    import boto3
    from botocore.config import Config
    from tests.cluster.controlplane import free_port

    from benches.measure import run_measured

    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log = (workdir / "moto.log").open("w")
    moto = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION_S3,
            aws_access_key_id="moto",
            aws_secret_access_key="moto",  # noqa: S106 - moto checks nothing here
            config=Config(signature_version="s3v4", retries={"mode": "standard"}),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline or moto.poll() is not None:
                    raise
                time.sleep(0.2)
        for rel in rel_names:
            client.upload_file(str(src / rel), BUCKET, f"{PREFIX}/{rel}")
        size = sum((src / rel).stat().st_size for rel in rel_names)
        seconds: list[float] = []
        for r in range(runs):
            dest = workdir / "moto-out"
            shutil.rmtree(dest, ignore_errors=True)
            entries = [
                (
                    client.generate_presigned_url(
                        "get_object",
                        Params={"Bucket": BUCKET, "Key": f"{PREFIX}/{rel}"},
                        ExpiresIn=3600,
                    ),
                    dest / rel,
                    {},
                )
                for rel in rel_names
            ]
            cfg = _curl_config(workdir / "curl-moto.cfg", entries)
            run = run_measured(curl_argv(cfg), logdir=workdir / "logs" / "moto" / str(r))
            if run.exit_code == 0 and all(
                (dest / rel).stat().st_size == (src / rel).stat().st_size for rel in rel_names
            ):
                seconds.append(run.seconds)
            shutil.rmtree(dest, ignore_errors=True)
    finally:
        os.killpg(moto.pid, 15)
        moto.wait(timeout=10)
        log.close()
    median = statistics.median(seconds) if seconds else None
    return {
        "server": "moto (python -m moto.server)",
        "client": f"curl -Z --parallel-max {CURL_PARALLEL}, presigned",
        "bytes": size,
        "files": len(rel_names),
        "ok_runs": len(seconds),
        "runs": runs,
        "median_seconds": None if median is None else round(median, 4),
        "gb_per_s": None if median is None else round(size / 1e9 / median, 4),
    }


def run(
    keys: list[str],
    *,
    runs: int,
    quick: bool,
    check_all: bool,
    workdir: Path,
    base_doc: Callable[[str, str], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Measure O1 / O2; returns one result document per scenario (not yet written)."""
    from benches import data
    from benches.run import TMPFS, Ctx, Scenario, console, run_scenario

    shards, shard_size = (4, 32 * MiB) if quick else (8, 512 * MiB)
    objects = workdir / "objects"
    t0 = time.perf_counter()
    files = data.hf_repo(objects, f"{BUCKET}/{PREFIX}", shards=shards, shard_size=shard_size)
    model = objects / BUCKET / PREFIX
    expected = {f.path.relative_to(model).as_posix(): f.size for f in files}
    digests = {f.path.relative_to(model).as_posix(): f.sha256 for f in files}
    total = sum(expected.values())
    console.print(
        f"generated {len(files)} objects, {total / 1e9:.2f} GB in {time.perf_counter() - t0:.1f}s"
    )
    data.warm([f.path for f in files])
    creds = make_creds(workdir)
    names = [f"{PREFIX}/{rel}" for rel in sorted(expected)]
    docs = []
    for key in keys:
        sc = Scenario(key, TITLES[key], TMPFS, hf=True)
        console.print(f"[bold]{key}[/]: {sc.title}")
        server, tools_of, part, digest = (
            (s3_server, s3_tools, S3_PART, "S3 ETag md5-of-md5s, full-object CRC64NVME kept")
            if key == "O2"
            else (oci_server, oci_tools, OCI_PART, "opc-multipart-md5, CRC32C kept")
        )
        t0 = time.perf_counter()
        with server(objects, creds, workdir) as endpoint:
            console.print(f"  server ready in {time.perf_counter() - t0:.1f}s (digests computed)")
            ctx = Ctx(endpoint, model, Path(), "", total)
            body = run_scenario(
                sc,
                tools_of(endpoint, creds, names, workdir),
                ctx,
                runs=runs,
                expected_files=expected,
                expected_digests=digests,
                workdir=workdir,
                check_all=check_all,
            )
        doc = {**base_doc(key, sc.title), "bytes": total, "files": len(expected), **body}
        doc["destination_fs"] = str(TMPFS)
        doc["object_layout"] = (
            f"{shards} x {shard_size // MiB} MiB safetensors shards + {len(expected) - shards} "
            f"small files; multipart above {part // MiB} MiB ({digest})"
        )
        if key == "O2":
            subset = [rel for rel in sorted(expected) if not rel.endswith(".safetensors")][:1]
            subset.append(sorted(r for r in expected if r.endswith(".safetensors"))[0])
            console.print("  moto ceiling (one shard and one small file)...")
            moto = moto_ceiling(model, subset, workdir, min(runs, 3))
            doc["moto_ceiling"] = moto
            console.print(
                f"  moto ceiling: {moto['gb_per_s']} GB/s over {moto['bytes'] / 1e9:.2f} GB"
            )
        docs.append(doc)
    return docs


def peer_versions() -> dict[str, str]:
    from benches.run import _first_line, _py_version

    return {
        "aws-cli": _first_line([str(AWS), "--version"]),
        "oci-cli": _first_line([str(OCI), "--version"]),
        "boto3": _py_version("boto3"),
        "botocore": _py_version("botocore"),
        "oci": _py_version("oci"),
        "moto": _py_version("moto"),
    }


def missing_peers() -> list[str]:
    return [str(p) for p in (AWS, OCI) if not p.exists()] + (
        [] if shutil.which("curl") else ["curl"]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benches.objectstore")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("boto3", help="the boto3 peer: download_file per object")
    b.add_argument("endpoint")
    b.add_argument("bucket")
    b.add_argument("prefix")
    b.add_argument("dest")
    s = sub.add_parser("serve-oci", help="the OCI server over ROOT/bucket/... until killed")
    s.add_argument("--root", required=True, type=Path)
    s.add_argument("--public-key", required=True)
    s.add_argument("--fingerprint", required=True)
    s.add_argument("--workdir", required=True, type=Path)
    a = p.parse_args(argv)
    if a.cmd == "boto3":
        boto3_download(a.endpoint, a.bucket, a.prefix, a.dest)
    else:
        serve_oci(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
