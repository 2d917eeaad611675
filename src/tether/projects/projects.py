"""Projects: labeling efforts over data rows, unique by name within an organization.

Any member creates and changes projects; deleting one (its tasks, annotations, predictions
and target storages go with it) is for admins. A label config is checked on every save
(``label_config.parse``); changing it later is refused while annotations use a control or
object tag the new config drops, so stored annotations always fit their project's config.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tether.accounts.roles import require_admin
from tether.catalog.datasets import MAX_ID, is_id
from tether.db.tables import annotations as annotation_rows
from tether.db.tables import projects, storages, tasks
from tether.errors import Conflict, Invalid, NotFound
from tether.projects import label_config
from tether.projects.label_config import LabelConfig
from tether.timeutil import iso

COLUMNS = (
    projects.c.id,
    projects.c.name,
    projects.c.description,
    projects.c.label_config,
    projects.c.created_by,
    projects.c.created_at,
    projects.c.updated_at,
)


def _check_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise Invalid("a project name needs 1 to 200 characters", {"field": "name"})
    return name


def create(
    conn: Connection,
    org_id: int,
    name: str,
    label_config_xml: str,
    description: str = "",
    created_by: int | None = None,
) -> dict[str, Any]:
    name = _check_name(name)
    label_config.parse(label_config_xml)
    now = datetime.now(UTC)
    try:
        with conn.begin_nested():
            new_id = conn.execute(
                insert(projects)
                .values(
                    org_id=org_id,
                    name=name,
                    description=description or "",
                    label_config=label_config_xml,
                    created_by=created_by,
                    created_at=now,
                    updated_at=now,
                )
                .returning(projects.c.id)
            ).scalar_one()
    except IntegrityError:
        raise Conflict(f"a project named {name!r} exists already") from None
    return get(conn, org_id, int(new_id))


def list_all(conn: Connection, org_id: int) -> list[dict[str, Any]]:
    """The organization's projects by name, each with its task counts."""
    rows = conn.execute(
        select(*COLUMNS).where(projects.c.org_id == org_id).order_by(projects.c.name)
    ).mappings()
    found = [_public(r) for r in rows]
    counts = _task_counts(conn, [p["id"] for p in found])
    return [_with_counts(p, counts.get(p["id"], {})) for p in found]


def get(conn: Connection, org_id: int, id_or_name: int | str) -> dict[str, Any]:
    """By id when given digits (as datasets are), else by name; with its task counts."""
    out = _public(_row(conn, org_id, id_or_name))
    return _with_counts(out, _task_counts(conn, [out["id"]]).get(out["id"], {}))


def _task_counts(conn: Connection, project_ids: list[int]) -> dict[int, dict[str, int]]:
    """Tasks by status of each project (one grouped read of the status index)."""
    found: dict[int, dict[str, int]] = {}
    if not project_ids:
        return found
    rows = conn.execute(
        select(tasks.c.project_id, tasks.c.status, func.count())
        .where(tasks.c.project_id.in_(project_ids))
        .group_by(tasks.c.project_id, tasks.c.status)
    )
    for project_id, status, n in rows:
        found.setdefault(int(project_id), {})[status] = int(n)
    return found


def _with_counts(project: dict[str, Any], by_status: dict[str, int]) -> dict[str, Any]:
    project["task_count"] = sum(by_status.values())
    project["task_counts"] = {s: by_status.get(s, 0) for s in ("unlabeled", "labeled", "skipped")}
    return project


def get_id(conn: Connection, org_id: int, id_or_name: int | str) -> int:
    return int(_row(conn, org_id, id_or_name)["id"])


def config_of(conn: Connection, org_id: int, project_id: int) -> LabelConfig:
    """The project's parsed label config (``NotFound`` for another organization's)."""
    return label_config.parse(str(_row(conn, org_id, project_id)["label_config"]))


def _row(conn: Connection, org_id: int, id_or_name: int | str) -> Any:
    query = select(*COLUMNS).where(projects.c.org_id == org_id)
    if is_id(id_or_name):
        project_id = int(id_or_name)
        row = None
        if 0 < project_id <= MAX_ID:
            row = conn.execute(query.where(projects.c.id == project_id)).mappings().first()
        if row is None:
            raise NotFound(f"no project with id {project_id}")
        return row
    row = conn.execute(query.where(projects.c.name == str(id_or_name).strip())).mappings().first()
    if row is None:
        raise NotFound(f"no project named {id_or_name!r}")
    return row


def update_project(
    conn: Connection,
    org_id: int,
    id_or_name: int | str,
    *,
    name: str | None = None,
    description: str | None = None,
    label_config_xml: str | None = None,
) -> dict[str, Any]:
    current = _row(conn, org_id, id_or_name)
    values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
    if name is not None:
        values["name"] = _check_name(name)
    if description is not None:
        values["description"] = description
    if label_config_xml is not None:
        config = label_config.parse(label_config_xml)
        _refuse_orphans(conn, int(current["id"]), config)
        values["label_config"] = label_config_xml
    try:
        with conn.begin_nested():
            conn.execute(update(projects).where(projects.c.id == current["id"]).values(**values))
    except IntegrityError:
        raise Conflict(f"a project named {values.get('name')!r} exists already") from None
    return get(conn, org_id, int(current["id"]))


def _refuse_orphans(conn: Connection, project_id: int, config: LabelConfig) -> None:
    """``Conflict`` when a stored annotation has a region the new config would not accept."""
    rows = conn.execute(
        select(annotation_rows.c.id, annotation_rows.c.result).where(
            annotation_rows.c.project_id == project_id
        )
    )
    for annotation_id, result in rows:
        for region in orjson.loads(result):
            reason = config.region_error(region)
            if reason is not None:
                raise Conflict(
                    f"annotation {annotation_id} would no longer fit the label config: {reason}",
                    {"field": "label_config", "annotation_id": annotation_id},
                    code="label_config_in_use",
                )


def remove(conn: Connection, org_id: int, id_or_name: int | str, *, role: str) -> None:
    """Delete the project with its tasks, annotations, predictions and target storages
    (admins only). The data rows stay, and nothing in any store changes."""
    require_admin(role, "delete projects")
    project_id = int(_row(conn, org_id, id_or_name)["id"])
    conn.execute(
        delete(storages).where(storages.c.org_id == org_id, storages.c.project_id == project_id)
    )
    conn.execute(delete(projects).where(projects.c.id == project_id, projects.c.org_id == org_id))


def _public(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in ("created_at", "updated_at"):
        out[key] = iso(out[key])
    return out
