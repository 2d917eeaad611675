"""Azure Blob Storage (and Azurite) through obstore, authenticated by an account key."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from tether.storages.base import config_error
from tether.storages.objectstore import (
    ObjectStoreStorage,
    build_store,
    client_options,
    no_credentials,
    short_retry,
)


class AzureBlobStorage(ObjectStoreStorage):
    """``sign`` makes a read-only service SAS URL from the account key (here, not in
    obstore: obstore signs the escaped blob name, which Azure refuses for any key that needs
    escaping)."""

    SAS_VERSION = "2022-11-02"

    scheme: ClassVar[str] = "azure-blob"

    def __init__(
        self,
        container: str,
        account_name: str | None = None,
        account_key: str | None = None,
        prefix: str = "",
        endpoint_url: str | None = None,
        allow_ambient_credentials: bool = False,
        allow_http: bool | None = None,
        max_retries: int = 2,
        timeout_s: float = 30.0,
    ) -> None:
        from obstore.store import AzureStore

        if not container:
            raise config_error("an azure_blob storage needs a container", field="container")
        if not account_name:
            raise config_error("an azure_blob storage needs account_name", field="account_name")
        self._container = container
        self.prefix = prefix
        kwargs: dict[str, Any] = {
            "account_name": account_name,
            "client_options": client_options(endpoint_url, timeout_s, allow_http),
            "retry_config": short_retry(max_retries, timeout_s),
        }
        if endpoint_url:
            # Azurite and other path-style endpoints: http://host:port/<account>
            kwargs["endpoint"] = endpoint_url.rstrip("/")
        self._account_name = account_name
        self._account_key = account_key
        self._endpoint = (endpoint_url or f"https://{account_name}.blob.core.windows.net").rstrip(
            "/"
        )
        if account_key:
            try:
                base64.b64decode(account_key, validate=True)
            except ValueError as exc:
                raise config_error("account_key is not base64", field="account_key") from exc
            kwargs["account_key"] = account_key
        elif allow_ambient_credentials:
            self.can_sign = False
        else:
            raise no_credentials("an azure_blob", "account_key", "account_key")
        self._store = build_store("azure_blob", AzureStore, container, **kwargs)

    def sign(self, key: str, expires_in: timedelta, *, now: datetime | None = None) -> str | None:
        self._check_key(key)
        if not self._account_key:
            return None
        start = (now or datetime.now(UTC)) - timedelta(minutes=5)  # clock skew
        fields = {
            "sp": "r",
            "st": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "se": (start + timedelta(minutes=5) + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sv": self.SAS_VERSION,
            "sr": "b",
        }
        resource = f"/blob/{self._account_name}/{self._container}/{key}"
        to_sign = "\n".join(
            [fields["sp"], fields["st"], fields["se"], resource, "", "", "", fields["sv"],
             fields["sr"], "", "", "", "", "", "", ""]
        )  # fmt: skip
        mac = hmac.new(base64.b64decode(self._account_key), to_sign.encode(), hashlib.sha256)
        fields["sig"] = base64.b64encode(mac.digest()).decode()
        path = quote(f"{self._container}/{key}", safe="/~")
        return f"{self._endpoint}/{path}?{urlencode(fields)}"
