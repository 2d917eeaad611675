"""Label Studio's shapes of tasks, annotations and predictions, as its exports and target
storages write them (``shared/LABELING.md``), so pipelines built for Label Studio read
tether's output unchanged.

A task's ``id`` is its data row's id; ``data`` keeps the stored URIs (never resolved URLs).
Timestamps are ISO 8601 in UTC with microseconds and a ``Z``, as Label Studio writes them.
The functions take plain rows (SQLAlchemy rows or mappings with the tables' column names).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from tether.timeutil import as_utc


@lru_cache(maxsize=4096)  # rows written together share their timestamps
def stamp(moment: datetime | None) -> str | None:
    """``2026-12-01T07:42:23.324500Z``: in UTC whatever zone ``moment`` is in (PostgreSQL
    hands timestamps back in its session's time zone)."""
    if moment is None:
        return None
    utc = as_utc(moment).astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def user(user_id: int | None, email: str | None) -> dict[str, Any] | None:
    """``completed_by`` as a target storage's object holds it."""
    if user_id is None:
        return None
    return {"id": user_id, "email": email or "", "first_name": "", "last_name": ""}


def task(row: Any, data: Any, project_id: int) -> dict[str, Any]:
    """A task of the ``tasks`` table with its ``data`` (``LabelConfig.task_data`` of the
    row's data; a row that lacks a key keeps its data as it is)."""
    return {
        "id": row.data_row_id,
        "data": data,
        "meta": {},
        "created_at": stamp(row.created_at),
        "updated_at": stamp(row.updated_at),
        "is_labeled": row.status == "labeled",
        "total_annotations": row.total_annotations,
        "cancelled_annotations": row.cancelled_annotations,
        "total_predictions": row.total_predictions,
        "project": project_id,
    }


def annotation(row: Any, completed_by: Any = None) -> dict[str, Any]:
    """An annotation as Label Studio's JSON export lists it in its task (``task``: the task's
    id). ``completed_by``: what to write there (the export writes the user's id; a target
    object the user, see ``user``); by default the user's id. A ``result`` given as an
    ``orjson.Fragment`` stays one (spliced into the output as stored)."""
    return {
        "id": row.id,
        "result": _json(row.result),
        "completed_by": row.completed_by if completed_by is None else completed_by,
        "was_cancelled": bool(row.was_cancelled),
        "ground_truth": bool(row.ground_truth),
        "lead_time": row.lead_time,
        "created_at": stamp(row.created_at),
        "updated_at": stamp(row.updated_at),
        "draft_created_at": None,
        "task": row.data_row_id,
        "project": row.project_id,
        "updated_by": row.updated_by,
        "parent_prediction": row.parent_prediction,
        "parent_annotation": row.parent_annotation,
    }


def prediction(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "result": _json(row.result),
        "model_version": row.model_version,
        "score": row.score,
        "created_at": stamp(row.created_at),
        "updated_at": stamp(row.updated_at),
        "task": row.data_row_id,
        "project": row.project_id,
    }


def target_object(
    annotation_row: Any, task_shape: dict[str, Any], email: str | None
) -> dict[str, Any]:
    """What a target storage gets for one annotation (at ``<prefix>/<annotation id>``): the
    annotation with the user in ``completed_by`` and its whole task in ``task``."""
    out = annotation(annotation_row, user(annotation_row.completed_by, email))
    out["task"] = task_shape
    return out


def export_task(
    task_shape: dict[str, Any],
    annotations: list[dict[str, Any]],
    predictions: list[dict[str, Any]],
) -> dict[str, Any]:
    """A task in Label Studio's JSON export: the task with its annotations and predictions."""
    return {**task_shape, "annotations": annotations, "predictions": predictions}


def _json(text: str | bytes | orjson.Fragment) -> Any:
    """A stored JSON column parsed; an ``orjson.Fragment`` (the stored text, which an export
    splices into its output as it is) stays as it is."""
    if isinstance(text, orjson.Fragment):
        return text
    return orjson.loads(text)
