"""Storage connections: one route family for every type (a `type` field and its config)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from tether.api.deps import CallerDep, ConnDep, SettingsDep
from tether.api.errors import documented
from tether.api.idempotency import OnceDep
from tether.api.models import MAX_INT, Storage, StorageCheck, StorageIn, StorageList, StoragePatch
from tether.errors import NotFound
from tether.sync import service

router = APIRouter(prefix="/storages", tags=["storages"], responses=documented(401, 422))
CHECKED = (
    "The check failed (`bad_credentials`, `bucket_not_found`, `container_not_found`, "
    "`permission_denied`, `storage_unreachable`, `invalid_storage_config`, `unsafe_url`, "
    "`role_not_assumable`, ...): nothing was saved; `details` holds every finding."
)


def _id(storage_id: int) -> int:
    if not 0 < storage_id <= MAX_INT:  # the id column is an INTEGER: no such storage
        raise NotFound(f"no storage {storage_id}")
    return storage_id


@router.post(
    "",
    status_code=201,
    response_model=Storage,
    responses=documented(403, 404, 413, e403="Admins only.", e422=CHECKED),
)
def create_storage(
    body: Annotated[StorageIn, Body()],
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    once: OnceDep,
) -> dict[str, Any]:
    """Add a source storage to a dataset (`dataset_id`), or a target storage to a project
    (`project_id`; annotations are exported to it), admins only. It is checked first (a
    source: list one page, read one byte; a target: write a probe object under the prefix
    and delete it) and saved only when the check finds no error; a source prefix with no
    object is a warning in `check.warnings`. Options of the other role are refused
    (`option_of_other_role`). Secret fields are write-only."""
    values = body.model_dump(exclude_unset=True)
    return once.prepared(
        conn,
        lambda: service.prepare(
            conn, settings, caller.org_id, values, user_id=caller.user_id, role=caller.role
        ),
        lambda new: service.save(conn, settings, new),
    )


@router.get("", response_model=StorageList, responses=documented(404))
def list_storages(
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    dataset_id: Annotated[
        int | None, Query(ge=1, le=MAX_INT, description="only this dataset's storages")
    ] = None,
    project_id: Annotated[
        int | None, Query(ge=1, le=MAX_INT, description="only this project's target storages")
    ] = None,
) -> dict[str, Any]:
    found = service.list_storages(conn, settings, caller.org_id, dataset_id, project_id)
    return {"items": found}


@router.get("/{storage_id}", response_model=Storage, responses=documented(404))
def get_storage(
    storage_id: int, caller: CallerDep, conn: ConnDep, settings: SettingsDep
) -> dict[str, Any]:
    return service.get(conn, settings, caller.org_id, _id(storage_id))


@router.patch(
    "/{storage_id}",
    response_model=Storage,
    responses=documented(403, 404, 413, e403="Admins only.", e422=CHECKED),
)
def update_storage(
    storage_id: int,
    body: StoragePatch,
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    once: OnceDep,
) -> dict[str, Any]:
    """Change fields (admins only); the others stay. A change of connection fields is checked
    first and saved only without errors. A secret field given replaces the stored one, given
    as null removes it, left out keeps it. The type cannot change."""
    changes = body.model_dump(exclude_unset=True)
    return once.prepared(
        conn,
        lambda: service.prepare_update(
            conn, settings, caller.org_id, _id(storage_id), changes, role=caller.role
        ),
        lambda change: service.apply(conn, settings, change),
    )


@router.delete(
    "/{storage_id}",
    status_code=204,
    response_class=Response,
    responses=documented(403, 404, e403="Admins only."),
)
def delete_storage(
    storage_id: int, caller: CallerDep, conn: ConnDep, settings: SettingsDep, once: OnceDep
) -> Response:
    """Delete the storage (admins only). Its data rows stay; nothing in the store changes."""
    once(
        conn,
        lambda: service.remove(conn, settings, caller.org_id, _id(storage_id), role=caller.role),
    )
    return Response(status_code=204)


@router.post("/{storage_id}/validate", response_model=StorageCheck, responses=documented(404))
def validate_storage(
    storage_id: int, caller: CallerDep, conn: ConnDep, settings: SettingsDep
) -> dict[str, Any]:
    """Run the check again (any member): `ok` false with `errors` naming what to fix, or
    `ok` true (maybe with `warnings`, e.g. no object under a source's prefix). A target's
    check writes and deletes a probe object."""
    return service.validate(conn, settings, caller.org_id, _id(storage_id))
