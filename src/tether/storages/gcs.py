"""Google Cloud Storage through obstore, authenticated by a service-account key."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from tether.storages.base import config_error
from tether.storages.objectstore import (
    ObjectStoreStorage,
    build_store,
    client_options,
    no_credentials,
    short_retry,
)

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


class GCSStorage(ObjectStoreStorage):
    """``sign`` makes V4 URLs offline from the service-account key (here, not in obstore:
    obstore's signer cuts a key at ``#`` or ``?``); with ambient credentials it returns None
    (obstore would ask the metadata server to sign)."""

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
        self._endpoint = (endpoint_url or "https://storage.googleapis.com").rstrip("/")
        self._account: dict[str, Any] | None = None
        if service_account_json:
            kwargs["service_account_key"] = _service_account(service_account_json)
            self._account = json.loads(kwargs["service_account_key"])
        elif allow_ambient_credentials:
            self.can_sign = False
        else:
            raise no_credentials("a gcs", "service_account_json", "service_account_json")
        self._store = build_store("gcs", GCSStore, bucket, **kwargs)

    def sign(self, key: str, expires_in: timedelta, *, now: datetime | None = None) -> str | None:
        self._check_key(key)
        if self._account is None:
            return None
        return sign_v4(self._account, self._endpoint, self._container, key, expires_in, now)


def sign_v4(
    account: dict[str, Any],
    endpoint: str,
    bucket: str,
    key: str,
    expires_in: timedelta,
    now: datetime | None = None,
) -> str:
    """A V4 signed GET URL (path style), as GCS documents "signing URLs yourself"."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    seconds = int(expires_in.total_seconds())
    if not 1 <= seconds <= 604_800:
        raise config_error("a GCS signed URL lives 1 s to 7 days", expires_in=seconds)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    scope = f"{stamp[:8]}/auto/storage/goog4_request"
    host = urlsplit(endpoint).netloc
    path = f"/{bucket}/{quote(key, safe='/~')}"
    params = {
        "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
        "X-Goog-Credential": f"{account['client_email']}/{scope}",
        "X-Goog-Date": stamp,
        "X-Goog-Expires": str(seconds),
        "X-Goog-SignedHeaders": "host",
    }
    query = "&".join(
        f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(params.items())
    )
    canonical = f"GET\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD"
    to_sign = (
        f"GOOG4-RSA-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    private_key = serialization.load_pem_private_key(account["private_key"].encode(), None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise config_error("service_account_json: private_key is not an RSA key")
    signature = private_key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()
    return f"{endpoint}{path}?{query}&X-Goog-Signature={signature}"


def _service_account(value: str | dict[str, Any]) -> str:
    """The key as JSON text, checked for the fields signing and tokens need."""
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise config_error(
            "service_account_json is not JSON", field="service_account_json"
        ) from exc
    if not isinstance(data, dict):
        raise config_error(
            "service_account_json is not a JSON object", field="service_account_json"
        )
    missing = [f for f in ("client_email", "private_key", "private_key_id") if not data.get(f)]
    if missing:
        raise config_error(
            f"service_account_json lacks {', '.join(missing)}",
            field="service_account_json",
            missing=missing,
        )
    # A key's own token_uri is never fetched: the server must not POST wherever a user says.
    data = {**data, "token_uri": GOOGLE_TOKEN_URI}
    return json.dumps(data)
