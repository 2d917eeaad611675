"""The caller's organization."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tether import accounts
from tether.api.deps import CallerDep, ConnDep
from tether.api.errors import documented

router = APIRouter(prefix="/organization", tags=["organization"], responses=documented(401, 422))


class Organization(BaseModel):
    id: int
    name: str
    external_id: str | None = Field(
        description="What tether passes as sts:ExternalId when it assumes an IAM role of "
        "yours (S3 storages with `role_arn`): put it in the role's trust policy."
    )
    created_at: str


@router.get("", response_model=Organization)
def get_organization(caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return accounts.get_org(conn, caller.org_id)
