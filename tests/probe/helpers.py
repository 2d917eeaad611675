"""Running a probe job here and now, and reading rows' attributes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select

from tests.sync.helpers import Place
from tether.catalog import store
from tether.catalog.metadata_schema import load_schema
from tether.catalog.rows import normalize
from tether.catalog.store import Target, allocate_ids
from tether.db.tables import data_rows
from tether.resolve.probe_job import run_probe, start_probe


def probe(place: Place, force: bool = False, chunk_rows: int = 200) -> dict[str, Any]:
    with place.engine.begin() as conn:
        job, created = start_probe(conn, place.org_id, place.dataset_id, None, force)
    assert created
    run_probe(place.engine, place.settings, job["id"], chunk_rows)
    return place.job(job["id"])


def attributes(place: Place) -> dict[str, dict[str, Any]]:
    """Row data (a URI) -> media attributes, for every row of the place's dataset."""
    with place.engine.connect() as conn:
        rows = conn.execute(
            select(data_rows.c.row_data, data_rows.c.media_attributes).where(
                data_rows.c.dataset_id == place.dataset_id
            )
        ).all()
    return {
        orjson.loads(r.row_data): orjson.loads(r.media_attributes) if r.media_attributes else {}
        for r in rows
    }


def add_rows(place: Place, items: list[dict[str, Any]]) -> None:
    """Rows as an import writes them (no storage links)."""
    with place.engine.connect() as conn:
        schema = load_schema(conn, place.org_id)
    rows = [(i, normalize(item, schema, None)) for i, item in enumerate(items)]
    first = None if place.engine.dialect.name == "sqlite" else allocate_ids(place.engine, len(rows))
    target = Target(place.org_id, place.dataset_id, None, upsert=False)
    with place.engine.connect() as conn, conn.begin():
        result = store.write_rows(conn, target, rows, first, datetime.now(UTC))
    assert result.created == len(items), result.errors
