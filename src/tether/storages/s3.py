"""Amazon S3 and S3-compatible stores (MinIO, Ceph, moto, R2) through obstore."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from tether.storages.base import config_error
from tether.storages.objectstore import (
    ObjectStoreStorage,
    build_store,
    client_options,
    no_credentials,
    short_retry,
)

FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)  # static keys do not expire


class S3Storage(ObjectStoreStorage):
    scheme: ClassVar[str] = "s3"
    _query_unsafe = " *~"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        region: str | None = None,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        allow_ambient_credentials: bool = False,
        credential_provider: Callable[[], dict[str, Any]] | None = None,
        allow_http: bool | None = None,
        max_retries: int = 2,
        timeout_s: float = 30.0,
    ) -> None:
        from obstore.store import S3Store

        if not bucket:
            raise config_error("an s3 storage needs a bucket", field="bucket")
        if bool(access_key_id) != bool(secret_access_key):
            raise config_error(
                "give both access_key_id and secret_access_key, or neither",
                field="secret_access_key" if access_key_id else "access_key_id",
            )
        self._container = bucket
        self.prefix = prefix
        kwargs: dict[str, Any] = {
            "region": region or "us-east-1",
            "client_options": client_options(endpoint_url, timeout_s, allow_http),
            "retry_config": short_retry(max_retries, timeout_s),
        }
        if endpoint_url:
            kwargs["endpoint"] = endpoint_url.rstrip("/")
            kwargs["virtual_hosted_style_request"] = False
        if credential_provider is not None:  # temporary credentials (an assumed IAM role)
            if access_key_id:
                raise config_error("give access keys or a role, not both", field="access_key_id")
            kwargs["credential_provider"] = credential_provider
        elif access_key_id:
            # A credential provider, not access_key_id=...: obstore otherwise completes the
            # given key with the server's own AWS_SESSION_TOKEN from the environment.
            static = {
                "access_key_id": access_key_id,
                "secret_access_key": secret_access_key,
                "token": session_token or None,
                "expires_at": FAR_FUTURE,
            }
            kwargs["credential_provider"] = lambda: static
        elif not allow_ambient_credentials:
            raise no_credentials("an s3", "access_key_id and secret_access_key", "access_key_id")
        self._store = build_store("s3", S3Store, bucket, **kwargs)
