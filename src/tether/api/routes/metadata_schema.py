from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tether.api.deps import CallerDep, ConnDep
from tether.api.errors import documented
from tether.api.idempotency import OnceDep
from tether.api.models import FieldIn, FieldPatch, MetadataField, MetadataSchema
from tether.catalog import metadata_schema as schema

router = APIRouter(
    prefix="/metadata-schema", tags=["metadata schema"], responses=documented(401, 422)
)
TAKEN = "The name is taken, or the field is reserved."


@router.get("", response_model=MetadataSchema)
def get_schema(caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    """Reserved fields (tag, split, captureDateTime, embedding) and the organization's own."""
    return {"fields": [f.to_dict() for f in schema.list_fields(conn, caller.org_id)]}


@router.post(
    "",
    status_code=201,
    response_model=MetadataField,
    responses=documented(403, 409, 413, e409=TAKEN),
)
def create_field(body: FieldIn, caller: CallerDep, conn: ConnDep, once: OnceDep) -> dict[str, Any]:
    return once(
        conn,
        lambda: schema.create_field(
            conn,
            caller.org_id,
            body.name,
            body.kind,
            body.options,
            body.dimension,
            role=caller.role,
        ).to_dict(),
    )


@router.get("/{field}", response_model=MetadataField, responses=documented(404))
def get_field(field: str, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return schema.get_field(conn, caller.org_id, field).to_dict()


@router.patch(
    "/{field}",
    response_model=MetadataField,
    responses=documented(403, 404, 409, 413, e409=TAKEN),
)
def update_field(
    field: str, body: FieldPatch, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> dict[str, Any]:
    return once(
        conn,
        lambda: schema.update_field(
            conn, caller.org_id, field, body.name, body.add_options, role=caller.role
        ).to_dict(),
    )


@router.delete(
    "/{field}",
    status_code=204,
    responses=documented(403, 404, 409, e409="The field is reserved, or rows still use it."),
)
def delete_field(field: str, caller: CallerDep, conn: ConnDep, once: OnceDep) -> None:
    once(conn, lambda: schema.delete_field(conn, caller.org_id, field, role=caller.role))
