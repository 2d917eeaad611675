"""The base of the SDK's bound response models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import PrivateAttr

from tether import schemas

if TYPE_CHECKING:
    from tether.sdk._client import Client


class _Bound(schemas.Model):
    """A response model that keeps the client it came from, for its methods."""

    _client: Any = PrivateAttr(None)

    def __init__(
        self, client: Client | None = None, data: dict[str, Any] | None = None, /, **fields: Any
    ) -> None:
        """``Dataset(client, answer)`` as in earlier versions, or the fields by name."""
        super().__init__(**{**(data or {}), **fields})
        self._client = client

    @classmethod
    def _of(cls, client: Client, data: dict[str, Any]) -> Any:
        made = cls.model_validate(data)
        made._client = client
        return made

    @property
    def client(self) -> Client:
        return self._client

    @property
    def _data(self) -> dict[str, Any]:
        """The answer as a dict (what earlier versions kept here)."""
        return self.model_dump()

    def _replace(self, data: dict[str, Any]) -> None:
        fresh = type(self).model_validate(data)
        for name in type(self).model_fields:
            setattr(self, name, getattr(fresh, name))
