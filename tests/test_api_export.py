"""Export through the in-process API: every field as NDJSON, and a round trip into another
organization that gives the same rows."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Tenant

pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")
SERVER_FIELDS = ("id", "dataset_id", "created_at", "updated_at", "created_by")
ROW_FIELDS = {
    "id",
    "dataset_id",
    "global_key",
    "external_id",
    "media_type",
    "row_data",
    "media_attributes",
    "metadata_fields",
    "attachments",
    "created_by",
    "created_at",
    "updated_at",
}


def ndjson(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def export(tenant: Tenant, dataset: int | str) -> list[dict[str, Any]]:
    r = tenant.get(f"/datasets/{dataset}/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert r.content == b"" or r.content.endswith(b"\n")
    return [orjson.loads(line) for line in r.content.splitlines()]


def listed(tenant: Tenant, dataset_id: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"dataset_id": dataset_id, "limit": 1000}
        if after is not None:
            params["after"] = after
        page = tenant.get("/data-rows", params=params).json()
        out += page["items"]
        after = page["next_cursor"]
        if after is None:
            return out


def make_schema(tenant: Tenant) -> None:
    for body in (
        {"name": "score", "kind": "number"},
        {"name": "weather", "kind": "enum", "options": ["sunny", "rain"]},
        {"name": "shot_at", "kind": "datetime"},
        {"name": "clip", "kind": "embedding", "dimension": 2},
        {"name": "note", "kind": "string"},
    ):
        assert tenant.post("/metadata-schema", json=body).status_code == 201


RICH_ROWS: list[Any] = [
    {
        "row_data": "s3://bucket/img/0001.jpg",
        "global_key": "img-0001",
        "external_id": "ext-1",
        "media_attributes": {"width": 640, "height": "480", "mimeType": "image/jpeg"},
        "metadata_fields": [
            {"name": "tag", "value": "dusk"},
            {"name": "split", "value": "train"},
            {"name": "captureDateTime", "value": "2024-05-01T14:00:00+02:00"},
            {"name": "score", "value": 0.75},
            {"name": "weather", "value": "rain"},
            {"name": "shot_at", "value": "2023-01-02T03:04:05Z"},
            {"name": "clip", "value": [0.25, -1]},
            {"name": "note", "value": "ünïcödé ✓"},
        ],
        "attachments": [
            {"type": "RAW_TEXT", "value": "camera 3", "name": "camera"},
            {"type": "image_overlay", "value": "https://example.com/mask.png"},
        ],
    },
    {"row_data": "Just some inline text, no URI.", "external_id": "text-row"},
    {
        "row_data": {"pdf_url": "https://example.com/a.pdf", "text_layer_url": "https://x/t.json"},
        "global_key": "pdf-1",
    },
    {
        "row_data": {
            "tile_layer_url": "https://tiles.example.com/{z}/{x}/{y}.png",
            "bounds": [[19.4, -99.2], [19.5, -99.1]],
            "min_zoom": 12,
            "max_zoom": 20,
            "epsg": "EPSG4326",
        },
        "global_key": "tiles-1",
        "media_type": "TMS_GEO",
    },
    {
        "externalId": "conv-1",
        "conversationalData": [
            {"messageId": "m1", "content": "hi", "user": {"userId": "u1", "name": "Ann"}}
        ],
        "type": "application/vnd.labelbox.conversational",
        "version": 1,
    },
    {"imageUrl": "https://example.com/legacy.png", "externalId": "legacy"},
    {"row_data": "gs://bucket/clip.MP4", "global_key": "vid", "media_type": "video"},
    {"row_data": "s3://bucket/a.wav", "metadata_fields": {"name": "split", "value": "test"}},
]

LABEL_STUDIO_TASKS: list[Any] = [
    {
        "id": 41,
        "data": {"image": "s3://bucket/ls/1.jpg", "caption": "a cat"},
        "annotations": [{"result": [{"type": "choices", "value": {"choices": ["cat"]}}]}],
        "predictions": [{"model_version": "v1", "score": 0.9, "result": []}],
        "meta": {"source": "ls"},
    },
    {"text": "inline text task", "sentiment": None},
]


def strip(row: dict[str, Any]) -> dict[str, Any]:
    """A row without what the server assigns; custom field ids differ between
    organizations, so metadata compares by name, value and (for reserved fields) id."""
    out = {k: v for k, v in row.items() if k not in SERVER_FIELDS}
    out["metadata_fields"] = [
        {"name": m["name"], "value": m["value"]}
        | ({"schema_id": m["schema_id"]} if m["schema_id"].startswith("ck") else {})
        for m in row["metadata_fields"]
    ]
    return out


def test_export_streams_every_field(tenant: Tenant) -> None:
    make_schema(tenant)
    ds = tenant.dataset()
    job = tenant.import_rows(ds["id"], ndjson(RICH_ROWS))
    assert job["counts"] == {"created": len(RICH_ROWS), "updated": 0, "failed": 0}, tenant.errors(
        job["id"]
    )
    job = tenant.import_rows(ds["id"], orjson.dumps(LABEL_STUDIO_TASKS))
    assert job["counts"]["created"] == 2, tenant.errors(job["id"])
    exported = export(tenant, ds["name"])
    assert exported == listed(tenant, ds["id"])
    assert export(tenant, ds["id"]) == exported
    assert len(exported) == len(RICH_ROWS) + 2
    for row in exported:
        assert set(row) >= ROW_FIELDS, row
        assert row["dataset_id"] == ds["id"]
        assert row["created_by"] == tenant.user_id
    first = exported[0]
    assert first["global_key"] == "img-0001"
    assert first["media_attributes"] == {"width": 640, "height": 480, "mimeType": "image/jpeg"}
    assert [(m["name"], m["value"]) for m in first["metadata_fields"]] == [
        ("tag", "dusk"),
        ("split", "train"),
        ("captureDateTime", "2024-05-01T12:00:00Z"),
        ("score", 0.75),
        ("weather", "rain"),
        ("shot_at", "2023-01-02T03:04:05Z"),
        ("clip", [0.25, -1.0]),
        ("note", "ünïcödé ✓"),
    ]
    assert first["attachments"] == [
        {"type": "RAW_TEXT", "value": "camera 3", "name": "camera"},
        {"type": "IMAGE_OVERLAY", "value": "https://example.com/mask.png"},
    ]
    by_kind = [r["media_type"] for r in exported]
    assert by_kind == [
        "IMAGE",
        "TEXT",
        "PDF",
        "TMS_GEO",
        "CONVERSATIONAL",
        "IMAGE",
        "VIDEO",
        "AUDIO",
        "IMAGE",
        "TEXT",
    ]
    conversation = exported[4]
    assert conversation["external_id"] == "conv-1"
    assert conversation["row_data"]["conversationalData"][0]["content"] == "hi"
    assert exported[5]["row_data"] == "https://example.com/legacy.png"
    task = exported[8]
    assert task["row_data"] == {"image": "s3://bucket/ls/1.jpg", "caption": "a cat"}
    assert task["annotations"] == LABEL_STUDIO_TASKS[0]["annotations"]
    assert task["predictions"] == LABEL_STUDIO_TASKS[0]["predictions"]
    assert task["meta"] == {"source": "ls"}
    assert exported[9]["row_data"] == {"text": "inline text task", "sentiment": None}


def test_export_round_trips_into_another_organization(tenant: Tenant, other_tenant: Tenant) -> None:
    make_schema(tenant)
    make_schema(other_tenant)
    source = tenant.dataset()
    tenant.import_rows(source["id"], ndjson(RICH_ROWS))
    tenant.import_rows(source["id"], orjson.dumps(LABEL_STUDIO_TASKS))
    tenant.import_rows(
        source["id"], "row_data,global_key,score,camera\ns3://b/c.jpg,csv-1,3,north\n"
    )
    first = export(tenant, source["id"])
    assert len(first) == len(RICH_ROWS) + 3
    assert first[-1]["camera"] == "north"
    target = other_tenant.dataset(source["name"])
    body = tenant.get(f"/datasets/{source['id']}/export").content
    job = other_tenant.import_rows(target["id"], body)
    assert job["status"] == "completed", other_tenant.errors(job["id"])
    assert job["counts"] == {"created": len(first), "updated": 0, "failed": 0}
    second = export(other_tenant, target["id"])
    assert [strip(r) for r in second] == [strip(r) for r in first]
    assert {r["dataset_id"] for r in second} == {target["id"]}
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    # Metadata of the imported rows is indexed in the new organization too.
    rainy = other_tenant.get("/data-rows", params={"metadata": "weather:eq:rain"}).json()
    assert [r["global_key"] for r in rainy["items"]] == ["img-0001"]
    # Exporting the import again gives the same lines once more.
    third_ds = other_tenant.dataset()
    again = other_tenant.import_rows(
        third_ds["id"],
        other_tenant.get(f"/datasets/{target['id']}/export").content,
    )
    # Global keys are taken in this organization now: those rows are per-row errors.
    keyed = sum(1 for r in first if r["global_key"])
    assert again["counts"] == {"created": len(first) - keyed, "updated": 0, "failed": keyed}


def test_export_into_the_same_dataset_with_upsert_changes_nothing(tenant: Tenant) -> None:
    make_schema(tenant)
    ds = tenant.dataset()
    tenant.import_rows(ds["id"], ndjson([r for r in RICH_ROWS if "global_key" in r]))
    before = export(tenant, ds["id"])
    body = tenant.get(f"/datasets/{ds['id']}/export").content
    job = tenant.import_rows(ds["id"], body, upsert="true")
    assert job["counts"] == {"created": 0, "updated": len(before), "failed": 0}
    after = export(tenant, ds["id"])
    assert [r["id"] for r in after] == [r["id"] for r in before]
    assert [{k: v for k, v in r.items() if k != "updated_at"} for r in after] == [
        {k: v for k, v in r.items() if k != "updated_at"} for r in before
    ]


def test_export_of_an_empty_dataset_is_empty(tenant: Tenant) -> None:
    ds = tenant.dataset()
    assert export(tenant, ds["id"]) == []


def test_export_spans_many_pages(tenant: Tenant) -> None:
    ds = tenant.dataset()
    lines = "".join(f"s3://b/{i:05d}.jpg\n" for i in range(1005))
    job = tenant.import_rows(ds["id"], lines)
    assert job["counts"]["created"] == 1005
    other = tenant.dataset()
    tenant.import_rows(other["id"], "s3://b/elsewhere.jpg\n")
    exported = export(tenant, ds["id"])
    assert [r["row_data"] for r in exported] == [f"s3://b/{i:05d}.jpg" for i in range(1005)]
    assert len({r["id"] for r in exported}) == 1005


# --- renamed fields, extra keys, the row count -------------------------------------------------


def test_export_writes_the_current_names_of_renamed_fields(tenant: Tenant) -> None:
    """Rows keep the name a field had when they were written; the export, like every read,
    shows its name now: renamed fields, untouched ones and reserved ones side by side."""
    make_schema(tenant)
    ds = tenant.dataset()
    tenant.import_rows(ds["id"], ndjson(RICH_ROWS))
    for old, new in (("score", 'quality "q" ✓'), ("note", "remark")):
        r = tenant.patch(f"/metadata-schema/{old}", json={"name": new})
        assert r.status_code == 200, r.text
    exported = export(tenant, ds["id"])
    assert exported == listed(tenant, ds["id"])
    names = [m["name"] for m in exported[0]["metadata_fields"]]
    assert names == [
        "tag",
        "split",
        "captureDateTime",
        'quality "q" ✓',
        "weather",
        "shot_at",
        "clip",
        "remark",
    ]


def test_extra_keys_never_shadow_tether_fields(tenant: Tenant) -> None:
    ds = tenant.dataset()
    tasks = [
        {"data": {"image": "s3://b/1.jpg"}, "annotations": [], "meta": {"k": [1, "ü"]}},
        {"data": {"text": "hi"}, "predictions": [{"result": []}], "id": 7, "created_at": "x"},
    ]
    job = tenant.import_rows(ds["id"], orjson.dumps(tasks))
    assert job["counts"]["created"] == 2, tenant.errors(job["id"])
    exported = export(tenant, ds["id"])
    assert exported == listed(tenant, ds["id"])
    assert exported[0]["meta"] == {"k": [1, "ü"]}
    assert exported[1]["id"] != 7 and exported[1]["created_at"] != "x"


@pytest.mark.parametrize("size", [0, 1, 1005])
def test_the_row_count_header_is_the_number_of_lines(tenant: Tenant, size: int) -> None:
    ds = tenant.dataset()
    if size:
        tenant.import_rows(ds["id"], "".join(f"s3://b/{i}.jpg\n" for i in range(size)))
    r = tenant.get(f"/datasets/{ds['id']}/export")
    assert int(r.headers["x-tether-export-rows"]) == size == len(r.content.splitlines())


def test_export_of_another_organizations_dataset_is_not_found(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    ds = tenant.dataset()
    for ref in (ds["id"], ds["name"], "no-such-dataset"):
        r = other_tenant.get(f"/datasets/{ref}/export")
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"


# --- a real server: snapshots and failures -----------------------------------------------------


@pytest.fixture(scope="module")
def live(http: Any, app: Any) -> Iterator[str]:
    """The test app behind a real uvicorn on loopback (a streamed body, chunk by chunk)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/api/v1"
    server.should_exit = True
    thread.join(10)


def _pause_after(monkeypatch: pytest.MonkeyPatch, rows: int, then: Any) -> None:
    """Export in batches of 100 rows; once ``rows`` lines are made, the server calls
    ``then()`` before it reads the next batch."""
    from tether.catalog import export as export_module

    real = export_module._batches
    monkeypatch.setattr(export_module, "BATCH_ROWS", 100)

    def batches(*args: Any) -> Iterator[bytes]:
        inner = real(*args)
        made, called = 0, False
        while True:
            if made >= rows and not called:
                called = True
                then()
            chunk = next(inner, None)
            if chunk is None:
                return
            made += chunk.count(b"\n")
            yield chunk

    monkeypatch.setattr(export_module, "_batches", batches)


@pytest.mark.parametrize("change", ["delete the dataset", "add and delete rows"])
def test_an_export_is_a_snapshot(
    tenant: Tenant, live: str, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Rows deleted (the whole dataset) or added while an export streams do not change it."""
    ds = tenant.dataset()
    n = 600
    tenant.import_rows(ds["id"], "".join(f"s3://b/{i:04d}.jpg\n" for i in range(n)))
    changed, go_on = threading.Event(), threading.Event()
    _pause_after(monkeypatch, 100, lambda: (changed.set(), go_on.wait(20)))
    with (
        httpx.Client(headers=tenant.headers, timeout=30) as client,
        client.stream("GET", f"{live}/datasets/{ds['id']}/export") as r,
    ):
        assert r.status_code == 200
        assert int(r.headers["x-tether-export-rows"]) == n
        lines = r.iter_lines()
        first = next(lines)
        assert changed.wait(20)  # the server is past its first batch
        if change == "delete the dataset":
            assert tenant.delete(f"/datasets/{ds['id']}").status_code == 202
        else:
            tenant.import_rows(ds["id"], "s3://b/late.jpg\n")
            doomed = [r["id"] for r in listed(tenant, ds["id"])[200:400]]
            gone = tenant.post("/data-rows/delete", json={"ids": doomed})
            assert gone.status_code == 200, gone.text
        go_on.set()
        rest = [line for line in lines if line]
    exported = [orjson.loads(line) for line in [first, *rest]]
    assert [r["row_data"] for r in exported] == [f"s3://b/{i:04d}.jpg" for i in range(n)]


def test_a_failed_export_is_an_incomplete_response(
    tenant: Tenant, live: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure part way aborts the response: the client's read fails (httpx:
    ``RemoteProtocolError``, an incomplete chunked read) and fewer lines than the header
    promised arrived; it never ends like a complete export."""
    ds = tenant.dataset()
    tenant.import_rows(ds["id"], "".join(f"s3://b/{i}.jpg\n" for i in range(300)))

    def breaks() -> None:
        raise RuntimeError("the database went away")

    _pause_after(monkeypatch, 150, breaks)
    got: list[bytes] = []
    with (
        pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"),
        httpx.Client(headers=tenant.headers, timeout=30) as client,
        client.stream("GET", f"{live}/datasets/{ds['id']}/export") as r,
    ):
        assert r.status_code == 200
        promised = int(r.headers["x-tether-export-rows"])
        got.extend(r.iter_lines())
    assert promised == 300 and 0 < len([g for g in got if g]) < promised


def test_a_client_that_leaves_mid_export_ends_the_snapshot(
    tenant: Tenant, app: Any, live: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export's connection (and its read transaction) goes back to the pool when the
    client hangs up part way: no snapshot is left open to hold back the database."""
    from tether.catalog import export as export_module

    monkeypatch.setattr(export_module, "BATCH_ROWS", 50)
    ds = tenant.dataset()
    tenant.import_rows(ds["id"], "".join(f"s3://b/{i}.jpg\n" for i in range(2000)))
    engine = app.state.engine  # the server's own
    idle = engine.pool.checkedout()
    with (
        httpx.Client(headers=tenant.headers, timeout=30) as client,
        client.stream("GET", f"{live}/datasets/{ds['id']}/export") as r,
    ):
        next(r.iter_raw(100))
        assert engine.pool.checkedout() == idle + 1
    deadline = time.monotonic() + 20
    while engine.pool.checkedout() > idle and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.pool.checkedout() == idle
