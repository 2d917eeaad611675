"""Azure Blob Storage (and Azurite) through obstore, authenticated by an account key."""

from __future__ import annotations

from typing import Any, ClassVar

from tether.storages.base import config_error
from tether.storages.objectstore import ObjectStoreStorage, client_options, short_retry


class AzureBlobStorage(ObjectStoreStorage):
    """``sign`` makes a read-only service SAS URL from the account key."""

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
        if account_key:
            kwargs["account_key"] = account_key
        elif allow_ambient_credentials:
            self.can_sign = False
        else:
            raise config_error(
                "an azure_blob storage needs account_key (this server does not lend its own "
                "cloud identity to storages)",
                field="account_key",
            )
        try:
            self._store = AzureStore(container, **kwargs)
        except Exception as exc:
            raise config_error(f"azure_blob storage config: {exc}".split("\n")[0]) from exc
