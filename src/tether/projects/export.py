"""Exporting a project: its tasks with their annotations and predictions, in Label Studio's
JSON export shape (``shapes.export_task``), in data row id order.

An export is one read snapshot (``catalog.export.begin_snapshot``): the project is looked up,
its tasks counted and read in one read transaction, so annotations written meanwhile do not
change it and ``ProjectExport.tasks`` (known before the first task) is what it holds.

Tasks come a batch at a time, three queries a batch whatever its size: the batch's tasks
joined with their data rows (keyset on the data row id), then the annotations and the
predictions of that id range. Memory holds one batch, never the project. A task's ``data``
is the row's data as the label config reads it (``LabelConfig.task_data``): the stored URIs,
never resolved URLs; a row that lacks a key the config needs keeps its data as it is.
"""

from __future__ import annotations

import inspect
from collections import namedtuple
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from tether.catalog.export import begin_snapshot, end_snapshot
from tether.db.tables import TASK_STATUSES, data_rows, tasks
from tether.db.tables import annotations as annotation_rows
from tether.db.tables import predictions as prediction_rows
from tether.errors import Invalid
from tether.projects import label_config, projects, shapes
from tether.projects.label_config import LabelConfig

BATCH_TASKS = 1000
FORMATS = ("json", "ndjson")

_TASK_COLUMNS = (
    tasks.c.data_row_id,
    tasks.c.status,
    tasks.c.total_annotations,
    tasks.c.cancelled_annotations,
    tasks.c.total_predictions,
    tasks.c.created_at,
    tasks.c.updated_at,
    data_rows.c.row_data,
)
_ANNOTATION_COLUMNS = tuple(
    c for c in annotation_rows.c if c.name not in ("org_id", "version", "seq")
)
_PREDICTION_COLUMNS = tuple(c for c in prediction_rows.c if c.name != "org_id")
# Rows with their ``result`` as stored (an ``orjson.Fragment``), for ``shapes``.
_Annotation = namedtuple("_Annotation", [c.name for c in _ANNOTATION_COLUMNS])  # type: ignore[misc]
_Prediction = namedtuple("_Prediction", [c.name for c in _PREDICTION_COLUMNS])  # type: ignore[misc]


@dataclass
class ProjectExport:
    """An open export: ``tasks`` task dicts will come from ``items`` (lists of them, a batch
    each). The snapshot stays open until ``items`` is exhausted or ``close()`` is called
    (which a reader that stops early must do)."""

    project: dict[str, Any]  # as ``projects.get`` gives it: id, name, label_config, ...
    config: LabelConfig
    tasks: int
    items: Generator[list[dict[str, Any]], None, None]
    conn: Connection

    def close(self) -> None:
        # A generator closed before it started never runs its ``finally``.
        unstarted = inspect.getgeneratorstate(self.items) == inspect.GEN_CREATED
        self.items.close()
        if unstarted and not self.conn.closed:
            end_snapshot(self.conn)


def check_statuses(statuses: Iterable[str] | None) -> tuple[str, ...] | None:
    """The task statuses to keep (None: all), ``Invalid`` naming an unknown one."""
    if not statuses:
        return None
    chosen = tuple(dict.fromkeys(statuses))
    for status in chosen:
        if status not in TASK_STATUSES:
            raise Invalid(
                f"no task status {status!r}; statuses: {', '.join(TASK_STATUSES)}",
                {"field": "status"},
            )
    return chosen


def open_export(
    engine: Engine,
    org_id: int,
    project: int | str,
    *,
    statuses: Iterable[str] | None = None,
    batch: int = BATCH_TASKS,
    spliced: bool = False,
) -> ProjectExport:
    """Open a snapshot of ``project`` (id or name; ``NotFound`` if it is not the
    organization's) and count the tasks it will hold (only ``statuses`` when given).
    ``spliced``: see ``batches``."""
    chosen = check_statuses(statuses)
    conn = engine.connect()
    try:
        conn = begin_snapshot(conn)
        found = projects.get(conn, org_id, project)
        config = label_config.parse(str(found["label_config"]))
        counts: dict[str, int] = found["task_counts"]
        total = sum(n for s, n in counts.items() if chosen is None or s in chosen)
    except BaseException:
        conn.close()
        raise
    items = _items(conn, org_id, int(found["id"]), config, chosen, batch, spliced)
    return ProjectExport(found, config, total, items, conn)


def _items(
    conn: Connection,
    org_id: int,
    project_id: int,
    config: LabelConfig,
    statuses: Sequence[str] | None,
    batch: int,
    spliced: bool,
) -> Generator[list[dict[str, Any]], None, None]:
    try:
        yield from batches(conn, org_id, project_id, config, statuses, batch, spliced)
    finally:
        end_snapshot(conn)


def batches(
    conn: Connection,
    org_id: int,
    project_id: int,
    config: LabelConfig,
    statuses: Sequence[str] | None = None,
    batch: int = BATCH_TASKS,
    spliced: bool = False,
) -> Iterator[list[dict[str, Any]]]:
    """The project's tasks in Label Studio's export shape, ``batch`` tasks a list, in data
    row id order (three queries a list). ``spliced``: the regions (``result``) and an object
    row's ``data`` stay the JSON text they are stored as (``orjson.Fragment``), which
    ``orjson.dumps`` writes as it is: an export to bytes skips parsing and writing them
    again, the export's heaviest work."""
    as_annotation = _Annotation._make if not spliced else _spliced(_Annotation)
    as_prediction = _Prediction._make if not spliced else _spliced(_Prediction)
    last = 0  # ids start at 1
    while True:
        query = (
            select(*_TASK_COLUMNS)
            .join(data_rows, data_rows.c.id == tasks.c.data_row_id)
            .where(
                tasks.c.project_id == project_id,
                tasks.c.org_id == org_id,
                tasks.c.data_row_id > last,
            )
            .order_by(tasks.c.data_row_id)
            .limit(batch)
        )
        if statuses is not None:
            query = query.where(tasks.c.status.in_(statuses))
        rows = conn.execute(query).all()
        if not rows:
            return
        # Every task of the id range is in the batch unless a filter left some out: then
        # the ids themselves, so a sparse filter never reads the rows of the tasks between.
        of_batch: tuple[int, int] | list[int] = (
            (rows[0].data_row_id, rows[-1].data_row_id)
            if statuses is None
            else [r.data_row_id for r in rows]
        )
        made = _of_tasks(conn, annotation_rows, _ANNOTATION_COLUMNS, org_id, project_id, of_batch)
        predicted = _of_tasks(
            conn, prediction_rows, _PREDICTION_COLUMNS, org_id, project_id, of_batch
        )
        yield [
            shapes.export_task(
                shapes.task(row, _data(config, row.row_data, spliced), project_id),
                [shapes.annotation(as_annotation(a)) for a in made.get(row.data_row_id, ())],
                [shapes.prediction(as_prediction(p)) for p in predicted.get(row.data_row_id, ())],
            )
            for row in rows
        ]
        if len(rows) < batch:
            return
        last = rows[-1].data_row_id


def _of_tasks(
    conn: Connection,
    table: Any,
    columns: Sequence[Any],
    org_id: int,
    project_id: int,
    tasks_of: tuple[int, int] | list[int],
) -> dict[int, list[Any]]:
    """The rows of ``table`` of some tasks, by data row id, in id order: ``tasks_of`` is
    a (lowest, highest) data row id range (one index range scan) or the ids."""
    by_task: dict[int, list[Any]] = {}
    found = conn.execute(
        select(*columns)
        .where(
            table.c.project_id == project_id,
            table.c.org_id == org_id,
            table.c.data_row_id.between(*tasks_of)
            if isinstance(tasks_of, tuple)
            else table.c.data_row_id.in_(tasks_of),
        )
        .order_by(table.c.data_row_id, table.c.id)
    ).all()
    for row in found:
        by_task.setdefault(row.data_row_id, []).append(row)
    return by_task


def _spliced(kind: Any) -> Any:
    """A maker of ``kind`` rows whose ``result`` is the stored text as a fragment."""
    at = kind._fields.index("result")
    fragment = orjson.Fragment

    def make(row: Any) -> Any:
        values = list(row)
        values[at] = fragment(values[at])
        return kind._make(values)

    return make


def _data(config: LabelConfig, stored: str, spliced: bool) -> Any:
    if spliced and stored.startswith("{"):
        return orjson.Fragment(stored)  # an object is kept as it is, whatever keys it has
    row_data = orjson.loads(stored)
    data, _missing = config.task_data(row_data)
    return row_data if data is None else data


def chunks(export: ProjectExport, fmt: str) -> Generator[bytes, None, None]:
    """The export as bytes, a batch of tasks a chunk: ``ndjson`` a task a line, ``json`` one
    array with a task a line (``[`` and ``]`` on lines of their own)."""
    if fmt not in FORMATS:
        raise Invalid(f"no export format {fmt!r}", {"field": "format"})
    dumps = orjson.dumps
    try:
        if fmt == "ndjson":
            for items in export.items:
                yield b"".join([dumps(t, option=orjson.OPT_APPEND_NEWLINE) for t in items])
            return
        yield b"["
        first = True
        for items in export.items:
            body = b",\n".join([dumps(t) for t in items])
            yield (b"\n" if first else b",\n") + body
            first = False
        yield b"]\n" if first else b"\n]\n"
    finally:
        export.close()
