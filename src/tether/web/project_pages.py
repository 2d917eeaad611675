"""The web UI's project pages: the list (with creating one from a template or pasted XML, the
config checked and previewed as one types), a project, and labeling."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from tether.api.deps import ConnDep, SettingsDep
from tether.catalog.media import MEDIA_TYPES
from tether.db.tables import TASK_STATUSES
from tether.errors import Invalid
from tether.projects import label_config, projects, tasks
from tether.web.pages import PageCaller, kept, render, row_filter, searched, storages_page

router = APIRouter(include_in_schema=False)
PAGE_TASKS = 50


@router.get("/projects", response_class=HTMLResponse)
def project_list(request: Request, caller: PageCaller, conn: ConnDep) -> HTMLResponse:
    return render(
        request,
        "projects.html",
        caller,
        projects=projects.list_all(conn, caller.org_id),
        templates={name: label_config.template(name) for name in label_config.template_names()},
    )


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project_page(
    request: Request,
    project_id: int,
    caller: PageCaller,
    conn: ConnDep,
    status: str = "",
    q: str = "",
    media_type: str = "",
    metadata: Annotated[list[str], Query()] = [],  # noqa: B006
    after: int | None = None,
) -> HTMLResponse:
    """A project: its counts, its tasks (filtered by status, global key or external ID,
    media type and metadata as the catalog is; a keyset page at a time), exports."""
    project = projects.get(conn, caller.org_id, project_id)
    chosen = status if status in TASK_STATUSES else None
    error = None
    items: list[dict[str, Any]] = []
    cursor = None
    try:
        items, cursor = searched(
            lambda flt: tasks.page(
                conn, caller.org_id, project["id"], tasks.TaskFilter(chosen, flt), after, PAGE_TASKS
            ),
            row_filter(q, media_type, metadata),
            q,
        )
    except Invalid as exc:
        error = exc.message
    keep = kept({"status": chosen or "", "q": q, "media_type": media_type}, metadata)
    return render(
        request,
        "project.html",
        caller,
        project=project,
        tasks=items,
        status=chosen or "",
        statuses=TASK_STATUSES,
        q=q,
        media_type=media_type,
        media_types=MEDIA_TYPES,
        filters=[m for m in metadata if m],
        filtered=bool(chosen or q or media_type or any(metadata)),
        error=error,
        next_url=f"?{urlencode([*keep, ('after', cursor)])}" if cursor else None,
        first_url=f"?{urlencode(keep)}" if after else None,
        formats=("json", "ndjson", "coco", "yolo", "voc"),
    )


@router.get("/projects/{project_id}/storages", response_class=HTMLResponse)
def project_storages(
    request: Request, project_id: int, caller: PageCaller, conn: ConnDep, settings: SettingsDep
) -> HTMLResponse:
    project = projects.get(conn, caller.org_id, project_id)
    return storages_page(request, conn, settings, caller, "target", project)


@router.get("/projects/{project_id}/label", response_class=HTMLResponse)
def label_page(
    request: Request, project_id: int, caller: PageCaller, conn: ConnDep
) -> HTMLResponse:
    """Labeling: the project's queue (``next-task``) in Label Studio's editor."""
    project = projects.get(conn, caller.org_id, project_id)
    config = label_config.parse(str(project["label_config"]))
    return render(
        request,
        "label.html",
        caller,
        project=project,
        setup={
            "project_id": project["id"],
            "label_config": project["label_config"],
            "required_keys": list(config.required_keys),
            "user": {"id": caller.user_id, "email": caller.email},
        },
    )
