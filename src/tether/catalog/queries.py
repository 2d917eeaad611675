"""Reading data rows: filtered keyset pages, counts, lookups by id and global key, and
iteration (writes live in ``catalog.data_rows``, bulk creation in ``imports``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Select, bindparam, exists, func, select, text
from sqlalchemy.exc import OperationalError

from tether.catalog import datasets
from tether.catalog.metadata_schema import Field, coerce, load_schema
from tether.db.tables import data_row_metadata, data_rows, metadata_values
from tether.db.tables import datasets as datasets_table
from tether.errors import Invalid, NotFound
from tether.timeutil import iso

MAX_PAGE = 1000
MAX_LOOKUP = 10_000
COUNT_BUDGET_MS = 400
OPS = ("eq", "gt", "gte", "lt", "lte", "contains")
HIDDEN = ("org_id", "extra", "metadata")
# Keys the API may add to a row (``resolved``, with resolve=true): never taken from ``extra``.
RESERVED_KEYS = frozenset({"resolved"})


@dataclass
class MetadataFilter:
    field: str  # name or schema id
    op: str
    value: Any


@dataclass
class RowFilter:
    dataset_id: int | None = None
    media_type: str | None = None
    external_id: str | None = None
    global_key: str | None = None
    global_key_prefix: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: list[MetadataFilter] = field(default_factory=list)


def to_public(row: Any, names: dict[str, str] | None = None) -> dict[str, Any]:
    """A stored row as users see it, and as export writes it (import reads it back).
    ``names`` maps metadata schema ids to their current names (fields can be renamed)."""
    out: dict[str, Any] = {
        "id": row.id,
        "dataset_id": row.dataset_id,
        "global_key": row.global_key,
        "external_id": row.external_id,
        "media_type": row.media_type,
        "row_data": orjson.loads(row.row_data),
        "media_attributes": orjson.loads(row.media_attributes) if row.media_attributes else {},
        "metadata_fields": _current_names(orjson.loads(row.metadata), names)
        if row.metadata
        else [],
        "attachments": orjson.loads(row.attachments) if row.attachments else [],
    }
    tail = {
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
    if row.extra:  # what the source file had besides tether's fields; never shadows them
        own = out.keys() | tail.keys() | RESERVED_KEYS
        out.update((k, v) for k, v in orjson.loads(row.extra).items() if k not in own)
    out.update(tail)
    return out


def _current_names(fields: list[dict[str, Any]], names: dict[str, str] | None) -> Any:
    if names:
        for entry in fields:
            entry["name"] = names.get(entry["schema_id"], entry["name"])
    return fields


def field_names(conn: Connection, org_id: int) -> dict[str, str]:
    return {f.id: f.name for f in load_schema(conn, org_id).fields}


# Built once: composing it costs more than the lookup by primary key itself.
_ONE_ROW = select(data_rows).where(
    data_rows.c.org_id == bindparam("org_id"), data_rows.c.id == bindparam("row_id")
)


def get(conn: Connection, org_id: int, row_id: int) -> dict[str, Any]:
    row = conn.execute(_ONE_ROW, {"org_id": org_id, "row_id": row_id}).first()
    if row is None:
        raise NotFound(f"no data row {row_id}")
    return to_public(row, field_names(conn, org_id) if row.metadata else None)


def ids_for_global_keys(conn: Connection, org_id: int, keys: list[str]) -> list[dict[str, Any]]:
    """One result per key, in the order given: its data row id, or null when not found."""
    if len(keys) > MAX_LOOKUP:
        raise Invalid(f"at most {MAX_LOOKUP} global keys per call")
    found: dict[str, int] = {}
    wanted = [k for k in dict.fromkeys(keys) if isinstance(k, str)]
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        found.update(
            (key, row_id)
            for key, row_id in conn.execute(
                select(data_rows.c.global_key, data_rows.c.id).where(
                    data_rows.c.org_id == org_id, data_rows.c.global_key.in_(chunk)
                )
            )
        )
    return [{"global_key": k, "data_row_id": found.get(k)} for k in keys]


class _Empty(Exception):
    """A filter that no row can match (a "contains" no stored value has, two different
    values asked of one field)."""


Empty = _Empty  # what callers of ``page_ids_query`` and ``row_checks`` catch


# Past this many matching values a "contains" filter is sent as a subquery, not a list
# (SQLite takes at most 32,766 parameters in one statement).
CONTAINS_LIST_LIMIT = 500


@dataclass
class _FieldTest:
    """Every filter on one metadata field, reduced to one condition: the text values it may
    hold (eq and contains intersected), or one number interval (eq and range ends)."""

    of: Field
    texts: set[str] | None = None
    containing: list[str] = field(default_factory=list)  # parts too common to list
    low: tuple[float, bool] | None = None  # (bound, inclusive)
    high: tuple[float, bool] | None = None

    @property
    def ordered(self) -> bool:
        """Its index reads matching rows in id order (one text value, nothing else)."""
        return self.texts is not None and len(self.texts) == 1 and not self.containing


def _field_tests(conn: Connection, org_id: int, filters: list[MetadataFilter]) -> list[_FieldTest]:
    """One test per filtered field, in the order the fields were first named. However many
    filters are given, each field costs one small condition."""
    if not filters:
        return []
    schema = load_schema(conn, org_id)
    tests: dict[str, _FieldTest] = {}
    for mf in filters:
        f = schema.resolve(mf.field, mf.field)
        if f is None:
            raise Invalid(f"unknown metadata field {mf.field!r}")
        if f.kind == "embedding":
            raise Invalid("embedding fields cannot be filtered on")
        _narrow(conn, org_id, tests.setdefault(f.id, _FieldTest(f)), mf)
    for test in tests.values():
        if test.texts is not None and not test.texts:
            raise _Empty()
        if test.low and test.high and not _overlap(test.low, test.high):
            raise _Empty()
    return list(tests.values())


def _narrow(conn: Connection, org_id: int, test: _FieldTest, mf: MetadataFilter) -> None:
    """Add one filter to its field's test."""
    f = test.of
    if mf.op not in OPS:
        raise Invalid(f"unknown filter {mf.op!r}; expected one of {', '.join(OPS)}")
    if mf.op == "contains":
        if f.kind != "string":
            raise Invalid(f"'contains' works on string fields; {f.name!r} is a {f.kind}")
        values = _values_containing(conn, org_id, f.key, str(mf.value))
        if values is None:
            test.containing.append(str(mf.value))
        else:
            test.texts = values if test.texts is None else test.texts & values
        return
    if mf.op != "eq" and f.kind in ("string", "enum"):
        raise Invalid(f"{mf.op!r} needs a number or datetime field; {f.name!r} is a {f.kind}")
    try:
        _json, value_text, number = coerce(f, mf.value)
    except ValueError as exc:
        raise Invalid(f"filter on {f.name!r}: {exc}") from None
    if value_text is not None:
        test.texts = {value_text} if test.texts is None else test.texts & {value_text}
        return
    assert number is not None
    if mf.op in ("eq", "gt", "gte"):
        test.low = _tighter(test.low, (number, mf.op != "gt"), 1)
    if mf.op in ("eq", "lt", "lte"):
        test.high = _tighter(test.high, (number, mf.op != "lt"), -1)


def _tighter(
    bound: tuple[float, bool] | None, new: tuple[float, bool], side: int
) -> tuple[float, bool]:
    """The stricter of two lower (``side`` 1) or upper (-1) bounds."""
    if bound is None or new[0] * side > bound[0] * side:
        return new
    if new[0] == bound[0]:
        return (new[0], new[1] and bound[1])
    return bound


def _overlap(low: tuple[float, bool], high: tuple[float, bool]) -> bool:
    return low[0] < high[0] or (low[0] == high[0] and low[1] and high[1])


def _values_containing(conn: Connection, org_id: int, field_key: int, part: str) -> set[str] | None:
    """The field's stored text values holding ``part``; None when there are too many to
    list (the query then looks them up itself, ``_containing``)."""
    found = conn.execute(
        _containing(conn, org_id, field_key, part).limit(CONTAINS_LIST_LIMIT + 1)
    ).scalars()
    values = set(found)
    return None if len(values) > CONTAINS_LIST_LIMIT else values


def _containing(conn: Connection, org_id: int, field_key: int, part: str) -> Select[Any]:
    return select(metadata_values.c.value_text).where(
        metadata_values.c.org_id == org_id,
        metadata_values.c.field_key == field_key,
        _position(conn, metadata_values.c.value_text, part) > 0,
    )


def _position(conn: Connection, column: Any, part: str) -> Any:
    """Where ``part`` starts in ``column`` (0: nowhere), case-sensitive on both databases
    (SQLite's LIKE ignores ASCII case, PostgreSQL's does not)."""
    if conn.dialect.name == "sqlite":
        return func.instr(column, part)
    return func.strpos(column, part)


def _field_condition(conn: Connection, org_id: int, test: _FieldTest, m: Any) -> list[Any]:
    conds: list[Any] = [m.c.field_key == test.of.key]
    if test.texts is not None:
        texts = sorted(test.texts)
        conds.append(m.c.value_text == texts[0] if len(texts) == 1 else m.c.value_text.in_(texts))
    for part in test.containing:
        conds.append(m.c.value_text.in_(_containing(conn, org_id, test.of.key, part)))
    if test.low is not None and test.low == test.high:
        conds.append(m.c.value_num == test.low[0])
        return conds
    if test.low is not None:
        conds.append(m.c.value_num >= test.low[0] if test.low[1] else m.c.value_num > test.low[0])
    if test.high is not None:
        conds.append(
            m.c.value_num <= test.high[0] if test.high[1] else m.c.value_num < test.high[0]
        )
    return conds


def _scope(table: Any, org_id: int, flt: RowFilter) -> Any:
    if flt.dataset_id is not None:
        return table.c.dataset_id == flt.dataset_id
    return table.c.org_id == org_id


# What drives a query, most selective first: the one condition whose index is searched; every
# other condition is checked on the rows it finds. Among a key prefix, a created range and
# the metadata fields, the one holding the fewest rows drives, when one holds fewer than
# PROBE_ROWS (each counted first, up to that many; the first PROBED_FIELDS fields only);
# else the first field with one text value (its index is in id order), else the first field.
DRIVERS = ("global_key", "external_id", "global_key_prefix", "metadata", "created", "media_type")
PROBE_ROWS = 5000
PROBED_FIELDS = 8


def driver(
    conn: Connection, org_id: int, flt: RowFilter, tests: list[_FieldTest]
) -> tuple[str, _FieldTest | None]:
    """The filter whose index a query searches ("scope": the dataset's or organization's),
    and the metadata field when that is the driver."""
    given = {
        "global_key": flt.global_key is not None,
        "external_id": flt.external_id is not None,
        "global_key_prefix": bool(flt.global_key_prefix),
        "metadata": bool(tests),
        "created": flt.created_after is not None or flt.created_before is not None,
        "media_type": bool(flt.media_type),
    }
    first = next((name for name in DRIVERS if given[name]), "scope")
    if first in ("global_key", "external_id") or not tests:
        return first, None
    counted: list[tuple[int, int, str, _FieldTest | None]] = []
    for name in ("global_key_prefix", "created"):
        if given[name]:
            counted.append((_capped_count(conn, org_id, flt, name), len(counted), name, None))
    for test in tests[:PROBED_FIELDS]:
        ids = _metadata_ids(conn, org_id, flt, test, data_row_metadata.alias("m0"))
        counted.append((_capped(conn, ids), len(counted), "metadata", test))
    fewest = min(counted)
    if fewest[0] >= PROBE_ROWS:  # all broad: a field read in id order stops soonest
        return "metadata", next((t for t in tests if t.ordered), tests[0])
    return fewest[2], fewest[3]


def _capped_count(conn: Connection, org_id: int, flt: RowFilter, name: str) -> int:
    """How many rows of the scope pass this one filter, counting up to PROBE_ROWS."""
    only = RowFilter(dataset_id=flt.dataset_id)
    if name == "created":
        only.created_after, only.created_before = flt.created_after, flt.created_before
    else:
        only.global_key_prefix = flt.global_key_prefix
    return _capped(
        conn, select(data_rows.c.id).where(*_row_conditions(org_id, only, _SEARCHED[name]))
    )


def _capped(conn: Connection, ids: Select[Any]) -> int:
    probe = select(func.count()).select_from(ids.limit(PROBE_ROWS).subquery())
    return int(conn.execute(probe).scalar_one())


def _metadata_ids(
    conn: Connection, org_id: int, flt: RowFilter, test: _FieldTest, m: Any
) -> Select[Any]:
    return select(m.c.data_row_id).where(
        _scope(m, org_id, flt), *_field_condition(conn, org_id, test, m)
    )


# The data_rows columns each driver's index searches.
_SEARCHED = {
    "global_key": {"org_id", "global_key"},
    "external_id": {"org_id", "external_id"},
    "global_key_prefix": {"org_id", "global_key"},
    "metadata": set(),
    "created": {"scope", "created_at"},
    "media_type": {"scope", "media_type", "id"},
    "scope": {"scope", "id"},
}


def _row_conditions(
    org_id: int, flt: RowFilter, searched: set[str], scoped: bool = True
) -> list[Any]:
    """Conditions on data_rows' own columns (with its organization and dataset unless not
    ``scoped``). Those of columns outside ``searched`` are written so that no index can serve
    them (``coalesce(c, c)``): the planner then cannot trade the driver's search for another
    index's walk in id order (a dataset's rows read one by one to find one external id was
    the slow plan this prevents)."""
    scope_column = "dataset_id" if flt.dataset_id is not None else "org_id"

    def col(name: str) -> Any:
        column = data_rows.c[name]
        if name in searched or (name == scope_column and "scope" in searched):
            return column
        return func.coalesce(column, column)

    conds = []
    if scoped and (flt.dataset_id is None or "org_id" in searched):
        conds.append(col("org_id") == org_id)  # (a dataset filter names one of the org's)
    if scoped and flt.dataset_id is not None:
        conds.append(col("dataset_id") == flt.dataset_id)
    if flt.media_type:
        conds.append(col("media_type") == flt.media_type.upper())
    if flt.external_id is not None:
        conds.append(col("external_id") == flt.external_id)
    if flt.global_key is not None:
        conds.append(col("global_key") == flt.global_key)
    elif flt.global_key_prefix:  # (with a global key, ``_matching_ids`` checks the prefix)
        prefix = flt.global_key_prefix
        conds += [col("global_key") >= prefix, col("global_key") < prefix + "\U0010ffff"]
    if flt.created_after:
        conds.append(col("created_at") >= flt.created_after)
    if flt.created_before:
        conds.append(col("created_at") < flt.created_before)
    return conds


@dataclass
class _Matching:
    """The ids of matching rows, the column they are keyset by, and whether the driving
    index reads them in that order already."""

    ids: Select[Any]
    key: Any
    ordered: bool


def _matching_ids(
    conn: Connection, org_id: int, flt: RowFilter, after: int | None = None
) -> _Matching:
    """The ids of matching rows, read through one index: the driver's (``driver``).

    Rows are fetched by id afterwards, so no planner can choose to walk the whole table in
    id order instead. Other metadata fields are checked per row through the values' primary
    key (``EXISTS``), so many filters never make a join SQLite refuses.
    """
    _possible(conn, org_id, flt)
    tests = _field_tests(conn, org_id, flt.metadata)
    drive, first = driver(conn, org_id, flt, tests)
    if first is None:
        searched = _SEARCHED[drive]
        ids = select(data_rows.c.id).where(*_row_conditions(org_id, flt, searched))
        probes = [_value_probe(conn, org_id, flt, t, data_rows.c.id) for t in tests]
        ids = ids.where(*_exists(conn, probes))
        ordered = "id" in searched
        key: Any = data_rows.c.id
        if after is not None:
            ids = ids.where((key if ordered else func.coalesce(key, key)) > after)
        return _Matching(ids, key, ordered)
    rest = [t for t in tests if t is not first]
    m = data_row_metadata.alias("m0")
    ids = _metadata_ids(conn, org_id, flt, first, m)
    probes = [_value_probe(conn, org_id, flt, t, m.c.data_row_id) for t in rest]
    row_conds = _row_conditions(org_id, flt, set(), scoped=False)
    if row_conds:
        probes.append(select(data_rows.c.id).where(data_rows.c.id == m.c.data_row_id, *row_conds))
    ids = ids.where(*_exists(conn, probes))
    key = m.c.data_row_id
    if after is not None:
        ids = ids.where((key if first.ordered else func.coalesce(key, key)) > after)
    return _Matching(ids, key, first.ordered)


def _value_probe(
    conn: Connection, org_id: int, flt: RowFilter, test: _FieldTest, row_id: Any
) -> Select[Any]:
    """The row's value of the test's field, if it passes (one primary key search)."""
    m = data_row_metadata.alias()
    conds = _field_condition(conn, org_id, test, m)
    return select(m.c.data_row_id).where(m.c.data_row_id == row_id, _scope(m, org_id, flt), *conds)


def _exists(conn: Connection, probes: list[Select[Any]]) -> list[Any]:
    """The probes as EXISTS conditions, each run per row the driver finds. On PostgreSQL,
    ``OFFSET 0`` keeps them so: as semi-joins it plans their order (4 ms for 2, 300 ms for
    20) and, misled by a page's LIMIT, was seen to hash a whole index of data_rows for one."""
    if conn.dialect.name == "postgresql":
        probes = [probe.offset(0) for probe in probes]
    return [exists(probe) for probe in probes]


def _possible(conn: Connection, org_id: int, flt: RowFilter) -> None:
    """``_Empty`` when no row can pass ``flt``: a dataset that is not the caller's (or is
    being deleted), a global key outside the prefix asked for."""
    if flt.dataset_id is not None:
        _require_dataset(conn, org_id, flt.dataset_id)
    if flt.global_key is not None and not flt.global_key.startswith(flt.global_key_prefix or ""):
        raise _Empty()


def _require_dataset(conn: Connection, org_id: int, dataset_id: int) -> None:
    """A dataset filter names one of the caller's datasets, or matches nothing (a dataset being
    deleted too: its rows are on their way out)."""
    found = conn.execute(
        select(datasets_table.c.id).where(
            datasets_table.c.id == dataset_id,
            datasets_table.c.org_id == org_id,
            datasets_table.c.deleted_at.is_(None),
        )
    ).first()
    if found is None:
        raise _Empty()


def _sort_key(matching: _Matching) -> Any:
    """The ORDER BY of a page. Where the driving index is not in id order, ``key + 0`` makes
    the database sort the matches itself: PostgreSQL would otherwise walk the primary key in
    id order, betting on finding a page of matches soon (a created range of another
    organization's rows took it through the whole table), and SQLite 3.40 was seen to take
    an ``IN (...)`` over the metadata index as already ordered by id, so pages skipped rows."""
    key = matching.key
    return key if matching.ordered else key + 0


def page_ids_query(
    conn: Connection,
    org_id: int,
    flt: RowFilter,
    after: int | None,
    limit: int,
    also: Callable[[Any], Select[Any]] | None = None,
) -> Select[Any]:
    """The ids of one page, in order (``Empty`` when no row can match). ``also`` makes a
    probe of another table for a matching id (its column, correlated): only ids it finds
    are kept, checked per row the driving index finds (a project's tasks: "rows that are
    tasks of project P")."""
    matching = _matching_ids(conn, org_id, flt, after)
    ids = matching.ids
    if also is not None:
        ids = ids.where(*_exists(conn, [also(matching.key)]))
    return ids.order_by(_sort_key(matching)).limit(limit)


def row_checks(conn: Connection, org_id: int, flt: RowFilter, row_id: Any) -> list[Any]:
    """Conditions that hold when the data row ``row_id`` (a correlated column of another
    table) is of the caller's organization and passes ``flt``, each a primary-key probe:
    for walking another table in its own order (a project's tasks) and keeping the rows
    that match. ``Empty`` when no row can match."""
    _possible(conn, org_id, flt)
    tests = _field_tests(conn, org_id, flt.metadata)
    probes = [_value_probe(conn, org_id, flt, t, row_id) for t in tests]
    own = _row_conditions(org_id, flt, set())
    # Its own data_rows even when the outer query reads data_rows too (a join).
    probe = select(data_rows.c.id).where(data_rows.c.id == row_id, *own)
    probes.append(probe.correlate_except(data_rows))
    return _exists(conn, probes)


def is_open(flt: RowFilter) -> bool:
    """Whether ``flt`` filters nothing (every row of the organization passes)."""
    return flt == RowFilter()


def page_query(
    conn: Connection, org_id: int, flt: RowFilter, after: int | None, limit: int
) -> Select[Any]:
    """The statement behind one page (the query benchmark runs it directly)."""
    ids = page_ids_query(conn, org_id, flt, after, limit)
    query = select(data_rows).where(data_rows.c.org_id == org_id, data_rows.c.id.in_(ids))
    return query.order_by(data_rows.c.id)


def count_query(conn: Connection, org_id: int, flt: RowFilter) -> tuple[Select[Any], Select[Any]]:
    """The count statement, and the statement whose rows it counts."""
    counted = _matching_ids(conn, org_id, flt).ids
    return select(func.count()).select_from(counted.subquery()), counted


def page(
    conn: Connection, org_id: int, flt: RowFilter, after: int | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], int | None]:
    """One page in creation order; the second value is the cursor of the next page."""
    limit = max(1, min(limit, MAX_PAGE))
    try:
        query = page_query(conn, org_id, flt, after, limit + 1)
    except _Empty:
        return [], None
    rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    names = field_names(conn, org_id) if any(r.metadata for r in rows) else None
    return [to_public(r, names) for r in rows], (rows[-1].id if more else None)


def count(
    conn: Connection, org_id: int, flt: RowFilter, budget_ms: int = COUNT_BUDGET_MS
) -> tuple[int, bool]:
    """How many rows match, and whether that is exact. PostgreSQL answers with the planner's
    estimate when an exact count would take longer than ``budget_ms``."""
    try:
        counting, counted = count_query(conn, org_id, flt)
    except _Empty:
        return 0, True
    if conn.dialect.name != "postgresql":
        return int(conn.execute(counting).scalar_one()), True
    try:
        with conn.begin_nested():
            conn.execute(text(f"SET LOCAL statement_timeout = {int(budget_ms)}"))
            exact = int(conn.execute(counting).scalar_one())
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        return exact, True
    except OperationalError:
        compiled = counted.compile(dialect=conn.dialect)
        plan = conn.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params
        ).scalar_one()
        return int(plan[0]["Plan"]["Plan Rows"]), False


def iterate(
    engine_conn: Connection, org_id: int, flt: RowFilter, batch: int = 1000
) -> Iterator[dict[str, Any]]:
    """Every matching row, read in keyset pages so memory stays flat."""
    after: int | None = None
    while True:
        rows, after = page(engine_conn, org_id, flt, after, batch)
        yield from rows
        if after is None:
            return


def dataset_filter(conn: Connection, org_id: int, dataset: int | str) -> RowFilter:
    return RowFilter(dataset_id=int(datasets.get(conn, org_id, dataset)["id"]))
