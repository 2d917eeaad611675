"""Projects: ``/projects`` (create, list, show, change, delete) and the shipped label config
templates."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from tether.api.deps import CallerAloneDep, CallerDep, ConnDep
from tether.api.errors import documented
from tether.api.idempotency import OnceDep
from tether.api.models import (
    LabelConfigCheck,
    LabelConfigIn,
    LabelConfigTemplates,
    Project,
    ProjectIn,
    ProjectList,
    ProjectPatch,
)
from tether.projects import label_config, projects

router = APIRouter(prefix="/projects", tags=["projects"], responses=documented(401, 422))
TAKEN = "A project of that name exists already."
CONFIG = (
    "A value is wrong; a label config that fails its check is `invalid_label_config`, with "
    "the line in `details.line`."
)


@router.post(
    "",
    status_code=201,
    response_model=Project,
    responses=documented(409, 413, e409=TAKEN, e422=CONFIG),
)
def create_project(
    body: ProjectIn, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> dict[str, Any]:
    """A new project with a label config: Label Studio's XML, or a shipped `template`."""
    xml = body.label_config if body.template is None else label_config.template(body.template)
    return once(
        conn,
        lambda: projects.create(
            conn, caller.org_id, body.name, str(xml), body.description, caller.user_id
        ),
    )


@router.get("", response_model=ProjectList)
def list_projects(caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return {"items": projects.list_all(conn, caller.org_id)}


@router.get("/templates", response_model=LabelConfigTemplates)
def list_templates(caller: CallerAloneDep) -> dict[str, Any]:
    """The label configs tether ships for common tasks (`template` on create)."""
    return {
        "items": [
            {"name": name, "label_config": label_config.template(name)}
            for name in label_config.template_names()
        ]
    }


@router.post("/check-label-config", response_model=LabelConfigCheck, responses=documented(413))
def check_label_config(body: LabelConfigIn, caller: CallerAloneDep) -> dict[str, Any]:
    """Check a label config without saving anything (as a config editor does while one
    types): `ok`, or `message` and `line` of the first thing wrong; the data keys tasks need
    and the controls with the region types they make."""
    return label_config.check(body.label_config)


@router.get("/{project}", response_model=Project, responses=documented(404))
def get_project(project: str, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    """By id (a path of digits is always an id), or by name."""
    return projects.get(conn, caller.org_id, project)


@router.patch(
    "/{project}",
    response_model=Project,
    responses=documented(
        404,
        409,
        413,
        e409=TAKEN + " Or `label_config_in_use`: stored annotations have regions the new "
        "config would not accept.",
        e422=CONFIG,
    ),
)
def update_project(
    project: str, body: ProjectPatch, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> dict[str, Any]:
    return once(
        conn,
        lambda: projects.update_project(
            conn,
            caller.org_id,
            project,
            name=body.name,
            description=body.description,
            label_config_xml=body.label_config,
        ),
    )


@router.delete(
    "/{project}",
    status_code=204,
    response_class=Response,
    responses=documented(403, 404, e403="Admins only."),
)
def delete_project(project: str, caller: CallerDep, conn: ConnDep, once: OnceDep) -> Response:
    """Delete the project with its tasks, annotations, predictions and target storages
    (admins only). Data rows stay; nothing in any store changes."""
    once(conn, lambda: projects.remove(conn, caller.org_id, project, role=caller.role))
    return Response(status_code=204)
