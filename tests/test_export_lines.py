"""The export's lines on SQLite, which the database writes itself (``catalog.export``), are
byte for byte the lines Python writes row by row, for every kind of value: text that JSON
must escape, rows with extra keys (some shadowing tether's), renamed fields, timestamps of a
whole second or in another form, batches cut short by long lines."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, text

from tests.conftest import Tenant
from tether.catalog import export, queries
from tether.db.tables import data_rows

ESCAPED = "".join(chr(c) for c in range(1, 32)) + '"\\/\x7f é ✓ \u2028 𝄞'


def _export(engine: Engine, tenant: Tenant, dataset_id: int) -> bytes:
    opened = export.open_export(engine, tenant.org_id, dataset_id)
    body = b"".join(opened.chunks)
    assert body.count(b"\n") == opened.rows
    return body


def _in_python(engine: Engine, tenant: Tenant, dataset_id: int, monkeypatch: Any) -> bytes:
    with monkeypatch.context() as patch:
        patch.setattr(export, "MAX_FIELDS_IN_SQL", -1)  # every batch row by row, in Python
        return _export(engine, tenant, dataset_id)


@pytest.fixture
def rows(engine: Engine, tenant: Tenant) -> dict[str, Any]:
    """A dataset of varied rows, some of them changed behind the API's back."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the database writes the lines on SQLite only")
    for body in ({"name": "score", "kind": "number"}, {"name": "note", "kind": "string"}):
        assert tenant.post("/metadata-schema", json=body).status_code == 201
    ds = tenant.dataset()
    items: list[dict[str, Any]] = []
    for i in range(23):
        item: dict[str, Any] = {"row_data": f"s3://b/{i}.jpg", "global_key": f"k{i}{ESCAPED}"}
        if i % 2:
            item["external_id"] = ESCAPED[i:]
            item["media_attributes"] = {"width": i, "note": ESCAPED}
            item["metadata_fields"] = [
                {"name": "score", "value": i / 3},
                {"name": "note", "value": ESCAPED},
                {"name": "tag", "value": "t"},
            ]
            item["attachments"] = [{"type": "RAW_TEXT", "value": ESCAPED}]
        items.append(item)
    tasks = [
        {"data": {"text": ESCAPED}, "annotations": [{"id": 1, "result": []}], "id": 9},
        {"data": {"image": "s3://b/t.png"}, "meta": {"created_at": ESCAPED}},
    ]
    body = b"".join(orjson.dumps(r) + b"\n" for r in items)
    assert tenant.import_rows(ds["id"], body)["counts"]["created"] == len(items)
    assert tenant.import_rows(ds["id"], orjson.dumps(tasks))["counts"]["created"] == 2
    with engine.begin() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                text(f"SELECT id FROM data_rows WHERE dataset_id = {ds['id']} ORDER BY id")
            )
        ]
        changes: dict[int, dict[str, Any]] = {
            ids[3]: {"created_at": "2024-05-01 10:00:00.000000"},  # a whole second
            ids[4]: {"updated_at": "2024-05-01 10:00:00"},  # another form
            ids[5]: {"extra": '{"id":5,"dataset_id":7,"kept":[1,"é"]}'},  # shadowing keys
            ids[6]: {"extra": '{"kept":{"id":1}}'},  # "id" only inside
            ids[7]: {"created_by": None, "media_attributes": None},
        }
        for row_id, values in changes.items():
            sets = ", ".join(f"{column} = :{column}" for column in values)
            conn.execute(
                text(f"UPDATE data_rows SET {sets} WHERE id = :id"), {**values, "id": row_id}
            )
    return {"dataset": ds, "count": len(items) + len(tasks)}


def test_sqlite_writes_the_lines_python_writes(
    engine: Engine, tenant: Tenant, rows: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = rows["dataset"]
    python = _in_python(engine, tenant, ds["id"], monkeypatch)
    for batch in (5000, 3, 1):  # whole, and cut between (and around) the rows Python writes
        monkeypatch.setattr(export, "BATCH_ROWS", batch)
        assert _export(engine, tenant, ds["id"]) == python
    monkeypatch.setattr(export, "BATCH_ROWS", 4)
    monkeypatch.setattr(export, "BATCH_BYTES", 1000)  # long lines: batches of fewer rows
    sizes: list[int] = []
    real = export._next_rows
    monkeypatch.setattr(export, "_next_rows", lambda *a: sizes.append(real(*a)) or sizes[-1])
    assert _export(engine, tenant, ds["id"]) == python
    assert 1 in sizes
    lines = [orjson.loads(line) for line in python.splitlines()]
    assert len(lines) == rows["count"]
    assert [r["id"] for r in lines] == sorted(r["id"] for r in lines)
    assert lines[5]["id"] != 5 and lines[5]["kept"] == [1, "é"]
    assert lines[6]["kept"] == {"id": 1}
    assert lines[3]["created_at"].endswith("T10:00:00+00:00")
    assert lines[0]["global_key"] == f"k0{ESCAPED}"
    assert lines[1]["metadata_fields"][1] == {
        "schema_id": lines[1]["metadata_fields"][1]["schema_id"],
        "name": "note",
        "value": ESCAPED,
    }
    with engine.connect() as conn:
        names = queries.field_names(conn, tenant.org_id)
        query = select(data_rows).where(data_rows.c.dataset_id == ds["id"]).order_by(data_rows.c.id)
        listed = [queries.to_public(r, names) for r in conn.execute(query)]
    assert lines == listed


def test_renamed_fields(
    engine: Engine, tenant: Tenant, rows: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = rows["dataset"]
    r = tenant.patch("/metadata-schema/note", json={"name": 'remark "r" ✓'})
    assert r.status_code == 200, r.text
    python = _in_python(engine, tenant, ds["id"], monkeypatch)
    assert b'"name":"remark \\"r\\" \xe2\x9c\x93"' in python
    assert _export(engine, tenant, ds["id"]) == python
