"""The fields of a storage connection: a typed config per type, and the options every storage
has. The API, the SDK and the CLI use the same names (``--endpoint-url`` is ``endpoint_url``).

Config fields say where the data is and how to get in; the secret ones among them
(``connections.SECRET_FIELDS``) are write-only. Options say what a sync makes of it (a
source's ``Options``) or what an export does (a target's ``TargetOptions``).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tether.errors import Invalid
from tether.storages.base import InvalidConfig

ROLE_ARN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$"
MAX_TTL_MINUTES = 7 * 24 * 60  # what S3, GCS and Azure sign for at most
MAX_SYNC_EVERY = 30 * 24 * 60


class Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")


class S3Fields(Fields):
    bucket: str = Field(min_length=1, max_length=255, description="the bucket's name")
    prefix: str = Field("", max_length=1024, description="a plain key prefix (`img/`)")
    region: str | None = Field(None, max_length=64, description="e.g. `eu-west-1`")
    endpoint_url: str | None = Field(
        None, max_length=2048, description="an S3-compatible endpoint (MinIO, R2, Ceph)"
    )
    access_key_id: str | None = Field(None, max_length=256, description="write-only")
    secret_access_key: str | None = Field(None, max_length=1024, description="write-only")
    session_token: str | None = Field(None, max_length=8192, description="write-only")
    role_arn: str | None = Field(
        None,
        pattern=ROLE_ARN,
        max_length=2048,
        description="an IAM role tether assumes (with the organization's `external_id`) "
        "instead of keys",
    )

    @model_validator(mode="after")
    def _keys_or_role(self) -> S3Fields:
        if self.role_arn and (self.access_key_id or self.secret_access_key):
            raise ValueError("give access keys or role_arn, not both")
        return self


class GCSFields(Fields):
    bucket: str = Field(min_length=1, max_length=222)
    prefix: str = Field("", max_length=1024)
    service_account_json: str | None = Field(
        None, max_length=65536, description="a service-account key file's JSON (write-only)"
    )
    endpoint_url: str | None = Field(None, max_length=2048)


class AzureBlobFields(Fields):
    container: str = Field(min_length=1, max_length=63)
    prefix: str = Field("", max_length=1024)
    account_name: str = Field(min_length=1, max_length=64)
    account_key: str | None = Field(None, max_length=1024, description="write-only")
    endpoint_url: str | None = Field(None, max_length=2048)


class RedisFields(Fields):
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(6379, ge=1, le=65535)
    password: str | None = Field(None, max_length=1024, description="write-only")
    db: int = Field(0, ge=0, le=10_000)
    path: str = Field("", max_length=1024, description="the key prefix")


class LocalFields(Fields):
    path: str = Field(
        min_length=1,
        max_length=4096,
        description="an absolute folder inside TETHER_LOCAL_FILES_DOCUMENT_ROOT",
    )


FIELDS: dict[str, type[Fields]] = {
    "s3": S3Fields,
    "gcs": GCSFields,
    "azure_blob": AzureBlobFields,
    "redis": RedisFields,
    "local": LocalFields,
}
TYPES = tuple(FIELDS)
# Fields tether sets itself and a user never gives.
DERIVED = {"external_id"}


class Options(Fields):
    title: str = Field("", max_length=200)
    regex_filter: str | None = Field(
        None,
        max_length=2000,
        description="only keys it matches (Python `re.match`, from the key's start)",
    )
    recursive: bool = Field(True, description="off: only objects directly under the prefix")
    treat_every_object_as_source_file: bool = Field(
        True, description="one row per object; off: each object is a JSON/NDJSON manifest"
    )
    use_signed_urls: bool = Field(
        True, description="browsers get signed URLs (else tether streams)"
    )
    signed_url_ttl_minutes: int = Field(15, ge=1, le=MAX_TTL_MINUTES)
    remove_missing: bool = Field(False, description="a sync removes rows of vanished objects")
    sync_every_minutes: int | None = Field(
        None, ge=1, le=MAX_SYNC_EVERY, description="a scheduled sync's period; null: manual"
    )

    @field_validator("regex_filter")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"regex_filter does not compile: {exc}") from None
        return value


OPTION_NAMES = tuple(Options.model_fields)


class TargetOptions(Fields):
    """The options of a target storage (annotations go out; nothing is listed or synced in)."""

    title: str = Field("", max_length=200)
    can_delete_objects: bool = Field(
        False, description="an export deletes the object of a deleted annotation"
    )
    auto_export: bool = Field(True, description="export shortly after each annotation save")


TARGET_OPTION_NAMES = tuple(TargetOptions.model_fields)
# What each role takes (``title`` is both's); the other role's options are refused.
ROLE_OPTIONS: dict[str, tuple[str, ...]] = {"source": OPTION_NAMES, "target": TARGET_OPTION_NAMES}
ROLE_MODELS: dict[str, type[Fields]] = {"source": Options, "target": TargetOptions}
ALL_OPTION_NAMES = tuple(dict.fromkeys(OPTION_NAMES + TARGET_OPTION_NAMES))


def config_names(type_: str) -> tuple[str, ...]:
    return tuple(known_type(type_).model_fields)


def known_type(type_: str) -> type[Fields]:
    found = FIELDS.get(type_)
    if found is None:
        raise InvalidConfig(
            f"unknown storage type {type_!r}; expected one of {', '.join(TYPES)}",
            details={"field": "type"},
        )
    return found


def parse(model: type[Fields], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked by ``model``; ``Invalid`` naming each wrong field (never echoing a
    value: it may be a secret)."""
    try:
        return model.model_validate(values).model_dump()
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> Invalid:
    details: list[dict[str, Any]] = [
        {"loc": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", ""))}
        for e in exc.errors(include_input=False, include_url=False, include_context=False)
    ]
    first = details[0]
    where = ".".join(first["loc"])
    message = str(first["message"])
    return Invalid(f"{where}: {message}" if where else message, details)
