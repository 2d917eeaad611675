"""Storage connections through the API (``/api/v1/storages``), on both databases, against
the real servers: moto (S3 and STS AssumeRole), Azurite, fake-gcs-server, a private
redis-server and temporary folders.

Every response body of every test here, and every log line, is checked for the secrets the
test sent (``SECRETS``): none may ever come back.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.conftest import Tenant, make_tenant
from tests.storages import servers, test_cloud
from tests.storages.conftest import start_redis, stop
from tests.storages.servers import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    Azurite,
    FakeGCS,
    MotoS3,
    free_port,
    service_account_json,
)
from tests.storages.test_cloud import Listener
from tether import accounts
from tether.db.tables import storages
from tether.security import secrets as secret_box
from tether.sync import sts

SECRETS: set[str] = set()  # every secret any test here sent
# the servers' fixtures (and the metadata-service stand-in), used here by name
moto_s3, azurite, fake_gcs = servers.moto_s3, servers.azurite, servers.fake_gcs
metadata = test_cloud.metadata


def secret(value: str) -> str:
    SECRETS.add(value)
    return value


@dataclass
class Api:
    app: Any
    client: Any
    engine: Engine
    bodies: list[str] = field(default_factory=list)

    def tenant(self, org: str | None = None, role: str = "admin") -> Tenant:
        return make_tenant(self.engine, self.client, org=org, role=role)

    @contextlib.contextmanager
    def settings(self, **changes: Any) -> Iterator[None]:
        """The server's settings changed meanwhile (what the operator would set)."""
        before = self.app.state.settings
        self.app.state.settings = before.model_copy(update=changes)
        try:
            yield
        finally:
            self.app.state.settings = before


@pytest.fixture(scope="module")
def document_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("documents")
    (root / "photos").mkdir()
    (root / "photos" / "a.jpg").write_bytes(b"jpeg-a")
    (root / "photos" / "b.jpg").write_bytes(b"jpeg-b")
    (root / "empty").mkdir()
    return root


@pytest.fixture(scope="module")
def api(settings: Any, engine: Engine, document_root: Path) -> Iterator[Api]:
    """An app of its own: loopback allowed (the test servers), local storages on."""
    from tether.api.app import create_app

    app = create_app(
        settings.model_copy(
            update={
                "outbound_allowlist": "127.0.0.1",
                "local_files_serving_enabled": True,
                "local_files_document_root": document_root,
            }
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    found = Api(app, None, engine)

    def keep(response: Any) -> None:
        response.read()
        found.bodies.append(response.text)

    with TestClient(app) as client:
        client.event_hooks["response"].append(keep)
        found.client = client
        yield found


@pytest.fixture(autouse=True)
def no_secret_leaves(api: Api, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """After each test: no secret in any response body or log line."""
    api.bodies.clear()
    caplog.set_level(logging.DEBUG)
    yield
    logs = caplog.text
    for value in SECRETS:
        for body in api.bodies:
            assert value not in body, f"a secret came back in a response: {body[:300]}"
        assert value not in logs, "a secret was logged"
    assert api.bodies, "the test made no request"


@pytest.fixture
def admin(api: Api) -> Tenant:
    return api.tenant()


@pytest.fixture
def member(api: Api, admin: Tenant) -> Tenant:
    with api.engine.connect() as conn:
        org = accounts.get_org(conn, admin.org_id)["name"]
    return api.tenant(org=org, role="member")


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def refused(response: Any, code: str, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


def storage_ids(t: Tenant) -> list[int]:
    r = t.get("/storages")
    assert r.status_code == 200, r.text
    return [s["id"] for s in r.json()["items"]]


# --- S3 on moto -------------------------------------------------------------------------------


def s3_body(moto: MotoS3, bucket: str, dataset_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "s3",
        "dataset_id": dataset_id,
        "bucket": bucket,
        "endpoint_url": moto.url,
        "access_key_id": secret(moto.access_key_id),
        "secret_access_key": secret(moto.secret_access_key),
        **extra,
    }


def put(moto: MotoS3, bucket: str, *keys: str) -> None:
    client = moto.client()
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=f"content of {key}".encode())


def iam_user(moto: MotoS3, actions: list[str], key_id_secret: bool = True) -> tuple[str, str]:
    """A moto IAM user allowed only ``actions`` (nothing when empty)."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=moto.url,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
        region_name="us-east-1",
    )
    name = f"u-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    if actions:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    key_id = secret(key["AccessKeyId"]) if key_id_secret else key["AccessKeyId"]
    return key_id, secret(key["SecretAccessKey"])


def test_s3_create_show_list_update_delete(api: Api, admin: Tenant, moto_s3: MotoS3) -> None:
    bucket = moto_s3.new_bucket()
    put(moto_s3, bucket, "img/1.jpg", "img/2.jpg")
    ds = admin.dataset()
    body = s3_body(
        moto_s3, bucket, ds["id"], prefix="img/", title="photos", regex_filter=r".*\.jpg"
    )
    made = created(admin.post("/storages", json=body))
    assert made["type"] == "s3" and made["role"] == "source" and made["dataset_id"] == ds["id"]
    assert made["config"]["bucket"] == bucket and made["config"]["prefix"] == "img/"
    assert made["secret_fields_set"] == ["access_key_id", "secret_access_key"]
    assert "access_key_id" not in made["config"] and "secret_access_key" not in made["config"]
    assert made["check"]["ok"] is True and made["check"]["sample_key"] == "img/1.jpg"
    assert made["check"]["warnings"] == []
    assert made["title"] == "photos" and made["regex_filter"] == r".*\.jpg"

    shown = admin.get(f"/storages/{made['id']}").json()
    assert shown["config"] == made["config"] and shown["check"] is None
    listed = admin.get("/storages", params={"dataset_id": ds["id"]}).json()["items"]
    assert [s["id"] for s in listed] == [made["id"]]
    other_ds = admin.dataset()
    assert admin.get("/storages", params={"dataset_id": other_ds["id"]}).json()["items"] == []

    checked = admin.post(f"/storages/{made['id']}/validate").json()
    assert checked == {"ok": True, "errors": [], "warnings": [], "sample_key": "img/1.jpg"}

    # options only: no secret given, the stored ones kept (the check still reads)
    r = admin.patch(f"/storages/{made['id']}", json={"title": "renamed", "recursive": False})
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "renamed" and r.json()["recursive"] is False
    assert r.json()["secret_fields_set"] == ["access_key_id", "secret_access_key"]
    assert admin.post(f"/storages/{made['id']}/validate").json()["ok"] is True

    r = admin.delete(f"/storages/{made['id']}")
    assert r.status_code == 204, r.text
    assert admin.get(f"/storages/{made['id']}").status_code == 404
    assert made["id"] not in storage_ids(admin)


def test_prefix_with_no_object_is_a_warning_and_saves(
    api: Api, admin: Tenant, moto_s3: MotoS3
) -> None:
    bucket = moto_s3.new_bucket()
    put(moto_s3, bucket, "img/1.jpg", "img2/x.jpg")
    ds = admin.dataset()
    made = created(admin.post("/storages", json=s3_body(moto_s3, bucket, ds["id"], prefix="im/")))
    assert made["check"]["ok"] is True
    assert [w["code"] for w in made["check"]["warnings"]] == ["prefix_empty"]
    assert "'im/'" in made["check"]["warnings"][0]["message"]
    # a plain string prefix: "img" takes img2/x.jpg too, but the first key is img/1.jpg
    made = created(admin.post("/storages", json=s3_body(moto_s3, bucket, ds["id"], prefix="img2")))
    assert made["check"]["sample_key"] == "img2/x.jpg" and made["check"]["warnings"] == []
    made = created(
        admin.post("/storages", json=s3_body(moto_s3, bucket, ds["id"], regex_filter=r"nope"))
    )
    assert [w["code"] for w in made["check"]["warnings"]] == ["regex_matches_none_seen"]
    # a folder marker and an empty object: the check reads what can be read
    marked = moto_s3.new_bucket()
    client = moto_s3.client()
    client.put_object(Bucket=marked, Key="dir/", Body=b"")
    client.put_object(Bucket=marked, Key="dir/x.txt", Body=b"x")
    made = created(admin.post("/storages", json=s3_body(moto_s3, marked, ds["id"])))
    assert made["check"]["sample_key"] == "dir/x.txt" and made["check"]["warnings"] == []
    client.put_object(Bucket=marked, Key="a-empty.txt", Body=b"")
    made = created(admin.post("/storages", json=s3_body(moto_s3, marked, ds["id"])))
    assert made["check"]["sample_key"] == "a-empty.txt"


def test_secrets_are_encrypted_at_rest(
    api: Api, admin: Tenant, moto_s3: MotoS3, settings: Any
) -> None:
    bucket = moto_s3.new_bucket()
    made = created(admin.post("/storages", json=s3_body(moto_s3, bucket, admin.dataset()["id"])))
    with api.engine.connect() as conn:
        row = conn.execute(select(storages).where(storages.c.id == made["id"])).one()
    assert moto_s3.secret_access_key not in row.config
    assert moto_s3.access_key_id not in row.config
    assert moto_s3.secret_access_key not in row.secrets
    opened = json.loads(secret_box.decrypt(settings.fernet_key(), row.secrets))
    assert opened == {
        "access_key_id": moto_s3.access_key_id,
        "secret_access_key": moto_s3.secret_access_key,
    }
    from tether.sync.connections import get_record

    with api.engine.connect() as conn:
        record = get_record(conn, settings, admin.org_id, made["id"])
    assert moto_s3.secret_access_key not in repr(record)


def test_bad_credentials_are_named_and_nothing_is_saved(
    api: Api, admin: Tenant, moto_s3: MotoS3
) -> None:
    bucket = moto_s3.new_bucket()
    put(moto_s3, bucket, "a.txt")
    ds = admin.dataset()
    wrong = s3_body(moto_s3, bucket, ds["id"], secret_access_key=secret("x" * 40))
    unknown = s3_body(moto_s3, bucket, ds["id"], access_key_id=secret("AKIA" + "Z" * 16))
    with moto_s3.auth_enforced():
        for body in (wrong, unknown):
            error = refused(admin.post("/storages", json=body), "bad_credentials")
            assert "access_key_id" in error["message"] and "refused" in error["message"]
            assert error["details"]["field"] == "access_key_id"
    assert storage_ids(admin) == []


def test_missing_permissions_are_named(api: Api, admin: Tenant, moto_s3: MotoS3) -> None:
    bucket = moto_s3.new_bucket()
    put(moto_s3, bucket, "a.txt")
    ds = admin.dataset()
    nothing = iam_user(moto_s3, [])
    list_only = iam_user(moto_s3, ["s3:ListBucket"])
    with moto_s3.auth_enforced():
        body = s3_body(moto_s3, bucket, ds["id"])
        body["access_key_id"], body["secret_access_key"] = nothing
        error = refused(admin.post("/storages", json=body), "permission_denied")
        assert "s3:ListBucket" in error["message"]
        body["access_key_id"], body["secret_access_key"] = list_only
        error = refused(admin.post("/storages", json=body), "permission_denied")
        assert "s3:GetObject" in error["message"] and "a.txt" in error["message"]
    assert storage_ids(admin) == []


def test_missing_bucket_and_unreachable_endpoint(api: Api, admin: Tenant, moto_s3: MotoS3) -> None:
    ds = admin.dataset()
    error = refused(
        admin.post("/storages", json=s3_body(moto_s3, "no-such-bucket-x", ds["id"])),
        "bucket_not_found",
    )
    assert "no-such-bucket-x" in error["message"] and error["details"]["field"] == "bucket"
    dead = f"http://127.0.0.1:{free_port()}"
    error = refused(
        admin.post("/storages", json=s3_body(moto_s3, "b", ds["id"], endpoint_url=dead)),
        "storage_unreachable",
    )
    assert dead in error["message"] and "endpoint_url" in error["message"]
    assert storage_ids(admin) == []


@pytest.mark.parametrize(
    "endpoint",
    ["http://169.254.169.254", "http://10.1.2.3:9000", "http://[::1]:9000", "file:///etc/passwd"],
)
def test_the_url_guard_refuses_internal_endpoints(
    api: Api, admin: Tenant, moto_s3: MotoS3, endpoint: str
) -> None:
    ds = admin.dataset()
    body = s3_body(moto_s3, "b", ds["id"], endpoint_url=endpoint)
    error = refused(admin.post("/storages", json=body), "unsafe_url")
    assert error["message"].startswith("the storage check failed: endpoint_url")
    assert error["details"]["field"] == "endpoint_url"
    # loopback itself is refused unless the operator lists it
    with api.settings(outbound_allowlist=""):
        body = s3_body(moto_s3, moto_s3.new_bucket(), ds["id"])
        error = refused(admin.post("/storages", json=body), "unsafe_url")
        assert "TETHER_OUTBOUND_ALLOWLIST" in error["message"]
    assert storage_ids(admin) == []


CLOUD_TYPES = ["s3", "gcs", "azure_blob"]


def cloud_body(request: pytest.FixtureRequest, type_: str, dataset_id: int) -> dict[str, Any]:
    if type_ == "s3":
        moto = request.getfixturevalue("moto_s3")
        return s3_body(moto, moto.new_bucket(), dataset_id)
    if type_ == "gcs":
        gcs: FakeGCS = request.getfixturevalue("fake_gcs")
        return gcs_body(gcs, gcs.new_bucket(), dataset_id)
    az: Azurite = request.getfixturevalue("azurite")
    return azure_body(az, az.new_container(), dataset_id)


@pytest.mark.parametrize("type_", CLOUD_TYPES)
def test_no_credentials_is_refused_and_contacts_no_metadata_address(
    api: Api,
    admin: Tenant,
    request: pytest.FixtureRequest,
    type_: str,
    metadata: Listener,
) -> None:
    body = cloud_body(request, type_, admin.dataset()["id"])
    for name in ("access_key_id", "secret_access_key", "service_account_json", "account_key"):
        body.pop(name, None)
    error = refused(admin.post("/storages", json=body), "invalid_storage_config")
    assert "does not lend its own cloud identity" in error["message"]
    assert metadata.hits == 0
    assert storage_ids(admin) == []
    # The control: with the operator's opt-in the same request does knock there.
    with api.settings(allow_ambient_credentials=True):
        admin.post("/storages", json=body)
    assert metadata.hits > 0


# --- S3 through an IAM role (STS AssumeRole on moto) ----------------------------------------


def make_role(moto: MotoS3, external_id: str, actions: list[str]) -> str:
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=moto.url,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
        region_name="us-east-1",
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }
    name = f"r-{uuid.uuid4().hex[:8]}"
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    if actions:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    return arn


_STS_IDENTITY: list[tuple[str, str]] = []


def sts_settings(moto: MotoS3) -> dict[str, Any]:
    """tether's own AWS identity (an IAM user of its own, allowed sts:AssumeRole only). Its
    key id is not a tenant's secret: botocore names it in its DEBUG lines, as AWS SDKs do."""
    from pydantic import SecretStr

    if not _STS_IDENTITY:
        _STS_IDENTITY.append(iam_user(moto, ["sts:AssumeRole"], key_id_secret=False))
    key_id, key_secret = _STS_IDENTITY[0]
    return {
        "sts_endpoint_url": moto.url,
        "sts_access_key_id": key_id,
        "sts_secret_access_key": SecretStr(key_secret),
    }


def role_body(moto: MotoS3, bucket: str, dataset_id: int, role_arn: str) -> dict[str, Any]:
    return {
        "type": "s3",
        "dataset_id": dataset_id,
        "bucket": bucket,
        "endpoint_url": moto.url,
        "role_arn": role_arn,
    }


def assumed_external_ids(moto: MotoS3, role_arn: str) -> list[str]:
    """What moto recorded of the AssumeRole calls for ``role_arn``."""
    with urllib.request.urlopen(f"{moto.url}/moto-api/data.json", timeout=10) as answer:
        data = json.load(answer)
    roles = data.get("sts", {}).get("AssumedRole", [])
    return [r.get("external_id") for r in roles if r.get("role_arn") == role_arn]


def test_iam_role_is_assumed_with_the_org_external_id(
    api: Api, admin: Tenant, moto_s3: MotoS3
) -> None:
    sts.clear_cache()
    org = admin.get("/organization").json()
    assert org["external_id"].startswith("tether-")
    bucket = moto_s3.new_bucket()
    put(moto_s3, bucket, "data/1.json")
    reader = make_role(moto_s3, org["external_id"], ["s3:*"])
    powerless = make_role(moto_s3, org["external_id"], [])
    ds = admin.dataset()
    # moto refuses AssumeRole of a role whose trust policy it evaluates while it enforces
    # IAM: assume both ahead (cached), then let S3 judge the roles' own permissions
    ops = api.app.state.settings.model_copy(update=sts_settings(moto_s3))
    for arn in (reader, powerless):
        sts.RoleCredentials(ops, arn, org["external_id"], "warm-up").current()
    with api.settings(**sts_settings(moto_s3)), moto_s3.auth_enforced():
        made = created(admin.post("/storages", json=role_body(moto_s3, bucket, ds["id"], reader)))
        assert made["config"]["role_arn"] == reader
        assert made["config"]["external_id"] == org["external_id"]
        assert made["secret_fields_set"] == []
        assert made["check"]["sample_key"] == "data/1.json"
        assert admin.post(f"/storages/{made['id']}/validate").json()["ok"] is True
        # the role's own permissions are what count: a role without any cannot list
        error = refused(
            admin.post("/storages", json=role_body(moto_s3, bucket, ds["id"], powerless)),
            "permission_denied",
        )
        assert "s3:ListBucket" in error["message"]
    recorded = assumed_external_ids(moto_s3, reader)
    assert recorded and set(recorded) == {org["external_id"]}


def test_iam_role_needs_the_operators_sts_identity(
    api: Api, admin: Tenant, moto_s3: MotoS3
) -> None:
    sts.clear_cache()
    ds = admin.dataset()
    arn = "arn:aws:iam::123456789012:role/anything"
    error = refused(
        admin.post("/storages", json=role_body(moto_s3, moto_s3.new_bucket(), ds["id"], arn)),
        "invalid_storage_config",
    )
    assert "TETHER_STS_ACCESS_KEY_ID" in error["message"]
    body = role_body(moto_s3, "b", ds["id"], arn)
    body["access_key_id"] = secret(moto_s3.access_key_id)
    body["secret_access_key"] = secret(moto_s3.secret_access_key)
    error = refused(admin.post("/storages", json=body), "invalid")
    assert "not both" in error["message"]
    body = role_body(moto_s3, "b", ds["id"], "arn:aws:s3:::not-a-role")
    refused(admin.post("/storages", json=body), "invalid")
    # a role STS refuses (here: tether's identity may not sts:AssumeRole): named, with the
    # external ID the role's trust policy must hold
    from pydantic import SecretStr

    external_id = admin.get("/organization").json()["external_id"]
    key_id, key_secret = iam_user(moto_s3, [], key_id_secret=False)
    powerless = {**sts_settings(moto_s3), "sts_access_key_id": key_id}
    powerless["sts_secret_access_key"] = SecretStr(key_secret)
    with api.settings(**powerless), moto_s3.auth_enforced():
        error = refused(
            admin.post("/storages", json=role_body(moto_s3, "b", ds["id"], arn)),
            "role_not_assumable",
        )
    assert arn in error["message"] and external_id in error["message"]
    assert error["details"]["field"] == "role_arn"
    assert storage_ids(admin) == []


def test_role_credentials_are_cached_and_renewed_before_they_expire(
    api: Api, moto_s3: MotoS3, settings: Any
) -> None:
    sts.clear_cache()
    ops = settings.model_copy(update=sts_settings(moto_s3))
    now = [datetime.now(UTC)]
    arn = "arn:aws:iam::123456789012:role/cache-test"
    provider = sts.RoleCredentials(ops, arn, "tether-x", "tether-1-2", clock=lambda: now[0])
    first = provider()
    assert first["token"] and first["expires_at"] > now[0] + timedelta(minutes=50)
    assert provider()["access_key_id"] == first["access_key_id"]  # cached: no new call
    again = sts.RoleCredentials(ops, arn, "tether-x", "other", clock=lambda: now[0])
    assert again()["access_key_id"] == first["access_key_id"]  # shared by stores of the role
    other_org = sts.RoleCredentials(ops, arn, "tether-y", "s", clock=lambda: now[0])
    assert other_org()["access_key_id"] != first["access_key_id"]
    now[0] = first["expires_at"] - timedelta(minutes=11)
    assert provider()["access_key_id"] == first["access_key_id"]
    now[0] = first["expires_at"] - timedelta(minutes=9)  # inside the renewal margin
    renewed = provider()
    assert renewed["access_key_id"] != first["access_key_id"]
    assert moto_s3.secret_access_key not in repr(provider)
    api.client.get("/api/v1/health")  # (the leak check wants a request)
    SECRETS.add(first["secret_access_key"])


# --- Azure Blob on Azurite, GCS on fake-gcs-server ------------------------------------------


def azure_body(az: Azurite, container: str, dataset_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "azure_blob",
        "dataset_id": dataset_id,
        "container": container,
        "account_name": AZURITE_ACCOUNT,
        "account_key": secret(AZURITE_KEY),
        "endpoint_url": az.url,
        **extra,
    }


def test_azure_blob(api: Api, admin: Tenant, azurite: Azurite) -> None:
    from tether.storages.registry import open_storage

    container = azurite.new_container()
    open_storage(
        "azure_blob",
        container=container,
        account_name=AZURITE_ACCOUNT,
        account_key=AZURITE_KEY,
        endpoint_url=azurite.url,
    ).write("docs/x.txt", b"hello")
    ds = admin.dataset()
    made = created(admin.post("/storages", json=azure_body(azurite, container, ds["id"])))
    assert made["config"]["container"] == container and made["secret_fields_set"] == ["account_key"]
    assert made["check"]["sample_key"] == "docs/x.txt"
    wrong = secret(base64.b64encode(os.urandom(64)).decode())
    error = refused(
        admin.post("/storages", json=azure_body(azurite, container, ds["id"], account_key=wrong)),
        "bad_credentials",
    )
    assert "account_key" in error["message"]
    error = refused(
        admin.post("/storages", json=azure_body(azurite, "nosuchcontainer", ds["id"])),
        "container_not_found",
    )
    assert "nosuchcontainer" in error["message"]
    # a wrong key given in a change is refused, and the stored one stays
    r = admin.patch(f"/storages/{made['id']}", json={"account_key": wrong})
    refused(r, "bad_credentials")
    assert admin.post(f"/storages/{made['id']}/validate").json()["ok"] is True
    r = admin.patch(f"/storages/{made['id']}", json={"prefix": "nothing-here/"})
    assert r.status_code == 200, r.text
    assert [w["code"] for w in r.json()["check"]["warnings"]] == ["prefix_empty"]
    assert admin.delete(f"/storages/{made['id']}").status_code == 204


def gcs_body(gcs: FakeGCS, bucket: str, dataset_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "gcs",
        "dataset_id": dataset_id,
        "bucket": bucket,
        "endpoint_url": gcs.url,
        "service_account_json": secret(service_account_json()),
        **extra,
    }


def test_gcs(api: Api, admin: Tenant, fake_gcs: FakeGCS) -> None:
    bucket = fake_gcs.new_bucket()
    fake_gcs.put(bucket, "v/clip.mp4", b"0123")
    ds = admin.dataset()
    body = gcs_body(fake_gcs, bucket, ds["id"])
    SECRETS.add(json.loads(body["service_account_json"])["private_key"].splitlines()[1])
    made = created(admin.post("/storages", json=body))
    assert made["secret_fields_set"] == ["service_account_json"]
    assert made["check"]["sample_key"] == "v/clip.mp4"
    error = refused(
        admin.post("/storages", json=gcs_body(fake_gcs, "no-such-gcs-bucket", ds["id"])),
        "bucket_not_found",
    )
    assert "no-such-gcs-bucket" in error["message"]
    bad = gcs_body(fake_gcs, bucket, ds["id"], service_account_json=secret('{"type": "x"}'))
    error = refused(admin.post("/storages", json=bad), "invalid_storage_config")
    assert "service_account_json" in error["message"]
    assert admin.delete(f"/storages/{made['id']}").status_code == 204


# --- Redis (a private server with a password) --------------------------------------------------

REDIS_PASSWORD = "redis-pw-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = start_redis(tmp_path_factory.mktemp("redis"), "--requirepass", REDIS_PASSWORD)
    yield port
    stop(proc)


def test_redis(api: Api, admin: Tenant, locked_redis: int) -> None:
    import redis

    raw = redis.Redis(port=locked_redis, password=REDIS_PASSWORD, db=2)
    raw.set("tasks:1", json.dumps({"data": {"text": "hi"}}))
    raw.close()
    ds = admin.dataset()
    body = {
        "type": "redis",
        "dataset_id": ds["id"],
        "host": "127.0.0.1",
        "port": locked_redis,
        "db": 2,
        "path": "tasks:",
        "password": secret(REDIS_PASSWORD),
        "treat_every_object_as_source_file": False,
    }
    made = created(admin.post("/storages", json=body))
    assert made["config"] == {"host": "127.0.0.1", "port": locked_redis, "db": 2, "path": "tasks:"}
    assert made["secret_fields_set"] == ["password"]
    assert made["check"]["sample_key"] == "tasks:1"
    error = refused(
        admin.post("/storages", json={**body, "password": secret("wrong-pw-123")}),
        "bad_credentials",
    )
    assert "password" in error["message"]
    error = refused(admin.post("/storages", json={**body, "host": "10.9.8.7"}), "unsafe_url")
    assert error["details"]["field"] == "host"
    error = refused(
        admin.post("/storages", json={**body, "port": free_port()}), "storage_unreachable"
    )
    assert "redis at 127.0.0.1" in error["message"]
    # removing the password (null) is a change the check refuses: nothing saved
    refused(admin.patch(f"/storages/{made['id']}", json={"password": None}), "bad_credentials")
    assert admin.get(f"/storages/{made['id']}").json()["secret_fields_set"] == ["password"]
    assert storage_ids(admin) == [made["id"]]


# --- local folders ---------------------------------------------------------------------------


def test_local_folders(api: Api, admin: Tenant, document_root: Path) -> None:
    ds = admin.dataset()
    body = {"type": "local", "dataset_id": ds["id"], "path": str(document_root / "photos")}
    made = created(admin.post("/storages", json=body))
    assert made["config"] == {"path": str(document_root / "photos")}
    assert made["check"]["sample_key"] == "a.jpg" and made["secret_fields_set"] == []
    empty = created(admin.post("/storages", json={**body, "path": str(document_root / "empty")}))
    assert [w["code"] for w in empty["check"]["warnings"]] == ["prefix_empty"]
    for path in (
        str(document_root / "photos" / ".." / ".." / "etc"),
        str(document_root) + "/../" + document_root.name + "-elsewhere",
        "/etc",
        "photos",
    ):
        error = refused(
            admin.post("/storages", json={**body, "path": path}), "invalid_storage_config"
        )
        assert "path" in error["message"], error
    (document_root.parent / "outside").mkdir(exist_ok=True)
    if not (document_root / "link-out").is_symlink():
        (document_root / "link-out").symlink_to(document_root.parent / "outside")
    error = refused(
        admin.post("/storages", json={**body, "path": str(document_root / "link-out")}),
        "invalid_storage_config",
    )
    error = refused(
        admin.post("/storages", json={**body, "path": str(document_root / "no-such-folder")}),
        "folder_not_found",
    )
    assert error["details"]["field"] == "path"
    with api.settings(local_files_serving_enabled=False):
        error = refused(admin.post("/storages", json=body), "invalid_storage_config")
        assert "TETHER_LOCAL_FILES_SERVING_ENABLED" in error["message"]
        checked = admin.post(f"/storages/{made['id']}/validate").json()
        assert checked["ok"] is False
        assert checked["errors"][0]["code"] == "invalid_storage_config"
    assert sorted(storage_ids(admin)) == sorted([made["id"], empty["id"]])


# --- changes, roles, organizations, idempotency -----------------------------------------------


def test_changes_are_partial_and_checked(
    api: Api, admin: Tenant, document_root: Path, moto_s3: MotoS3
) -> None:
    ds = admin.dataset()
    local = {"type": "local", "dataset_id": ds["id"], "path": str(document_root / "photos")}
    made = created(admin.post("/storages", json=local))
    sid = made["id"]
    refused(admin.patch(f"/storages/{sid}", json={"type": "s3"}), "type_change")
    error = refused(admin.patch(f"/storages/{sid}", json={"bucket": "x"}), "invalid")
    assert "bucket" in error["message"] and "not a field of local" in error["message"]
    error = refused(admin.patch(f"/storages/{sid}", json={"regex_filter": "(["}), "invalid")
    assert "regex_filter" in error["message"]
    refused(admin.patch(f"/storages/{sid}", json={"signed_url_ttl_minutes": 0}), "invalid")
    refused(admin.patch(f"/storages/{sid}", json={"signed_url_ttl_minutes": 10081}), "invalid")
    refused(admin.patch(f"/storages/{sid}", json={"path": "/etc"}), "invalid_storage_config")
    assert admin.get(f"/storages/{sid}").json()["config"]["path"] == local["path"]
    r = admin.patch(f"/storages/{sid}", json={"sync_every_minutes": 30, "regex_filter": "a"})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["sync_every_minutes"] == 30 and changed["next_sync_at"] is not None
    assert changed["regex_filter"] == "a" and changed["check"] is None  # options: no remote call
    r = admin.patch(f"/storages/{sid}", json={"sync_every_minutes": None, "regex_filter": None})
    assert r.json()["sync_every_minutes"] is None and r.json()["next_sync_at"] is None
    assert r.json()["regex_filter"] is None
    # S3: a wrong secret given is refused and the stored one stays; a change that leaves
    # the secrets out keeps them (and is checked with them)
    bucket = moto_s3.new_bucket()
    s3 = created(admin.post("/storages", json=s3_body(moto_s3, bucket, ds["id"])))
    with moto_s3.auth_enforced():
        wrong = {"secret_access_key": secret("y" * 40)}
        refused(admin.patch(f"/storages/{s3['id']}", json=wrong), "bad_credentials")
        r = admin.patch(f"/storages/{s3['id']}", json={"region": "eu-west-1"})
        assert r.status_code == 200, r.text
        assert r.json()["check"]["ok"] is True and r.json()["config"]["region"] == "eu-west-1"
        assert r.json()["secret_fields_set"] == ["access_key_id", "secret_access_key"]
    refused(
        admin.patch(f"/storages/{s3['id']}", json={"access_key_id": None}),
        "invalid_storage_config",
    )


def test_unknown_type_and_fields_are_refused(api: Api, admin: Tenant) -> None:
    ds = admin.dataset()
    refused(admin.post("/storages", json={"type": "ftp", "dataset_id": ds["id"]}), "invalid")
    r = admin.post(
        "/storages", json={"type": "local", "dataset_id": ds["id"], "path": "/x", "bucket": "b"}
    )
    refused(r, "invalid")
    refused(admin.post("/storages", json={"type": "local", "path": "/x"}), "invalid")
    assert storage_ids(admin) == []


def test_members_read_and_check_but_do_not_change(
    api: Api, admin: Tenant, member: Tenant, document_root: Path
) -> None:
    ds = admin.dataset()
    body = {"type": "local", "dataset_id": ds["id"], "path": str(document_root / "photos")}
    refused(member.post("/storages", json=body), "forbidden", 403)
    assert storage_ids(admin) == []
    made = created(admin.post("/storages", json=body))
    assert storage_ids(member) == [made["id"]]
    assert member.get(f"/storages/{made['id']}").status_code == 200
    assert member.post(f"/storages/{made['id']}/validate").json()["ok"] is True
    refused(member.patch(f"/storages/{made['id']}", json={"title": "x"}), "forbidden", 403)
    refused(member.delete(f"/storages/{made['id']}"), "forbidden", 403)
    assert admin.get(f"/storages/{made['id']}").json()["title"] == ""


def test_another_organizations_storage_is_not_found(
    api: Api, admin: Tenant, document_root: Path
) -> None:
    stranger = api.tenant()
    ds = admin.dataset()
    body = {"type": "local", "dataset_id": ds["id"], "path": str(document_root / "photos")}
    made = created(admin.post("/storages", json=body))
    sid = made["id"]
    for r in (
        stranger.get(f"/storages/{sid}"),
        stranger.patch(f"/storages/{sid}", json={"title": "x"}),
        stranger.delete(f"/storages/{sid}"),
        stranger.post(f"/storages/{sid}/validate"),
        stranger.post("/storages", json=body),  # into the other organization's dataset
        stranger.get("/storages", params={"dataset_id": ds["id"]}),
    ):
        refused(r, "not_found", 404)
    assert storage_ids(stranger) == []
    assert admin.get(f"/storages/{sid}").json()["title"] == ""
    refused(admin.get("/storages/99999999999"), "not_found", 404)


def test_create_with_an_idempotency_key_acts_once(
    api: Api, admin: Tenant, document_root: Path
) -> None:
    ds = admin.dataset()
    body = {"type": "local", "dataset_id": ds["id"], "path": str(document_root / "photos")}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = created(admin.post("/storages", json=body, headers=headers))
    again = created(admin.post("/storages", json=body, headers=headers))
    assert again["id"] == first["id"]
    with api.settings(local_files_serving_enabled=False):  # a check now would fail
        again = created(admin.post("/storages", json=body, headers=headers))
    assert again == first  # answered from the key, not checked and made again
    other = {**body, "title": "another"}
    refused(admin.post("/storages", json=other, headers=headers), "idempotency_key_reused")
    assert storage_ids(admin) == [first["id"]]


def test_every_secret_field_is_named_in_the_answer_model(api: Api) -> None:
    from tether.schemas import SecretField
    from tether.sync.connections import SECRET_FIELDS
    from tether.sync.fields import FIELDS

    secret_names = {name for names in SECRET_FIELDS.values() for name in names}
    assert {f.value for f in SecretField} == secret_names
    for type_, model in FIELDS.items():  # each type's secrets are fields of its config
        assert set(SECRET_FIELDS[type_]) <= set(model.model_fields), type_
    api.client.get("/api/v1/health")


def test_the_check_runs_outside_the_write_lock(
    api: Api, admin: Tenant, moto_s3: MotoS3, settings: Any, backend: str
) -> None:
    """The check waits on the network; SQLite has one write lock for the whole database,
    so the check must not hold it (even with an Idempotency-Key, which reserves a row)."""
    import socket
    import sqlite3
    import threading
    import time

    from sqlalchemy.engine import make_url

    slow = socket.create_server(("127.0.0.1", 0))
    port = slow.getsockname()[1]

    def answer_late() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = slow.accept()
                time.sleep(2)
                conn.close()

    threading.Thread(target=answer_late, daemon=True).start()
    wrote: list[bool] = []

    def write_meanwhile() -> None:
        time.sleep(1)
        if backend != "sqlite":  # PostgreSQL locks rows, not the database
            wrote.append(True)
            return
        db = sqlite3.connect(str(make_url(settings.sqlalchemy_url).database), timeout=0.3)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.rollback()
            wrote.append(True)
        except sqlite3.OperationalError:
            wrote.append(False)
        finally:
            db.close()

    writer = threading.Thread(target=write_meanwhile)
    writer.start()
    body = s3_body(moto_s3, "b", admin.dataset()["id"], endpoint_url=f"http://127.0.0.1:{port}")
    r = admin.post("/storages", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    writer.join()
    slow.close()
    assert r.status_code == 422, r.text
    assert wrote == [True]


# --- the user's journey: connect, sync, change, sync again ------------------------------------


def synced(t: Tenant, storage_id: int) -> dict[str, Any]:
    started = t.post(f"/storages/{storage_id}/sync")
    assert started.status_code in (200, 202), started.text
    job: dict[str, Any] = t.get(f"/jobs/{started.json()['id']}").json()
    assert job["status"] == "completed", job
    return job


def test_a_storage_made_through_the_api_syncs_and_resyncs_exactly(
    api: Api, admin: Tenant, moto_s3: MotoS3
) -> None:
    bucket = moto_s3.new_bucket()
    put(moto_s3, bucket, "img/a b.jpg", "img/c#1.png", "img/deep/d.jpg", "other/x.jpg")
    ds = admin.dataset()
    made = created(admin.post("/storages", json=s3_body(moto_s3, bucket, ds["id"], prefix="img/")))
    first = synced(admin, made["id"])
    assert (first["counts"]["listed"], first["counts"]["created"]) == (3, 3)
    rows = admin.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    assert sorted(r["row_data"] for r in rows) == [
        f"s3://{bucket}/img/a b.jpg",
        f"s3://{bucket}/img/c#1.png",
        f"s3://{bucket}/img/deep/d.jpg",
    ]
    assert {r["media_type"] for r in rows} == {"IMAGE"}
    again = synced(admin, made["id"])
    assert (again["counts"]["created"], again["counts"]["unchanged"]) == (0, 3)
    put(moto_s3, bucket, "img/new.jpg")
    moto_s3.client().delete_object(Bucket=bucket, Key="img/deep/d.jpg")
    third = synced(admin, made["id"])
    assert (third["counts"]["created"], third["counts"]["missing"]) == (1, 1)
    # the storage's settings change what the next sync does: removal of missing objects
    assert admin.patch(f"/storages/{made['id']}", json={"remove_missing": True}).is_success
    fourth = synced(admin, made["id"])
    assert fourth["counts"]["removed"] == 1
    left = admin.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    assert len(left) == 3
