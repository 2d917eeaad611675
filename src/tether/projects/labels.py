"""The one write path of tasks, annotations and predictions, and of a task's counts and
status. Services (``tasks``, ``annotations``, ``predictions``) check what they are given
and write through here; nothing else inserts into those tables.

A task's status follows its annotations: ``labeled`` with at least one annotation that is
not a skip, ``skipped`` with only skips (``was_cancelled``), ``unlabeled`` with none. Every
write here that adds, changes or removes an annotation or a prediction recounts its task in
the same transaction.

Every annotation insert and edit also gives the annotation the project's next change number
(``seq``, from ``projects.annotation_seq``), so an export to a target storage reads only the
annotations saved since its last one. Taking numbers locks the project's row until the
save commits: the numbers are handed out in commit order (an export that has seen number
*n* has seen every save below it), at the price of one project's saves committing one at
a time. (Deletes take none: an export with ``can_delete_objects`` looks for them itself.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Connection,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from tether.db.tables import annotations as annotation_rows
from tether.db.tables import predictions as prediction_rows
from tether.db.tables import projects, tasks
from tether.errors import NotFound

BATCH = 500  # ids per IN list (SQLite's bound-parameter limit is far above)
ADD_BATCH = 10_000  # ids per INSERT of tasks
# Every optional column, so rows that give different columns insert alike (an executemany
# takes its columns from the first row).
DEFAULTS: dict[str, dict[str, Any]] = {
    "annotations": {
        "lead_time": None,
        "was_cancelled": False,
        "ground_truth": False,
        "completed_by": None,
        "updated_by": None,
        "parent_prediction": None,
        "parent_annotation": None,
        "version": 1,
    },
    "predictions": {"model_version": "", "score": None},
}


def add_tasks(
    conn: Connection, org_id: int, project_id: int, data_row_ids: Sequence[int]
) -> list[int]:
    """Make ``data_row_ids`` tasks of the project; a row that is one already is left as it
    is. Returns the ids that became tasks now (in the order given).

    One ``INSERT ... SELECT`` per batch over the ids sent as one value (a PostgreSQL array,
    a JSON list on SQLite): a batch of rows bound one by one cost PostgreSQL ten times as
    much, most of it in building the statement."""
    if not data_row_ids:
        return []
    now = datetime.now(UTC)
    wanted = [int(i) for i in dict.fromkeys(data_row_ids)]
    added: set[int] = set()
    for start in range(0, len(wanted), ADD_BATCH):
        part = wanted[start : start + ADD_BATCH]
        if conn.dialect.name == "postgresql":
            array = bindparam("ids", part, type_=postgresql.ARRAY(BigInteger))
            ids: Any = func.unnest(array).table_valued("id").render_derived()
            dialect: Any = postgresql
            row_id = ids.c.id
        else:
            ids = func.json_each(orjson.dumps(part).decode()).table_valued("value")
            dialect, row_id = sqlite, ids.c.value
        stamp = tasks.c.created_at.type
        source = select(
            literal(project_id),
            row_id,
            literal(org_id),
            literal("unlabeled"),
            literal(now, stamp),
            literal(now, stamp),
        ).where(true())  # (SQLite reads an ON CONFLICT after a SELECT without WHERE as a join's)
        columns = ["project_id", "data_row_id", "org_id", "status", "created_at", "updated_at"]
        statement = (
            dialect.insert(tasks)
            .from_select(columns, source)
            .on_conflict_do_nothing()
            .returning(tasks.c.data_row_id)
        )
        added.update(int(r[0]) for r in conn.execute(statement))
    return [row_id for row_id in wanted if row_id in added]


def insert_annotations(conn: Connection, items: Iterable[dict[str, Any]]) -> list[int]:
    """Insert annotations (each a dict of the table's columns; ``result`` as a list) and
    refresh their tasks' counts; returns their new ids in order. Callers check regions
    against the config first."""
    return _insert(conn, annotation_rows, items)


def insert_predictions(
    conn: Connection, items: Iterable[dict[str, Any]], *, ids: bool = True
) -> list[int]:
    """As ``insert_annotations``, for predictions. ``ids=False`` asks for no ids back (the
    list is empty): a bulk import needs none, and SQLite inserts row by row when asked for
    ids in order."""
    return _insert(conn, prediction_rows, items, ids)


def update_annotation(
    conn: Connection,
    org_id: int,
    annotation_id: int,
    values: dict[str, Any],
    expected_version: int | None = None,
) -> Any | None:
    """Change one annotation (``values``: columns; ``result`` as a list) and bump its
    ``version`` by one, atomically; with ``expected_version`` only if it still has that
    version. Returns the changed row, or None when no annotation of the organization has
    that id (and version). Refreshes its task's counts."""
    values = dict(values)
    if "result" in values and not isinstance(values["result"], str | bytes):
        values["result"] = orjson.dumps(values["result"]).decode()
    a = annotation_rows
    where = [a.c.id == annotation_id, a.c.org_id == org_id]
    project_id = conn.execute(select(a.c.project_id).where(*where)).scalar_one_or_none()
    if project_id is None:
        return None
    if expected_version is not None:
        where.append(a.c.version == expected_version)
    row = conn.execute(
        update(a)
        .where(*where)
        .values(
            **values,
            version=a.c.version + 1,
            updated_at=datetime.now(UTC),
            seq=take_seqs(conn, int(project_id), 1),
        )
        .returning(*a.c)
    ).first()
    if row is not None:
        refresh_counts(conn, row.project_id, [row.data_row_id])
    return row


def delete_annotation(conn: Connection, org_id: int, annotation_id: int) -> Any | None:
    """Delete one annotation of the organization; the deleted row (None if there was none).
    Refreshes its task's counts."""
    return _delete(conn, annotation_rows, org_id, annotation_id)


def delete_prediction(conn: Connection, org_id: int, prediction_id: int) -> Any | None:
    """As ``delete_annotation``, for a prediction."""
    return _delete(conn, prediction_rows, org_id, prediction_id)


def _delete(conn: Connection, table: Any, org_id: int, item_id: int) -> Any | None:
    row = conn.execute(
        delete(table).where(table.c.id == item_id, table.c.org_id == org_id).returning(*table.c)
    ).first()
    if row is not None:
        refresh_counts(conn, row.project_id, [row.data_row_id])
    return row


def take_seqs(conn: Connection, project_id: int, n: int) -> int:
    """The first of ``n`` new change numbers of the project's annotations (the project's row
    stays locked until the caller's transaction ends)."""
    last = conn.execute(
        update(projects)
        .where(projects.c.id == project_id)
        .values(annotation_seq=projects.c.annotation_seq + n)
        .returning(projects.c.annotation_seq)
    ).scalar_one_or_none()
    if last is None:
        raise NotFound(f"no project {project_id}")
    return int(last) - n + 1


def release_lease(conn: Connection, project_id: int, data_row_id: int, user_id: int | None) -> bool:
    """Give up ``user_id``'s next-task lease on the task (it saved an annotation there): True
    if they held it. A lease another annotator holds stays."""
    if user_id is None:
        return False
    released = conn.execute(
        update(tasks)
        .where(
            tasks.c.project_id == project_id,
            tasks.c.data_row_id == data_row_id,
            tasks.c.lease_user_id == user_id,
        )
        .values(lease_user_id=None, lease_until=None)
    ).rowcount
    return bool(released)


def _insert(
    conn: Connection, table: Any, items: Iterable[dict[str, Any]], ids: bool = True
) -> list[int]:
    now = datetime.now(UTC)
    rows = []
    for item in items:
        row = {"created_at": now, "updated_at": now, **DEFAULTS[table.name], **item}
        if not isinstance(row["result"], str | bytes):
            row["result"] = orjson.dumps(row["result"]).decode()
        rows.append(row)
    if not rows:
        return []
    if table is annotation_rows:
        _number(conn, rows)
    made: list[int] = []
    if ids:
        result = conn.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        )
        made = [int(r[0]) for r in result]
    else:
        conn.execute(insert(table), rows)
    if table is prediction_rows:
        _add_predictions(conn, rows, now)
        return made
    touched: dict[int, set[int]] = {}
    for row in rows:
        touched.setdefault(int(row["project_id"]), set()).add(int(row["data_row_id"]))
    for project_id, row_ids in touched.items():
        refresh_counts(conn, project_id, sorted(row_ids))
    return made


def _number(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Give each annotation its project's next change number (projects in id order, so two
    saves into the same projects lock them in one order)."""
    of_project: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        of_project.setdefault(int(row["project_id"]), []).append(row)
    for project_id in sorted(of_project):
        mine = of_project[project_id]
        first = take_seqs(conn, project_id, len(mine))
        for offset, row in enumerate(mine):
            row["seq"] = first + offset


def _add_predictions(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> None:
    """Add the new predictions to their tasks' counts (a prediction changes no status).
    Counted up, not recounted: a recount reads each task's predictions, and a bulk import
    into a table the planner still thinks empty would scan it for every task. One statement
    per project and number added (an import adds one to most tasks)."""
    added: dict[tuple[int, int], int] = {}
    for row in rows:
        task_key = (int(row["project_id"]), int(row["data_row_id"]))
        added[task_key] = added.get(task_key, 0) + 1
    by_count: dict[tuple[int, int], list[int]] = {}
    for (project_id, row_id), n in added.items():
        by_count.setdefault((project_id, n), []).append(row_id)
    for (project_id, n), row_ids in sorted(by_count.items()):
        row_ids.sort()
        for start in range(0, len(row_ids), BATCH):
            conn.execute(
                update(tasks)
                .where(
                    tasks.c.project_id == project_id,
                    tasks.c.data_row_id.in_(row_ids[start : start + BATCH]),
                )
                .values(total_predictions=tasks.c.total_predictions + n, updated_at=now)
            )


def refresh_counts(conn: Connection, project_id: int, data_row_ids: Sequence[int]) -> None:
    """Recount the tasks' annotations, skips and predictions, and set their status."""
    a, p = annotation_rows, prediction_rows
    for start in range(0, len(data_row_ids), BATCH):
        ids = list(data_row_ids[start : start + BATCH])
        of_task = and_(a.c.project_id == tasks.c.project_id, a.c.data_row_id == tasks.c.data_row_id)
        done = select(func.count()).where(of_task, a.c.was_cancelled.is_(False)).scalar_subquery()
        skipped = select(func.count()).where(of_task, a.c.was_cancelled.is_(True)).scalar_subquery()
        predicted = (
            select(func.count())
            .where(p.c.project_id == tasks.c.project_id, p.c.data_row_id == tasks.c.data_row_id)
            .scalar_subquery()
        )
        conn.execute(
            update(tasks)
            .where(tasks.c.project_id == project_id, tasks.c.data_row_id.in_(ids))
            .values(
                total_annotations=done,
                cancelled_annotations=skipped,
                total_predictions=predicted,
                status=case((done > 0, "labeled"), (skipped > 0, "skipped"), else_="unlabeled"),
                updated_at=datetime.now(UTC),
            )
        )


def mark_imported(conn: Connection, project_id: int, data_row_ids: Sequence[int]) -> None:
    """Record that the Label Studio annotations and predictions the rows were imported with
    were brought into their tasks (``tasks.imported_at``)."""
    now = datetime.now(UTC)
    for start in range(0, len(data_row_ids), BATCH):
        ids = list(data_row_ids[start : start + BATCH])
        conn.execute(
            update(tasks)
            .where(tasks.c.project_id == project_id, tasks.c.data_row_id.in_(ids))
            .values(imported_at=now)
        )
