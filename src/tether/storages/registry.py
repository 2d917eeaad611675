"""The storage backends by type: one line each. Modules are imported when first used, so a
backend's client library loads only when a storage of that type is."""

from __future__ import annotations

import importlib
from typing import Any

from tether.storages.base import InvalidConfig, Storage

# type -> "module:Class"; the class takes the type's config as keyword arguments.
BACKENDS: dict[str, str] = {
    "memory": "tether.storages.memory:MemoryStorage",
    "local": "tether.storages.local:LocalStorage",
    "redis": "tether.storages.redis:RedisStorage",
    "s3": "tether.storages.s3:S3Storage",
    "gcs": "tether.storages.gcs:GCSStorage",
    "azure_blob": "tether.storages.azure_blob:AzureBlobStorage",
}


def open_storage(type_: str, **config: Any) -> Storage:
    """A connected backend of ``type_`` built from its config."""
    target = BACKENDS.get(type_)
    if target is None:
        known = ", ".join(sorted(BACKENDS))
        raise InvalidConfig(f"unknown storage type {type_!r}; expected one of {known}")
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    storage: Storage = cls(**config)
    return storage
