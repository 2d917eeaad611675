"""The organization's users (admins only): add with a role, change role or password, remove."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from tether import accounts
from tether.api.deps import CallerDep, ConnDep
from tether.api.errors import documented
from tether.api.models import MAX_INT, Body

router = APIRouter(prefix="/users", tags=["users"], responses=documented(401, 403, 422))
Role = Literal["admin", "member"]
UserId = Annotated[int, Path(ge=1, le=MAX_INT)]
Password = Annotated[str | None, Field(None, min_length=8, max_length=1024)]


class User(BaseModel):
    id: int
    email: str
    role: Role
    created_at: str
    can_sign_in: bool = Field(
        description="whether the user has a password (API keys work either way)"
    )


class UserList(BaseModel):
    items: list[User]


class UserIn(Body):
    email: str = Field(min_length=3, max_length=320)
    role: Role = "member"
    password: Password = Field(
        None, description="lets the user sign in to the web UI; without one, only API keys work"
    )


class UserPatch(Body):
    role: Role | None = None
    password: Password = Field(None, description="a new password; signs the user out everywhere")


@router.get("", response_model=UserList)
def list_users(caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return {"items": accounts.list_users(conn, caller)}


@router.post(
    "",
    status_code=201,
    response_model=User,
    responses=documented(409, 413, e409="A user with that email exists."),
)
def add_user(body: UserIn, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return accounts.invite_user(conn, caller, body.email, body.role, body.password)


@router.patch(
    "/{user_id}",
    response_model=User,
    responses=documented(404, 409, 413, e409="It would leave the organization no admin."),
)
def change_user(
    user_id: UserId, body: UserPatch, caller: CallerDep, conn: ConnDep
) -> dict[str, Any]:
    """An organization keeps at least one admin: demoting the last one is 409."""
    return accounts.update_user(conn, caller, user_id, body.role, body.password)


@router.delete(
    "/{user_id}",
    status_code=204,
    responses=documented(404, 409, e409="It would leave the organization no admin."),
)
def remove_user(user_id: UserId, caller: CallerDep, conn: ConnDep) -> None:
    """Remove the user with their API keys and sessions (what they made stays)."""
    accounts.remove_user(conn, caller, user_id)
