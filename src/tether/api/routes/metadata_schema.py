from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tether.api.deps import CallerDep, ConnDep
from tether.api.idempotency import OnceDep
from tether.api.models import FieldIn, FieldPatch, MetadataField, MetadataSchema
from tether.catalog import metadata_schema as schema

router = APIRouter(prefix="/metadata-schema", tags=["metadata schema"])


@router.get("", response_model=MetadataSchema)
def get_schema(caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    """Reserved fields (tag, split, captureDateTime, embedding) and the organization's own."""
    return {"fields": [f.to_dict() for f in schema.list_fields(conn, caller.org_id)]}


@router.post("", status_code=201, response_model=MetadataField)
def create_field(body: FieldIn, caller: CallerDep, conn: ConnDep, once: OnceDep) -> dict[str, Any]:
    return once(
        conn,
        lambda: schema.create_field(
            conn, caller.org_id, body.name, body.kind, body.options, body.dimension
        ).to_dict(),
    )


@router.get("/{field}", response_model=MetadataField)
def get_field(field: str, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return schema.get_field(conn, caller.org_id, field).to_dict()


@router.patch("/{field}", response_model=MetadataField)
def update_field(
    field: str, body: FieldPatch, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> dict[str, Any]:
    return once(
        conn,
        lambda: schema.update_field(
            conn, caller.org_id, field, body.name, body.add_options
        ).to_dict(),
    )


@router.delete("/{field}", status_code=204)
def delete_field(field: str, caller: CallerDep, conn: ConnDep, once: OnceDep) -> None:
    once(conn, lambda: schema.delete_field(conn, caller.org_id, field))
