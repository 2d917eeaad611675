"""The web UI's project pages: the list (with creating one from a template or pasted XML, the
config checked and previewed as one types), a project, and labeling."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tether.api.deps import ConnDep
from tether.projects import label_config, projects
from tether.web.pages import PageCaller, render

router = APIRouter(include_in_schema=False)


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
    request: Request, project_id: int, caller: PageCaller, conn: ConnDep
) -> HTMLResponse:
    project = projects.get(conn, caller.org_id, project_id)
    return render(request, "project.html", caller, project=project)


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
