"""A user's own API keys (admins: also the organization's). A key is shown once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from tether import accounts
from tether.api.deps import CallerDep, ConnDep
from tether.api.errors import documented
from tether.api.models import MAX_INT, Body

router = APIRouter(prefix="/api-keys", tags=["api keys"], responses=documented(401, 422))


class ApiKey(BaseModel):
    id: int
    name: str
    hint: str = Field(description="the key's first characters, to recognise it by")
    user_id: int
    email: str
    created_at: str
    last_used_at: str | None = None
    revoked_at: str | None = None


class NewApiKey(ApiKey):
    key: str = Field(description="the key itself: shown this once, never stored")


class ApiKeyList(BaseModel):
    items: list[ApiKey]


class ApiKeyIn(Body):
    name: str = Field("default", min_length=1, max_length=200)
    user_id: int | None = Field(
        None, ge=1, le=MAX_INT, description="admins: a key for another user of the organization"
    )


@router.get("", response_model=ApiKeyList, responses=documented(403))
def list_keys(
    caller: CallerDep,
    conn: ConnDep,
    all: Annotated[bool, Query(description="admins: every key of the organization")] = False,
) -> dict[str, Any]:
    """The caller's keys, revoked ones included."""
    return {"items": accounts.list_keys(conn, caller, all_users=all)}


@router.post("", status_code=201, response_model=NewApiKey, responses=documented(403, 404, 413))
def create_key(body: ApiKeyIn, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return accounts.create_key(conn, caller, body.name, body.user_id)


@router.delete("/{key_id}", status_code=204, responses=documented(403, 404))
def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=MAX_INT)], caller: CallerDep, conn: ConnDep
) -> None:
    """Revoke one of your keys (admins: any key of the organization)."""
    accounts.revoke_key(conn, caller, key_id)
