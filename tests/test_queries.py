"""Catalog queries (issue 6): every filter returns exactly the rows a plain Python filter picks,
pages never skip or repeat a row while rows are inserted, and other organizations' rows never
show. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant, make_tenant
from tether.db.engine import refresh_statistics
from tether.db.migrate import upgrade
from tether.db.tables import data_rows

START = datetime(2024, 1, 1, tzinfo=UTC)
TAGS = [f"tag-{i:03d}" for i in range(40)] + ["night rain", "100% sure", "snow_a"]


def _rows(rng: random.Random, prefix: str, count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        ext = rng.choice(["jpg", "mp4", "txt"])
        meta = [{"name": "split", "value": rng.choice(["train", "valid", "test"])}]
        if rng.random() < 0.9:
            meta.append({"name": "tag", "value": rng.choice(TAGS)})
        if rng.random() < 0.8:
            moment = START + timedelta(hours=rng.randrange(24 * 365))
            meta.append({"name": "captureDateTime", "value": moment.isoformat()})
        if rng.random() < 0.8:
            meta.append({"name": "score", "value": rng.randrange(0, 1000) / 10})
        rows.append(
            {
                "row_data": f"s3://bucket/{prefix}/{i}.{ext}",
                "global_key": f"{prefix}-{i:04d}" if rng.random() < 0.9 else None,
                "external_id": f"ext-{rng.randrange(30)}",
                "metadata_fields": meta,
            }
        )
    return rows


def _ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


@pytest.fixture(scope="module")
def world(engine: Any, http: Any) -> dict[str, Any]:
    """Two organizations: two datasets in one, one in the other; 450 rows with metadata.
    Built once per module (and backend); tests only read it."""
    tenant, other_tenant = make_tenant(engine, http), make_tenant(engine, http)
    rng = random.Random(1234)
    for t in (tenant, other_tenant):
        r = t.post("/metadata-schema", json={"name": "score", "kind": "number"})
        assert r.status_code == 201, r.text
    datasets = [tenant.dataset("a"), tenant.dataset("b")]
    foreign = other_tenant.dataset("a")
    for ds, prefix, n in ((datasets[0], "a", 200), (datasets[1], "b", 150)):
        job = tenant.import_rows(ds["id"], _ndjson(_rows(rng, prefix, n)))
        assert job["counts"]["created"] == n, job
    job = other_tenant.import_rows(foreign["id"], _ndjson(_rows(rng, "a", 100)))
    assert job["counts"]["created"] == 100
    every = _all(tenant, {})
    assert len(every) == 350
    return {"datasets": datasets, "rows": every, "tenant": tenant, "other": other_tenant}


@pytest.fixture
def catalog(world: dict[str, Any]) -> dict[str, Any]:
    return world


def _all(t: Tenant, params: dict[str, Any], limit: int = 37) -> list[dict[str, Any]]:
    """Every page of a listing, checking the cursor neither skips nor repeats."""
    out: list[dict[str, Any]] = []
    after = None
    while True:
        query = {**params, "limit": limit, **({"after": after} if after else {})}
        r = t.get("/data-rows", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["items"]
        after = page["next_cursor"]
        if after is None:
            break
    ids = [row["id"] for row in out]
    assert ids == sorted(set(ids)), "pages must be in creation order without repeats"
    return out


def _meta(row: dict[str, Any], name: str) -> Any:
    return next((m["value"] for m in row["metadata_fields"] if m["name"] == name), None)


def _epoch(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


WEEK = (datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 11, tzinfo=UTC))
CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("everything", {}, lambda r, ds: True),
    ("media type", {"media_type": "VIDEO"}, lambda r, ds: r["media_type"] == "VIDEO"),
    ("split eq", {"metadata": ["split:eq:valid"]}, lambda r, ds: _meta(r, "split") == "valid"),
    ("tag eq", {"metadata": ["tag:eq:tag-007"]}, lambda r, ds: _meta(r, "tag") == "tag-007"),
    ("tag contains", {"tag_contains": "-00"}, lambda r, ds: "-00" in (_meta(r, "tag") or "")),
    ("tag contains %", {"tag_contains": "0%"}, lambda r, ds: "0%" in (_meta(r, "tag") or "")),
    ("tag contains _", {"tag_contains": "w_a"}, lambda r, ds: "w_a" in (_meta(r, "tag") or "")),
    (
        "week",
        {
            "metadata": [
                f"captureDateTime:gte:{WEEK[0].isoformat()}",
                f"captureDateTime:lt:{WEEK[1].isoformat()}",
            ]
        },
        lambda r, ds: (
            (e := _epoch(_meta(r, "captureDateTime"))) is not None
            and WEEK[0].timestamp() <= e < WEEK[1].timestamp()
        ),
    ),
    (
        "score range + media",
        {"metadata": ["score:gt:20", "score:lte:45.5"], "media_type": "IMAGE"},
        lambda r, ds: (
            r["media_type"] == "IMAGE" and (s := _meta(r, "score")) is not None and 20 < s <= 45.5
        ),
    ),
    (
        "split and tag",
        {"metadata": ["split:eq:train"], "tag_contains": "tag-01"},
        lambda r, ds: _meta(r, "split") == "train" and "tag-01" in (_meta(r, "tag") or ""),
    ),
    ("external id", {"external_id": "ext-7"}, lambda r, ds: r["external_id"] == "ext-7"),
    (
        "global key prefix",
        {"global_key_prefix": "a-01"},
        lambda r, ds: (r["global_key"] or "").startswith("a-01"),
    ),
]


@pytest.mark.parametrize("scoped", [True, False], ids=["dataset", "organization"])
@pytest.mark.parametrize(("name", "params", "pick"), CASES, ids=[c[0] for c in CASES])
def test_filter_matches_python(
    catalog: dict[str, Any],
    scoped: bool,
    name: str,
    params: dict[str, Any],
    pick: Any,
) -> None:
    tenant = catalog["tenant"]
    dataset_id = catalog["datasets"][0]["id"]
    query = {**params, **({"dataset_id": dataset_id} if scoped else {})}
    expected = [
        r["id"]
        for r in catalog["rows"]
        if pick(r, dataset_id) and (not scoped or r["dataset_id"] == dataset_id)
    ]
    got = [r["id"] for r in _all(tenant, query)]
    assert got == expected
    assert expected or name in ("tag contains %",), f"{name} should match some rows"
    count = tenant.get("/data-rows/count", params=query).json()
    assert count == {"count": len(expected), "exact": True}


def test_contains_without_a_match_is_empty(catalog: dict[str, Any]) -> None:
    tenant = catalog["tenant"]
    assert _all(tenant, {"tag_contains": "no such tag"}) == []
    assert tenant.get("/data-rows/count", params={"tag_contains": "zzz"}).json()["count"] == 0


def test_created_range(tenant: Tenant) -> None:
    ds = tenant.dataset()
    tenant.import_rows(ds["id"], _ndjson([{"row_data": f"s3://b/old{i}.jpg"} for i in range(5)]))
    middle = datetime.now(UTC)
    tenant.import_rows(ds["id"], _ndjson([{"row_data": f"s3://b/new{i}.jpg"} for i in range(7)]))
    newer = _all(tenant, {"dataset_id": ds["id"], "created_after": middle.isoformat()})
    older = _all(tenant, {"dataset_id": ds["id"], "created_before": middle.isoformat()})
    assert [r["row_data"] for r in newer] == [f"s3://b/new{i}.jpg" for i in range(7)]
    assert [r["row_data"] for r in older] == [f"s3://b/old{i}.jpg" for i in range(5)]


def test_other_organization_never_shows(
    catalog: dict[str, Any],
) -> None:
    tenant, other_tenant = catalog["tenant"], catalog["other"]
    mine = {r["id"] for r in catalog["rows"]}
    theirs = {r["id"] for r in _all(other_tenant, {})}
    assert len(theirs) == 100 and not mine & theirs
    for params in (
        {"metadata": ["split:eq:valid"]},
        {"tag_contains": "tag"},
        {"global_key_prefix": "a-"},
        {"external_id": "ext-1"},
    ):
        assert {r["id"] for r in _all(other_tenant, params)} <= theirs
        assert {r["id"] for r in _all(tenant, params)} <= mine
    dataset_id = catalog["datasets"][0]["id"]
    assert _all(other_tenant, {"dataset_id": dataset_id}) == []
    assert other_tenant.get("/data-rows/count", params={"dataset_id": dataset_id}).json() == {
        "count": 0,
        "exact": True,
    }


@pytest.mark.parametrize(
    "params",
    [{}, {"metadata": ["split:eq:valid"]}, {"tag_contains": "t"}],
    ids=["plain", "metadata", "contains"],
)
def test_cursor_is_stable_while_rows_arrive(tenant: Tenant, params: dict[str, Any]) -> None:
    ds = tenant.dataset()
    rng = random.Random(5)

    def batch(prefix: str) -> bytes:
        return _ndjson(
            [
                {
                    "row_data": f"s3://b/{prefix}{i}.jpg",
                    "metadata_fields": [
                        {"name": "split", "value": "valid"},
                        {"name": "tag", "value": "t1"},
                    ],
                }
                for i in range(rng.randrange(3, 9))
            ]
        )

    tenant.import_rows(ds["id"], batch("first"))
    tenant.import_rows(ds["id"], batch("second"))
    before = [r["id"] for r in _all(tenant, {"dataset_id": ds["id"], **params})]
    seen: list[int] = []
    after = None
    for round_ in range(100):
        query = {
            "dataset_id": ds["id"],
            "limit": 3,
            **params,
            **({"after": after} if after else {}),
        }
        page = tenant.get("/data-rows", params=query).json()
        seen += [r["id"] for r in page["items"]]
        after = page["next_cursor"]
        if after is None:
            break
        if round_ < 4:
            tenant.import_rows(ds["id"], batch(f"during{round_}-"))
    assert len(seen) == len(set(seen)), "a row came twice"
    assert set(before) <= set(seen), "a row that existed before was skipped"
    assert seen == sorted(seen)


def test_bad_filters_are_clear_errors(catalog: dict[str, Any]) -> None:
    tenant = catalog["tenant"]
    cases = {
        "nosuch:eq:1": "unknown metadata field 'nosuch'",
        "split:gte:a": "'gte' needs a number or datetime field",
        "split:eq:sometimes": "is not one of",
        "score:eq:lots": "is not a number",
        "captureDateTime:gte:yesterday": "ISO 8601",
        "split:like:x": "unknown filter 'like'",
        "split": "is not FIELD:OP:VALUE",
    }
    for spec, message in cases.items():
        r = tenant.get("/data-rows", params={"metadata": spec})
        assert r.status_code == 422, (spec, r.text)
        assert message in r.json()["error"]["message"], (spec, r.json())


def test_postgres_count_falls_back_to_an_estimate(
    tenant: Tenant, engine: Any, backend: str
) -> None:
    """Where an exact count would overrun its budget, PostgreSQL answers with the planner's
    estimate, marked as such."""
    from tether.catalog import queries as service

    if backend != "postgresql":
        pytest.skip("SQLite counts are always exact")
    ds = tenant.dataset()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO data_rows (id, org_id, dataset_id, media_type, row_data, created_at, "
            "updated_at) SELECT 900000000 + g, %(org)s, %(ds)s, 'IMAGE', '\"x\"', now(), now() "
            "FROM generate_series(1, 300000) g",
            {"org": tenant.org_id, "ds": ds["id"]},
        )
        conn.exec_driver_sql("ANALYZE data_rows")
    flt = service.RowFilter(dataset_id=ds["id"])
    with engine.begin() as conn:
        assert service.count(conn, tenant.org_id, flt) == (300000, True)
        estimate, exact = service.count(conn, tenant.org_id, flt, budget_ms=1)
        assert exact is False
        assert 150000 < estimate < 600000
        assert service.page(conn, tenant.org_id, flt, limit=2)[0][0]["id"] == 900000001
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM data_rows WHERE dataset_id = %(ds)s", {"ds": ds["id"]})


def test_migrate_keeps_rows(catalog: dict[str, Any], engine: Any) -> None:
    tenant = catalog["tenant"]
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(data_rows)).scalar_one()
    upgrade(engine)
    with engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(data_rows)).scalar_one()
    assert after == before >= 350
    assert len(_all(tenant, {})) == 350


# --- every combination of filters is an index search (issue 12.14) ------------------------

ATOMS: dict[str, dict[str, Any]] = {
    "global_key": {"global_key": "a-0101"},
    "external_id": {"external_id": "ext-7"},
    "global_key_prefix": {"global_key_prefix": "a-01"},
    "media_type": {"media_type": "VIDEO"},
    "created": {"created_after": START, "created_before": START + timedelta(days=1)},
    "split": {"metadata": [("split", "eq", "valid")]},
    "score": {"metadata": [("score", "gt", 20), ("score", "lte", 45.5)]},
    "tag contains": {"metadata": [("tag", "contains", "-00")]},
}
TABLES = ("data_rows", "data_row_metadata", "metadata_values", "m0")


def _combinations() -> list[tuple[str, ...]]:
    names = list(ATOMS)
    return [
        tuple(n for i, n in enumerate(names) if mask >> i & 1) for mask in range(2 ** len(names))
    ]


def _flt(service: Any, atoms: tuple[str, ...], dataset_id: int | None) -> Any:
    fields: dict[str, Any] = {"dataset_id": dataset_id, "metadata": []}
    for atom in atoms:
        for key, value in ATOMS[atom].items():
            if key == "metadata":
                fields["metadata"] += [service.MetadataFilter(*spec) for spec in value]
            else:
                fields[key] = value
    return service.RowFilter(**fields)


METADATA_ATOMS = ("split", "score", "tag contains")


def _index_of(atom: str, scoped: bool) -> str:
    scope = "dataset" if scoped else "org"
    return {
        "global_key": "uq_data_rows_org_global_key",
        "external_id": "ix_data_rows_org_external_id",
        "global_key_prefix": "uq_data_rows_org_global_key",
        "created": f"ix_data_rows_{scope}_created_id",
        "media_type": f"ix_data_rows_{scope}_media_type_id",
        "split": f"ix_data_row_metadata_{scope}_text",
        "tag contains": f"ix_data_row_metadata_{scope}_text",
        "score": f"ix_data_row_metadata_{scope}_num",
        "scope": f"ix_data_rows_{scope}_id_id",
    }[atom]


def _expected_index(atoms: tuple[str, ...], scoped: bool, counts: dict[str, int] | None) -> str:
    """The index that must drive. A global key, then an external id, always does. With
    metadata, the one of key prefix, created range and metadata fields that holds the fewest
    rows (``counts``; None: each holds too many to count, and the first field of one text
    value drives, else the first field); without, the prefix, the created range, the media
    type, the scope."""
    for atom in ("global_key", "external_id"):
        if atom in atoms:
            return _index_of(atom, scoped)
    meta = [a for a in atoms if a in METADATA_ATOMS]
    if meta and counts is None:
        return _index_of("split" if "split" in meta else meta[0], scoped)
    if meta:
        candidates = [a for a in ("global_key_prefix", "created") if a in atoms] + meta
        fewest = min(candidates, key=lambda a: (counts[a], candidates.index(a)))  # type: ignore[index]
        return _index_of(fewest, scoped)
    first = next((a for a in ("global_key_prefix", "created", "media_type") if a in atoms), None)
    return _index_of(first or "scope", scoped)


def _sqlite_plan(conn: Any, query: Any) -> list[str]:
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup or [])
    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params).all()
    return [r[-1] for r in rows]


def _pg_plan(conn: Any, query: Any) -> dict[str, Any]:
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params)
    return plan.scalar_one()[0]["Plan"]  # type: ignore[no-any-return]


def _pg_scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node that reads a table or an index, outer side first."""
    if "Relation Name" in node or node["Node Type"] == "Bitmap Index Scan":
        yield node
    for child in node.get("Plans", []):
        yield from _pg_scans(child)


def _sqlite_problems(lines: list[str], expected: str | None) -> list[str]:
    problems = [
        line for line in lines if line.startswith("SCAN ") and line.split()[1].startswith(TABLES)
    ]
    if expected is not None:
        reads = [line for line in lines if line.startswith(("SEARCH ", "SCAN "))]
        unique = expected.replace("uq_data_rows_org_global_key", "sqlite_autoindex_data_rows_1")
        if not reads or not any(name + " (" in reads[0] for name in (expected, unique)):
            problems.append(f"driven by {reads[:1]}, not {expected}")
    return problems


def _pg_problems(plan: dict[str, Any], expected: str | None) -> list[str]:
    """As ``_sqlite_problems``; ``expected`` is the index that must be among those searched."""
    problems = []
    used = []
    for node in _pg_scans(plan):
        kind = node["Node Type"]
        if kind == "Bitmap Heap Scan":
            continue  # its Bitmap Index Scan child is checked
        if kind not in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
            problems.append(f"{kind} on {node.get('Relation Name')}")
        elif "Index Cond" not in node:
            problems.append(f"{kind} using {node['Index Name']} without a condition")
        else:
            used.append(node["Index Name"])
    if expected is not None and expected not in used:
        problems.append(f"{expected} unused: {used}")
    return problems


@pytest.mark.parametrize(
    ("scoped", "narrow"),
    [(True, True), (False, True), (True, False)],
    ids=["dataset", "organization", "dataset, wide ranges"],
)
def test_every_combination_of_filters_is_an_index_search(
    catalog: dict[str, Any],
    engine: Any,
    backend: str,
    scoped: bool,
    narrow: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pages (the ids of the first, a later one whole) and counts, for all 256 combinations of
    the filters: no plan reads data_rows or the metadata values whole (SQLite: no SCAN;
    PostgreSQL, told to avoid sequential scans: every scan has an index condition), and the
    most selective filter's index is the one searched (SQLite: first). The test's rows are
    few, so each filter is counted to choose the driver; the third run makes them all too
    wide to count."""
    from tether.catalog import queries as service

    tenant = catalog["tenant"]
    dataset_id = catalog["datasets"][0]["id"] if scoped else None
    if not narrow:  # as if every prefix, created range and field held too many rows
        monkeypatch.setattr(service, "PROBE_ROWS", 0)
    in_scope = [r for r in catalog["rows"] if r["dataset_id"] == (dataset_id or r["dataset_id"])]
    picks = _picks((START, START + timedelta(days=1)))  # the created range of ATOMS
    counts = {a: sum(1 for r in in_scope if picks[a](r)) for a in ATOMS} if narrow else None
    failures: dict[str, list[str]] = {}
    refresh_statistics(engine)  # as every import leaves them (SQLite plans by them)
    with engine.connect() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
        else:
            # The session's database holds every other test's rows too, and sampled statistics
            # of a small, mixed table can make a scan the cheapest plan there. This
            # connection plans without statistics (undone by the rollback at the end), so
            # what is checked is the query's shape, whatever else the database holds.
            conn.exec_driver_sql("DELETE FROM sqlite_stat1")
            conn.exec_driver_sql("ANALYZE sqlite_schema")
        for atoms in _combinations():
            if not narrow and not set(atoms) & set(METADATA_ATOMS):
                continue  # the same query as in the other runs
            flt = _flt(service, atoms, dataset_id)
            expected = _expected_index(atoms, scoped, counts)
            # Where only the scope, a media type or a created range is left, PostgreSQL
            # weighs by its statistics whether to search their index or to read the scope's
            # rows in id order (the better plan for a wide range): any index search will do.
            pg_expected = expected if set(atoms) - {"media_type", "created"} else None
            statements = {
                "ids": (service.page_ids_query(conn, tenant.org_id, flt, None, 101), expected),
                "next page": (service.page_query(conn, tenant.org_id, flt, 100, 101), None),
                "count": (service.count_query(conn, tenant.org_id, flt)[0], None),
            }
            for what, (query, index) in statements.items():
                if backend == "sqlite":
                    problems = _sqlite_problems(_sqlite_plan(conn, query), index)
                else:
                    problems = _pg_problems(_pg_plan(conn, query), index and pg_expected)
                if problems:
                    failures[f"{'+'.join(atoms) or 'nothing'} ({what})"] = problems
        conn.rollback()
    assert not failures, "\n".join(f"{k}: {v}" for k, v in list(failures.items())[:20])


def _picks(created: tuple[datetime, datetime]) -> dict[str, Any]:
    """Each atom as a plain Python test of a row, as the API shows it."""

    def between(row: dict[str, Any], low: float, high: float) -> bool:
        return (s := _meta(row, "score")) is not None and low < s <= high

    return {
        "global_key": lambda r: r["global_key"] == ATOMS["global_key"]["global_key"],
        "external_id": lambda r: r["external_id"] == "ext-7",
        "global_key_prefix": lambda r: (r["global_key"] or "").startswith("a-01"),
        "media_type": lambda r: r["media_type"] == "VIDEO",
        "created": lambda r: created[0] <= datetime.fromisoformat(r["created_at"]) < created[1],
        "split": lambda r: _meta(r, "split") == "valid",
        "score": lambda r: between(r, 20, 45.5),
        "tag contains": lambda r: "-00" in (_meta(r, "tag") or ""),
    }


@pytest.mark.parametrize("scoped", [True, False], ids=["dataset", "organization"])
def test_every_combination_of_filters_matches_python(
    catalog: dict[str, Any], engine: Any, scoped: bool
) -> None:
    """The same 256 combinations return exactly the rows a plain Python filter picks, and
    count them exactly (the created range cuts the rows of the three imports)."""
    from tether.catalog import queries as service

    tenant, rows = catalog["tenant"], catalog["rows"]
    moments = sorted(datetime.fromisoformat(r["created_at"]) for r in rows)
    created = (moments[len(moments) // 3], moments[2 * len(moments) // 3])
    picks = _picks(created)
    dataset_id = catalog["datasets"][0]["id"] if scoped else None
    wrong, answered = [], 0
    with engine.connect() as conn:
        for atoms in _combinations():
            flt = _flt(service, atoms, dataset_id)
            if "created" in atoms:
                flt.created_after, flt.created_before = created
            expected = [
                r["id"]
                for r in rows
                if all(picks[a](r) for a in atoms)
                and r["dataset_id"] == (dataset_id or r["dataset_id"])
            ]
            got = [r["id"] for r in service.page(conn, tenant.org_id, flt, None, 1000)[0]]
            counted = service.count(conn, tenant.org_id, flt)
            answered += bool(expected)
            if got != expected or counted != (len(expected), True):
                wrong.append(f"{'+'.join(atoms)}: {got[:5]} / {counted} != {expected[:5]}")
    assert not wrong, "\n".join(wrong[:10])
    assert answered > 60, "most combinations of the broad filters should match rows"


# --- many filters (issue 12.8) ------------------------------------------------------------

MANY = 50  # what the API accepts (it answers 422 past that)


@pytest.fixture(scope="module")
def wide(engine: Any, http: Any) -> dict[str, Any]:
    """Rows with 47 string fields and a number: rows 0-9 hold "yes" in every field, row 10+k
    holds "no" in field k."""
    tenant = make_tenant(engine, http)
    names = [f"f{k:02d}" for k in range(MANY - 3)]
    for name in names:
        assert tenant.post("/metadata-schema", json={"name": name, "kind": "string"}).is_success
    assert tenant.post("/metadata-schema", json={"name": "n", "kind": "number"}).is_success
    rows = []
    for i in range(10 + len(names)):
        fields = [
            {"name": nm, "value": "no" if i - 10 == k else "yes"} for k, nm in enumerate(names)
        ]
        fields += [{"name": "split", "value": "train"}, {"name": "tag", "value": f"t{i % 3}"}]
        fields.append({"name": "n", "value": i})
        rows.append({"row_data": f"s3://b/wide/{i}.jpg", "metadata_fields": fields})
    ds = tenant.dataset()
    job = tenant.import_rows(ds["id"], _ndjson(rows))
    assert job["counts"]["created"] == len(rows), job
    ids = [r["id"] for r in _all(tenant, {"dataset_id": ds["id"]})]
    return {"tenant": tenant, "names": names, "ids": ids, "dataset_id": ds["id"]}


def _many_cases(names: list[str], ids: list[int]) -> list[tuple[str, list[str], list[int]]]:
    every_field = [f"{nm}:eq:yes" for nm in names] + ["split:eq:train", "tag:contains:t", "n:gte:0"]
    bounds = [f"n:gt:{k}" for k in range(MANY // 2)] + [f"n:lte:{40 + k}" for k in range(MANY // 2)]
    return [
        ("50 fields", every_field, ids[:10]),
        ("one field 50 times", ["tag:eq:t1"] * 25 + ["tag:contains:t"] * 25, ids[1::3]),
        ("50 ends of one range", bounds, ids[25:41]),
        ("50 different values of one field", [f"tag:eq:t{k}" for k in range(MANY)], []),
        (
            "50 contains",
            [f"f{k:02d}:contains:{'yes'[k % 3 :]}" for k in range(MANY - 3)]
            + ["tag:contains:t", "tag:contains:1", "n:lt:99"],
            ids[1:10:3],
        ),
    ]


@pytest.mark.parametrize("scoped", [True, False], ids=["dataset", "organization"])
def test_fifty_filters_answer_exactly(wide: dict[str, Any], scoped: bool) -> None:
    tenant, ids = wide["tenant"], wide["ids"]
    scope = {"dataset_id": wide["dataset_id"]} if scoped else {}
    for name, specs, expected in _many_cases(wide["names"], ids):
        assert len(specs) == MANY, name
        got = [r["id"] for r in _all(tenant, {**scope, "metadata": specs}, limit=7)]
        assert got == expected, name
        count = tenant.get("/data-rows/count", params={**scope, "metadata": specs})
        assert count.json() == {"count": len(expected), "exact": True}, name
        pair = [*specs[: MANY // 2 - 1], "nosuch:eq:1"]  # still a clear error, not a 500
        assert tenant.get("/data-rows", params={**scope, "metadata": pair}).status_code == 422


def test_hundreds_of_repeated_filters_still_build(
    wide: dict[str, Any], engine: Any, backend: str
) -> None:
    """Past the API's limit the query builder still makes one condition a field (the API
    refuses such requests; jobs and the CLI may call the service directly)."""
    from tether.catalog import queries as service

    tenant, ids = wide["tenant"], wide["ids"]
    specs = [service.MetadataFilter("tag", "eq", "t1")] * 450
    specs += [service.MetadataFilter(nm, "eq", "yes") for nm in wide["names"]]
    specs += [service.MetadataFilter("n", "lt", 100 + k) for k in range(450)]
    flt = service.RowFilter(metadata=specs)
    with engine.connect() as conn:
        rows, _cursor = service.page(conn, tenant.org_id, flt, None, 1000)
        assert [r["id"] for r in rows] == ids[1:10:3]
        assert service.count(conn, tenant.org_id, flt) == (3, True)
    refresh_statistics(engine)
    with engine.connect() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
        for query in (
            service.page_query(conn, tenant.org_id, flt, None, 101),
            service.count_query(conn, tenant.org_id, flt)[0],
        ):
            if backend == "sqlite":
                assert _sqlite_problems(_sqlite_plan(conn, query), None) == []
            else:
                assert _pg_problems(_pg_plan(conn, query), None) == []
        conn.rollback()
