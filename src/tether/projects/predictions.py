"""Predictions: what a model proposes for a project's tasks (``result``, ``model_version``,
``score``), brought in in bulk by a ``predictions`` job.

The job reads a JSON array, JSON objects one after another, or NDJSON, with the import
readers (``imports.readers.read_objects``: BOMs, CRLF and lone-CR line ends, broken items
are handled as an import handles them). Each item is one of:

- tether's own: ``{"data_row_id" | "global_key", "result", "model_version", "score"}``;
- Label Studio's prediction, which names its task as ``task``: ``{"task": 12, "result",
  "model_version", "score"}``;
- Label Studio's task with its predictions, as its exports (and tether's, where a task's
  ``id`` is its data row's) write it: ``{"id": 12, "data": {...}, "predictions": [{...}]}``;
  a ``data_row_id`` or ``global_key`` beside ``predictions`` names the task too.

Ids and scores may come as strings (``"12"``, ``"0.87"``); a numeric ``model_version`` is
taken as its text. An item that names no task of the project (an unknown id or global key,
a row of another project), a region that does not fit the label config, or a score that is
not a finite number is a per-item error (index, global key, reason); every good item lands.
The job's counts: ``created`` (predictions) and ``failed`` (errors). Each chunk is written
with the job's progress in one transaction, so a resumed job goes on after the last one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from tether.catalog import queries
from tether.db.tables import predictions as prediction_rows
from tether.db.tables import tasks
from tether.errors import Invalid, NotFound
from tether.imports import readers, sniff, submit
from tether.imports.sniff import FileError
from tether.jobs.service import ItemError
from tether.jobs.worker import JobFailed, JobRun, LeaseLost, Runner, Stopping
from tether.projects import labels, projects, shapes
from tether.projects.label_config import LabelConfig

KIND = "predictions"
FORMATS = ("json", "ndjson")
CHUNK_ITEMS = 500
MAX_BIGINT = 2**63 - 1
MAX_MODEL_VERSION = 200


def public(row: Any) -> dict[str, Any]:
    """A prediction as the API shows it: Label Studio's shape, with ``data_row_id``."""
    return {**shapes.prediction(row), "data_row_id": row.data_row_id}


def of_task(
    conn: Connection, org_id: int, project: int | str, data_row_id: int
) -> list[dict[str, Any]]:
    """The task's predictions, oldest first (``NotFound`` for a row that is no task)."""
    project_id = projects.get_id(conn, org_id, project)
    found = None
    if 0 < data_row_id <= MAX_BIGINT:
        found = conn.execute(
            select(tasks.c.data_row_id).where(
                tasks.c.project_id == project_id, tasks.c.data_row_id == data_row_id
            )
        ).first()
    if found is None:
        raise NotFound(f"data row {data_row_id} is no task of project {project_id}")
    p = prediction_rows
    rows = conn.execute(
        select(p)
        .where(p.c.project_id == project_id, p.c.data_row_id == data_row_id)
        .order_by(p.c.id)
    )
    return [public(r) for r in rows]


def remove(conn: Connection, org_id: int, prediction_id: int) -> None:
    """Delete one prediction; its task is recounted."""
    row = None
    if 0 < prediction_id <= MAX_BIGINT:
        row = labels.delete_prediction(conn, org_id, prediction_id)
    if row is None:
        raise NotFound(f"no prediction with id {prediction_id}")


# --- the bulk import -------------------------------------------------------------------------


def resolve_project(engine: Engine, org_id: int, project: int | str) -> int:
    """The id of the project predictions go to (``NotFound`` before any byte is read)."""
    with engine.connect() as conn:
        return projects.get_id(conn, org_id, project)


def submit_predictions(
    engine: Engine,
    enqueue: Callable[[str], None],
    org_id: int,
    user_id: int | None,
    target_project: int,
    upload: Path,
    body_sha256: str,
    params: dict[str, Any],
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Queue a ``predictions`` job reading the staged ``upload`` (as ``imports.submit`` does
    for rows: a repeated ``Idempotency-Key`` returns the first job)."""
    return submit.submit_upload(
        engine,
        enqueue,
        org_id,
        user_id,
        upload,
        body_sha256,
        params,
        idempotency_key,
        kind=KIND,
        target=("project", target_project),
        project_id=target_project,
        counts={"created": 0},
        precheck=_precheck,
    )


def _precheck(path: Path, params: dict[str, Any]) -> str:
    if path.stat().st_size == 0:
        raise Invalid("the upload is empty")
    try:
        return _container(path, params.get("filename"))
    except FileError as exc:
        raise Invalid(str(exc)) from None


def _container(path: Path, filename: str | None) -> str:
    try:
        found = sniff.detect(path, filename)
    except sniff.Unsure:
        found = None
    if found not in FORMATS:
        what = "its content is not JSON" if found else "its content could not be told"
        raise FileError(f"a predictions file is a JSON array or NDJSON (an object a line); {what}")
    return found


def predictions_runner(chunk_items: int = CHUNK_ITEMS) -> Runner:
    """The runner of ``predictions`` jobs, for ``runtime.py`` to register."""

    def run(job: JobRun) -> None:
        upload = Path(job.params["_upload"])
        try:
            if not upload.exists():
                raise JobFailed("the uploaded file is gone (removed before the job ran)")
            _run(job, upload, chunk_items)
        except (Stopping, LeaseLost):
            raise  # the upload stays for the job's next run
        except (FileError, NotFound) as exc:
            upload.unlink(missing_ok=True)
            raise JobFailed(str(exc)) from exc
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        upload.unlink(missing_ok=True)

    return run


def _run(job: JobRun, upload: Path, chunk_items: int) -> None:
    container = job.params.get("format") or _container(upload, job.params.get("filename"))
    if container not in FORMATS:
        raise FileError(f"a predictions file is JSON or NDJSON, not {container}")
    total = readers.count_items(upload, container)
    job.describe(total, format=container)
    org_id, target = job.row.org_id, int(job.row.project_id)
    with job.engine.connect() as conn:
        config = projects.config_of(conn, org_id, target)  # NotFound: the project went
    chunk: list[readers.Item] = []
    items = readers.read_objects(upload, container, skip=job.done)
    for item in items:
        chunk.append(item)
        if len(chunk) >= chunk_items:
            if not _write(job, org_id, target, config, chunk):
                return
            chunk = []
    if chunk:
        _write(job, org_id, target, config, chunk)


@dataclass
class _Planned:
    """One prediction read from an item, waiting for its task to be found."""

    index: int
    data_row_id: int | None
    global_key: str | None
    values: dict[str, Any]
    nested: int | None = None  # its place in a task's ``predictions``


@dataclass
class _Chunk:
    planned: list[_Planned] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


def _write(
    job: JobRun, org_id: int, target: int, config: LabelConfig, items: list[readers.Item]
) -> bool:
    """Check one chunk of items, write its good predictions and the job's progress in one
    transaction; False when the job was canceled."""
    job.check_stop()
    chunk = _Chunk()
    for item in items:
        if item.error is not None or item.value is None:
            code, message = (item.error.code, item.error.message) if item.error else ("", "")
            chunk.errors.append(ItemError(item.index, code or "malformed_item", message))
            continue
        _plan(item.index, item.value, config, chunk)
    try:
        with job.engine.begin() as conn:
            rows = _matched(conn, org_id, target, chunk)
            labels.insert_predictions(conn, rows, ids=False)
            chunk.errors.sort(key=lambda e: (e.index or 0, e.details.get("prediction", -1)))
            done = items[-1].index + 1
            return job.record(conn, done, {"created": len(rows)}, chunk.errors)
    except IntegrityError as exc:  # the project, or a task, went while the chunk was written
        raise JobFailed(
            f"project {target} or one of its tasks was deleted while the job ran; the "
            f"{job.counts.get('created', 0)} predictions written before stay"
        ) from exc


def _plan(index: int, value: dict[str, Any], config: LabelConfig, chunk: _Chunk) -> None:
    """The predictions an item holds, checked (everything but their task)."""
    try:
        global_key = _global_key(value.get("global_key"))
        if isinstance(value.get("predictions"), list):  # a Label Studio task
            row_id = _row_id(value, ("data_row_id", "id"))
            entries: list[tuple[int | None, Any]] = list(enumerate(value["predictions"]))
            if not entries:
                raise _Bad("no_predictions", "the task's predictions list is empty")
        elif "predictions" in value:
            raise _Bad("malformed_item", "predictions must be a list of predictions")
        else:
            row_id = _row_id(value, ("data_row_id", "task"))
            entries = [(None, value)]
        if row_id is None and global_key is None:
            raise _Bad(
                "missing_task",
                "the item names no task: give data_row_id or global_key (or Label Studio's "
                "task id: id beside predictions, or task in a prediction)",
            )
    except _Bad as exc:
        chunk.errors.append(ItemError(index, exc.code, exc.message, _shown(value)))
        return
    for nested, entry in entries:
        try:
            values = _prediction(entry, config)
        except _Bad as exc:
            where = f"predictions[{nested}]: " if nested is not None else ""
            details = {"prediction": nested} if nested is not None else {}
            details.update(exc.details)
            chunk.errors.append(
                ItemError(index, exc.code, where + exc.message, global_key, details=details)
            )
            continue
        chunk.planned.append(_Planned(index, row_id, global_key, values, nested))


def _matched(conn: Connection, org_id: int, target: int, chunk: _Chunk) -> list[dict[str, Any]]:
    """The planned predictions whose task is found, as rows to insert; the others become
    errors."""
    keys = sorted({p.global_key for p in chunk.planned if p.global_key is not None})
    by_key = {
        r["global_key"]: r["data_row_id"]
        for r in queries.ids_for_global_keys(conn, org_id, keys)
        if r["data_row_id"] is not None
    }
    wanted = {p.data_row_id for p in chunk.planned if p.data_row_id is not None}
    wanted |= set(by_key.values())
    task_ids: set[int] = set()
    ordered = sorted(wanted)
    for start in range(0, len(ordered), labels.BATCH):
        task_ids.update(
            int(r)
            for r in conn.execute(
                select(tasks.c.data_row_id).where(
                    tasks.c.project_id == target,
                    tasks.c.data_row_id.in_(ordered[start : start + labels.BATCH]),
                )
            ).scalars()
        )
    rows: list[dict[str, Any]] = []
    for p in chunk.planned:
        error = None
        row_id = p.data_row_id
        if p.global_key is not None:
            keyed = by_key.get(p.global_key)
            if keyed is None:
                error = ("unknown_global_key", f"no data row has global key {p.global_key!r}")
            elif row_id is not None and row_id != keyed:
                error = (
                    "task_mismatch",
                    f"data row {row_id} and global key {p.global_key!r} (data row {keyed}) "
                    "name two rows; give one of them",
                )
            row_id = keyed
        if error is None and row_id not in task_ids:
            named = f"data row {row_id}" if p.global_key is None else f"global key {p.global_key!r}"
            error = ("not_a_task", f"{named} is no task of project {target}")
        if error is not None:
            details = {"prediction": p.nested} if p.nested is not None else {}
            message = error[1] if p.nested is None else f"predictions[{p.nested}]: {error[1]}"
            chunk.errors.append(
                ItemError(p.index, error[0], message, p.global_key, details=details)
            )
            continue
        rows.append({**p.values, "org_id": org_id, "project_id": target, "data_row_id": row_id})
    return rows


class _Bad(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}


def _prediction(entry: Any, config: LabelConfig) -> dict[str, Any]:
    """One prediction's columns, checked."""
    if not isinstance(entry, dict):
        raise _Bad("malformed_item", "a prediction is a JSON object")
    result = entry.get("result")
    if result is None:
        raise _Bad("missing_result", "the prediction has no result (a list of regions)")
    if not isinstance(result, list):
        raise _Bad("bad_result", "result is a list of regions")
    for i, region in enumerate(result):
        reason = config.region_error(region)
        if reason is not None:
            raise _Bad("region_mismatch", f"result[{i}]: {reason}", {"region": i})
    return {
        "result": result,
        "score": _score(entry.get("score")),
        "model_version": _model_version(entry.get("model_version")),
    }


def _score(value: Any) -> float | None:
    if value is None or value == "":
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise _Bad("bad_score", f"score must be a finite number, not {_cut(value)}")
    return number


def _model_version(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _Bad("bad_model_version", "model_version is a text")
    value = value.strip()
    if len(value) > MAX_MODEL_VERSION or "\x00" in value:
        raise _Bad(
            "bad_model_version", f"model_version is text of at most {MAX_MODEL_VERSION} characters"
        )
    return value


def _row_id(value: dict[str, Any], names: tuple[str, ...]) -> int | None:
    """The data row id the item gives under the first of ``names`` it has."""
    for name in names:
        raw = value.get(name)
        if raw is None:
            continue
        number: int | None = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            number = raw
        elif isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
            number = int(raw.strip())
        elif isinstance(raw, float) and raw.is_integer():
            number = int(raw)
        if number is None or not 0 < number <= MAX_BIGINT:
            raise _Bad("bad_task_id", f"{name} must be a data row id (digits), not {_cut(raw)}")
        return number
    return None


def _global_key(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if not isinstance(raw, str) or not raw:
        raise _Bad("bad_global_key", f"global_key must be a text, not {_cut(raw)}")
    return raw


def _shown(value: dict[str, Any]) -> str | None:
    key = value.get("global_key")
    return key if isinstance(key, str) else None


def _cut(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
