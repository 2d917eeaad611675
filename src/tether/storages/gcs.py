"""Google Cloud Storage through obstore, authenticated by a service-account key."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from tether.storages.base import config_error
from tether.storages.objectstore import ObjectStoreStorage, client_options, short_retry


class GCSStorage(ObjectStoreStorage):
    """``sign`` makes V4 URLs offline from the service-account key; with ambient credentials
    it returns None (obstore would ask the metadata server to sign)."""

    scheme: ClassVar[str] = "gs"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        service_account_json: str | dict[str, Any] | None = None,
        endpoint_url: str | None = None,
        allow_ambient_credentials: bool = False,
        allow_http: bool | None = None,
        max_retries: int = 2,
        timeout_s: float = 30.0,
    ) -> None:
        from obstore.store import GCSStore

        if not bucket:
            raise config_error("a gcs storage needs a bucket", field="bucket")
        self._container = bucket
        self.prefix = prefix
        kwargs: dict[str, Any] = {
            "client_options": client_options(endpoint_url, timeout_s, allow_http),
            "retry_config": short_retry(max_retries, timeout_s),
        }
        if endpoint_url:
            kwargs["base_url"] = endpoint_url.rstrip("/")
        if service_account_json:
            kwargs["service_account_key"] = _service_account(service_account_json)
        elif allow_ambient_credentials:
            self.can_sign = False
        else:
            raise config_error(
                "a gcs storage needs service_account_json (this server does not lend its own "
                "cloud identity to storages)",
                field="service_account_json",
            )
        try:
            self._store = GCSStore(bucket, **kwargs)
        except Exception as exc:
            raise config_error(f"gcs storage config: {exc}".split("\n")[0]) from exc


def _service_account(value: str | dict[str, Any]) -> str:
    """The key as JSON text, checked for the fields signing and tokens need."""
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise config_error(
            "service_account_json is not JSON", field="service_account_json"
        ) from exc
    if not isinstance(data, dict):
        raise config_error("service_account_json is not a JSON object", field="service_account_json")
    missing = [f for f in ("client_email", "private_key", "private_key_id") if not data.get(f)]
    if missing:
        raise config_error(
            f"service_account_json lacks {', '.join(missing)}",
            field="service_account_json",
            missing=missing,
        )
    return json.dumps(data)
