"""The check of a storage connection: can tether list it and read from it (a source), or
write to it (a target)?

For a source it opens the backend, lists one page under the prefix and, when there is an
object, stats it and reads its first byte. For a target it writes a small probe object under
the prefix (``.tether-check-<random>``) and deletes it again: a target needs only write
access, and delete access when ``can_delete_objects`` is on (without it, a refused delete
leaves the probe behind with a warning). A failure comes back as an error naming what to fix -- bad
credentials, no such bucket, the List or the Get permission missing, an endpoint that cannot
be reached, a config that cannot work; a source prefix with no object under it is a warning
(the storage may be filled later). Creating or changing a storage saves it only when the
check has no error.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from tether.config import Settings
from tether.errors import Invalid, TetherError
from tether.storages.base import (
    AccessDenied,
    InvalidConfig,
    ObjectNotFound,
    StorageError,
    Unreachable,
)
from tether.sync.connections import StorageRecord, open_backend

# What a wrong key (rather than a missing permission) looks like in each store's answer.
_BAD_KEY = re.compile(
    r"InvalidAccessKeyId|SignatureDoesNotMatch|AuthenticationFailed|InvalidClientTokenId"
    r"|invalid_grant|401 Unauthorized|WRONGPASS|invalid password|NOAUTH|Unauthenticated"
    r"|refused the password|failed to authenticate",
    re.IGNORECASE,
)
WHERE = {"s3": "bucket", "gcs": "bucket", "azure_blob": "container"}
LIST_PERMISSION = {
    "s3": "s3:ListBucket",
    "gcs": "storage.objects.list",
    "azure_blob": "List blobs (Storage Blob Data Reader)",
    "redis": "the SCAN command",
    "local": "read and execute on the folder",
}
GET_PERMISSION = {
    "s3": "s3:GetObject",
    "gcs": "storage.objects.get",
    "azure_blob": "Read blob (Storage Blob Data Reader)",
    "redis": "the GET command",
    "local": "read on the files",
}
WRITE_PERMISSION = {
    "s3": "s3:PutObject",
    "gcs": "storage.objects.create",
    "azure_blob": "Write blob (Storage Blob Data Contributor)",
    "redis": "the SET command",
    "local": "write and execute on the folder",
}
DELETE_PERMISSION = {
    "s3": "s3:DeleteObject",
    "gcs": "storage.objects.delete",
    "azure_blob": "Delete blob (Storage Blob Data Contributor)",
    "redis": "the DEL command",
    "local": "write on the folder",
}
PERMISSIONS = {
    "list": (LIST_PERMISSION, "list objects"),
    "open": (LIST_PERMISSION, "list objects"),
    "get": (GET_PERMISSION, "read {key!r}"),
    "write": (WRITE_PERMISSION, "write {key!r}"),
    "delete": (DELETE_PERMISSION, "delete {key!r}"),
}
PROBE_BODY = b'{"tether": "storage check"}'
CREDENTIALS = {
    "s3": "access_key_id / secret_access_key (or role_arn)",
    "gcs": "service_account_json",
    "azure_blob": "account_name / account_key",
    "redis": "password",
    "local": "",
}


@dataclass
class Finding:
    code: str
    message: str
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "field": self.field}


@dataclass
class CheckResult:
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    sample_key: str | None = None  # an object the check found and read

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "sample_key": self.sample_key,
        }

    def raise_for_errors(self) -> None:
        """422 with the first error's code and message; every finding in the details."""
        if self.errors:
            first = self.errors[0]
            raise Invalid(
                f"the storage check failed: {first.message}",
                details={"field": first.field, **self.to_dict()},
                code=first.code,
            )


def check(settings: Settings, record: StorageRecord) -> CheckResult:
    result = _check(settings, record)
    for finding in result.errors + result.warnings:
        finding.message = redact(record, finding.message)
    return result


def redact(record: StorageRecord, text: str) -> str:
    """``text`` with every secret of the storage blotted out (a client library's message
    could quote one): each value, each of its lines, and each string inside a JSON one (a
    service-account key's ``private_key``)."""
    for part in sorted(_secret_parts(record), key=len, reverse=True):
        text = text.replace(part, "***")
    return text


def _secret_parts(record: StorageRecord) -> set[str]:
    values = [str(v) for v in record.secrets.values() if v]
    for value in list(values):
        try:
            loaded = json.loads(value)
        except ValueError:
            continue
        if isinstance(loaded, dict):
            values += [v for v in loaded.values() if isinstance(v, str)]
    parts = {line.strip() for value in values for line in [value, *value.splitlines()]}
    return {part for part in parts if len(part) >= 6}


def _check(settings: Settings, record: StorageRecord) -> CheckResult:
    result = CheckResult()
    try:
        storage = open_backend(settings, record, **_quick(record.type))
    except TetherError as exc:
        result.errors.append(_explain(record, exc, "open"))
        return result
    if record.role == "target":
        return _check_target(record, storage, result)
    try:
        page = next(iter(storage.list(record.prefix, recursive=record.recursive)), [])
    except TetherError as exc:
        result.errors.append(_explain(record, exc, "list"))
        return result
    if not page:
        if record.role == "source":
            result.warnings.append(_empty(record))
        return result
    key = page[0].key
    for info in page[:5]:  # a folder marker ("img/") is listed but cannot be read
        try:
            storage.stat(info.key)
            if info.size > 0:
                b"".join(storage.read(info.key, start=0, end=1))
        except ObjectNotFound:
            continue
        except TetherError as exc:
            result.errors.append(_explain(record, exc, "get", info.key))
            return result
        result.sample_key = key = info.key
        break
    else:
        result.warnings.append(
            Finding(
                "objects_unreadable",
                f"the first objects listed (e.g. {key!r}) could not be read back; folder "
                "markers? a sync reports each object it cannot read",
                None,
            )
        )
    if record.regex_filter and not any(re.match(record.regex_filter, o.key) for o in page):
        result.warnings.append(
            Finding(
                "regex_matches_none_seen",
                f"none of the first {len(page)} objects under the prefix matches regex_filter "
                f"(e.g. {key!r}); a sync may find nothing",
                "regex_filter",
            )
        )
    return result


def _check_target(record: StorageRecord, storage: Any, result: CheckResult) -> CheckResult:
    """Write a probe object and delete it: an error names the permission that is missing."""
    key = record.object_key(f".tether-check-{uuid.uuid4().hex[:12]}")
    try:
        storage.write(key, PROBE_BODY, content_type="application/json")
    except TetherError as exc:
        result.errors.append(_explain(record, exc, "write", key))
        return result
    try:
        storage.delete(key)
    except TetherError as exc:
        finding = _explain(record, exc, "delete", key)
        if record.can_delete_objects:
            result.errors.append(finding)
        else:
            finding.message = f"the probe object {key!r} stays in the storage: {finding.message}"
            result.warnings.append(finding)
    return result


def _quick(type_: str) -> dict[str, Any]:
    """Fail fast: no retries, short timeouts."""
    if type_ in ("s3", "gcs", "azure_blob"):
        return {"max_retries": 0, "timeout_s": 15.0}
    if type_ == "redis":
        return {"timeout_seconds": 5.0}
    return {}


def _empty(record: StorageRecord) -> Finding:
    prefix = record.config.get("prefix") or record.config.get("path") or ""
    where = f"under the prefix {prefix!r}" if prefix else "in it"
    return Finding(
        "prefix_empty",
        f"there is no object {where} yet; a sync will find nothing until there is",
        "prefix" if record.type in WHERE else "path",
    )


def _explain(record: StorageRecord, exc: TetherError, step: str, key: str | None = None) -> Finding:
    """A failure in words that name what to fix."""
    kind = record.type
    text = f"{exc.message} {exc.__cause__ or ''}"
    if not isinstance(exc, StorageError):  # e.g. the URL guard's unsafe_url
        field_name = exc.details.get("field") if isinstance(exc.details, dict) else None
        return Finding(exc.code, exc.message, field_name)
    if isinstance(exc, InvalidConfig):
        field_name = exc.details.get("field") if isinstance(exc.details, dict) else None
        return Finding(exc.code, exc.message, field_name)
    if isinstance(exc, Unreachable):
        target = _endpoint(record)
        return Finding(
            "storage_unreachable",
            f"cannot reach {target}: check endpoint_url"
            + (" and region" if kind == "s3" else "")
            + f" and that the server is up ({exc.message})",
            "host" if kind == "redis" else "endpoint_url",
        )
    if isinstance(exc, AccessDenied):
        if exc.code == "role_not_assumable":
            return Finding(exc.code, exc.message, "role_arn")
        if _BAD_KEY.search(text):
            return Finding(
                "bad_credentials",
                f"the credentials were refused: check {CREDENTIALS[kind]} ({exc.message})",
                _credential_field(kind),
            )
        permissions, what = PERMISSIONS[step]
        permission, what = permissions[kind], what.format(key=key)
        return Finding(
            "permission_denied",
            f"the credentials may not {what}: grant {permission} ({exc.message})",
            None,
        )
    if isinstance(exc, ObjectNotFound) and step in ("list", "write") and kind in WHERE:
        name = record.config.get(WHERE[kind])
        return Finding(
            f"{WHERE[kind]}_not_found",
            f"there is no {WHERE[kind]} {name!r} (or the credentials cannot see it): check "
            f"{WHERE[kind]}" + (" and region" if kind == "s3" else ""),
            WHERE[kind],
        )
    if isinstance(exc, ObjectNotFound) and kind == "local":
        return Finding("folder_not_found", f"the folder is not there: {exc.message}", "path")
    return Finding(exc.code, f"{step} failed: {exc.message}", None)


def _credential_field(kind: str) -> str | None:
    return {
        "s3": "access_key_id",
        "gcs": "service_account_json",
        "azure_blob": "account_key",
        "redis": "password",
    }.get(kind)


def _endpoint(record: StorageRecord) -> str:
    if record.type == "redis":
        return f"redis at {record.config.get('host')}:{record.config.get('port')}"
    return str(record.config.get("endpoint_url") or f"the {record.type} endpoint")
