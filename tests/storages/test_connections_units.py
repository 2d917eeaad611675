"""Storage connections without a server: the guard in ``open_backend`` (every open, not only
saves), what reprs and validation errors show, the redaction of findings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tether.config import Settings
from tether.errors import Invalid
from tether.security.urls import UnsafeURL
from tether.sync import fields, sts
from tether.sync.check import Finding, redact
from tether.sync.connections import StorageRecord, open_backend

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def record(type_: str, config: dict[str, Any], secrets: dict[str, Any]) -> StorageRecord:
    now = datetime.now(UTC)
    return StorageRecord(
        id=1, org_id=1, dataset_id=1, project_id=None, role="source", type=type_, title="",
        config=config, secrets=secrets, regex_filter=None, recursive=True,
        treat_every_object_as_source_file=True, use_signed_urls=True, signed_url_ttl_minutes=15,
        remove_missing=False, sync_every_minutes=None, next_sync_at=None, last_sync_job_id=None,
        created_by=None, created_at=now, updated_at=now,
    )  # fmt: skip


S3_KEYS = {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET}


@pytest.mark.parametrize(
    ("type_", "config", "field"),
    [
        ("s3", {"bucket": "b", "endpoint_url": "http://169.254.169.254"}, "endpoint_url"),
        ("s3", {"bucket": "b", "endpoint_url": "http://127.0.0.1:9000"}, "endpoint_url"),
        ("gcs", {"bucket": "b", "endpoint_url": "http://[fd00:ec2::254]/"}, "endpoint_url"),
        ("azure_blob", {"container": "c", "account_name": "a", "endpoint_url": "http://10.0.0.5"},
         "endpoint_url"),
        ("redis", {"host": "127.0.0.1", "port": 6379}, "host"),
        ("redis", {"host": "::1", "port": 6379}, "host"),
    ],
)  # fmt: skip
def test_every_open_goes_through_the_url_guard(
    tmp_path: Path, type_: str, config: dict[str, Any], field: str
) -> None:
    """A storage saved when its endpoint was public is refused once it is not (DNS changes):
    the guard runs on every open, which the sync and the resolver use too."""
    settings = Settings(data_dir=tmp_path)
    secrets = S3_KEYS if type_ == "s3" else {}
    with pytest.raises(UnsafeURL) as caught:
        open_backend(settings, record(type_, config, secrets))
    assert caught.value.details == {"field": field}
    assert "TETHER_OUTBOUND_ALLOWLIST" in caught.value.message


def test_the_allowlist_lets_an_internal_endpoint_through(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, outbound_allowlist="127.0.0.1, 10.0.0.0/8")
    for endpoint in ("http://127.0.0.1:9000", "http://10.1.2.3"):
        config = {"bucket": "b", "endpoint_url": endpoint}
        assert open_backend(settings, record("s3", config, S3_KEYS)).uri("k") == "s3://b/k"
    with pytest.raises(UnsafeURL):
        config = {"bucket": "b", "endpoint_url": "http://169.254.169.254"}
        open_backend(settings, record("s3", config, S3_KEYS))


def test_reprs_and_validation_errors_never_show_a_secret() -> None:
    r = record("s3", {"bucket": "b"}, S3_KEYS)
    assert SECRET not in repr(r) and SECRET not in str(r)
    with pytest.raises(Invalid) as caught:
        fields.parse(fields.S3Fields, {"bucket": "b", "secret_access_key": SECRET * 100})
    assert SECRET not in caught.value.message and SECRET not in str(caught.value.details)
    assert "secret_access_key" in caught.value.message
    creds = sts.Credentials("ASIA1", SECRET, "token-" + SECRET, datetime.now(UTC))
    assert SECRET not in repr(creds)


def test_findings_are_redacted() -> None:
    r = record("gcs", {"bucket": "b"}, {"service_account_json": f'{{"k": "{SECRET}"}}'})
    message = redact(r, f"the client said: {SECRET} is wrong")
    assert SECRET not in message and "***" in message
    assert Finding("x", message).to_dict()["message"] == message


@pytest.mark.parametrize(
    ("given", "expected"),
    [("tether-1-2", "tether-1-2"), ("a b/c:d", "a-b-c-d"), ("x", "tether"), ("y" * 99, "y" * 64)],
)
def test_role_session_names_are_what_sts_takes(given: str, expected: str) -> None:
    assert sts._session_name(given) == expected


def test_options_are_bounded() -> None:
    for bad in (
        {"signed_url_ttl_minutes": 0},
        {"signed_url_ttl_minutes": 7 * 24 * 60 + 1},
        {"sync_every_minutes": 0},
        {"regex_filter": "(unclosed"},
        {"title": "t" * 201},
    ):
        with pytest.raises(Invalid):
            fields.parse(fields.Options, bad)
    assert fields.parse(fields.Options, {"regex_filter": ""})["regex_filter"] is None
