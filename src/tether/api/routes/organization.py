"""The caller's organization."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tether import accounts
from tether.api.deps import CallerDep, ConnDep
from tether.api.errors import documented
from tether.schemas import Organization

router = APIRouter(prefix="/organization", tags=["organization"], responses=documented(401, 422))


@router.get("", response_model=Organization)
def get_organization(caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return accounts.get_org(conn, caller.org_id)
