"""moto's S3 server (from PyPI) on 127.0.0.1, with SigV4 signatures enforced, for tests.

Where it sits: test infrastructure under the ``s3`` source (docs/architecture.md, layer 2).
moto runs as its own process (``python -m moto.server``) so its global state and
its single-process GIL stay out of the test process. Right after start, the first
five unauthenticated actions create an IAM user with its policy and access key,
and a second user with a key but no policy (for "access denied"); from then on
moto checks every request's signature and policy like S3 does
(``INITIAL_NO_AUTH_ACTION_COUNT``), so a wrong key or secret gets the real
``InvalidAccessKeyId`` / ``SignatureDoesNotMatch`` answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ome_agent.sources.auth import StorageAuth
from tests.cluster.controlplane import free_port
from tests.servers.managed import stop_after
from tests.servers.process import spawn, stop_group, wait_answering

REGION = "us-east-1"
_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}],
}


@dataclass
class MotoS3:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    log: Path
    denied_key: dict[str, str] = field(default_factory=dict, repr=False)  # no rights
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def client(self, **kwargs: Any) -> Any:
        """A boto3 client with the working key (tests use it to set up buckets)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(retries={"mode": "standard", "max_attempts": 2}),
            **kwargs,
        )

    def secret(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def auth(self, secret: dict[str, str] | None = None, **params: str) -> StorageAuth:
        """The working Secret and this endpoint, as a model's spec would give them."""
        return StorageAuth(
            parameters={"endpoint": self.endpoint, "region": REGION, **params},
            secret=self.secret() if secret is None else secret,
            secret_name="s3-creds",  # noqa: S106 - a Secret's name, not a password
        )

    def new_bucket(self) -> str:
        name = f"models-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        stop_group(self._proc)


def start_moto(workdir: Path) -> MotoS3:
    log = workdir / "moto.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = spawn(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log, env=env
    )
    endpoint = f"http://127.0.0.1:{port}"
    server = MotoS3(endpoint, "", "", log, _proc=proc)
    try:
        wait_answering(proc, endpoint + "/moto-api/", "moto server", log)
        # the next five actions go unchecked: they create the only valid key
        req = urllib.request.Request(  # noqa: S310 - loopback
            endpoint + "/moto-api/reset-auth",
            data=b"5",
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would be parsed away
        )
        with urllib.request.urlopen(req, timeout=5):  # noqa: S310 - loopback
            pass
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",  # noqa: S106 - unchecked by moto here
        )
        iam.create_user(UserName="model-reader")
        iam.put_user_policy(
            UserName="model-reader", PolicyName="s3", PolicyDocument=json.dumps(_POLICY)
        )
        key = iam.create_access_key(UserName="model-reader")["AccessKey"]
        iam.create_user(UserName="nobody")
        denied = iam.create_access_key(UserName="nobody")["AccessKey"]
    except BaseException:
        server.stop()
        raise
    server.access_key_id = key["AccessKeyId"]
    server.secret_access_key = key["SecretAccessKey"]
    server.denied_key = {
        "AWS_ACCESS_KEY_ID": denied["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": denied["SecretAccessKey"],
    }
    return server


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    yield from stop_after(start_moto(tmp_path_factory.mktemp("moto")))
