"""The web UI's pages: server-rendered with Jinja2, calling the services as the API does.

Reading pages render what the services return for the signed-in caller (the session
cookie; the same organization scoping and roles as every API call). Pages change nothing
themselves: their small scripts (``static/app.js``) call the JSON API with the session
cookie and its CSRF token, so every rule lives in one place. A request without a live
session is sent to the sign-in page and comes back after.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection

from tether import accounts
from tether.accounts import keys, sessions, users
from tether.accounts.roles import Caller
from tether.api.deps import SESSION_COOKIE, ConnDep, SettingsDep
from tether.api.routes.data_rows import parse_metadata_filters, with_resolved
from tether.catalog import datasets, metadata_schema, queries
from tether.catalog.media import MEDIA_TYPES
from tether.catalog.queries import RowFilter
from tether.errors import Invalid, Unauthorized
from tether.jobs import service as jobs
from tether.sync import fields as storage_fields
from tether.sync import service as storages
from tether.sync.connections import SECRET_FIELDS, org_external_id

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
PAGE_ROWS = 60


class SignInNeeded(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def page_caller(request: Request) -> Caller:
    """The signed-in caller of a page; no live session: to the sign-in page."""
    token = request.cookies.get(SESSION_COOKIE)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not token:
        raise SignInNeeded(target)
    try:
        with request.app.state.engine.begin() as conn:
            return sessions.lookup(conn, token).caller
    except Unauthorized:
        raise SignInNeeded(target) from None


PageCaller = Annotated[Caller, Depends(page_caller)]


def to_sign_in(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInNeeded)
    return RedirectResponse("/sign-in?" + urlencode({"next": exc.next_url}), status_code=303)


def render(request: Request, name: str, caller: Caller | None, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"caller": caller, "path": request.url.path, **context}
    )


def _org_name(conn: Connection, caller: Caller) -> str:
    return str(accounts.get_org(conn, caller.org_id)["name"])


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/datasets", status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in(request: Request, next: str = "/datasets") -> HTMLResponse:
    # Only a path of this site: never a redirect to another origin.
    safe = next if next.startswith("/") and not next.startswith("//") else "/datasets"
    return render(request, "sign_in.html", None, next_url=safe)


@router.get("/datasets", response_class=HTMLResponse)
def dataset_list(request: Request, caller: PageCaller, conn: ConnDep) -> HTMLResponse:
    return render(
        request,
        "datasets.html",
        caller,
        org=_org_name(conn, caller),
        datasets=datasets.summaries(conn, caller.org_id),
    )


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def catalog(
    request: Request,
    dataset_id: int,
    caller: PageCaller,
    conn: ConnDep,
    settings: SettingsDep,
    q: str = "",
    media_type: str = "",
    metadata: Annotated[list[str], Query()] = [],  # noqa: B006
    after: int | None = None,
    view: str = "grid",
) -> HTMLResponse:
    """The catalog of a dataset: a grid of thumbnails (or a list), search by global key
    prefix or external id, media type and metadata filters, facets, keyset paging."""
    dataset = datasets.get(conn, caller.org_id, dataset_id)
    error = None
    items: list[dict[str, Any]] = []
    cursor = None
    try:
        items, cursor = searched(
            lambda flt: queries.page(conn, caller.org_id, flt, after, PAGE_ROWS),
            row_filter(q, media_type, metadata, dataset["id"]),
            q,
        )
        with_resolved(conn, settings, caller.org_id, items)
    except Invalid as exc:
        error = exc.message
    base = kept({"q": q, "media_type": media_type, "view": view}, metadata)
    return render(
        request,
        "catalog.html",
        caller,
        dataset=dataset,
        rows=items,
        error=error,
        q=q,
        media_type=media_type,
        media_types=MEDIA_TYPES,
        filters=[m for m in metadata if m],
        view="list" if view == "list" else "grid",
        next_url=f"?{urlencode([*base, ('after', cursor)])}" if cursor else None,
        first_url=f"?{urlencode(base)}" if after else None,
        query=urlencode(base),
        thumb=_thumbnail,
    )


def row_label(row: dict[str, Any]) -> str:
    """What names a row for a person: its global key, external id, or its file's name."""
    if row.get("global_key") or row.get("external_id"):
        return str(row.get("global_key") or row.get("external_id"))
    data = row["row_data"]
    if (isinstance(data, str) and "://" in data) or str(data).startswith("/data/"):
        return str(data).rstrip("/").rsplit("/", 1)[-1].rsplit("=", 1)[-1]
    return f"row {row['id']}"


templates.env.globals["row_label"] = row_label


def row_filter(
    q: str, media_type: str, metadata: list[str], dataset_id: int | None = None
) -> RowFilter:
    """The data row filters of a page's form (``Invalid`` for a metadata filter that does
    not parse): ``q`` is tried as a global key prefix first (see ``searched``)."""
    return RowFilter(
        dataset_id=dataset_id,
        media_type=media_type or None,
        global_key_prefix=q or None,
        metadata=parse_metadata_filters([m for m in metadata if m], None),
    )


def searched(fetch: Callable[[RowFilter], tuple[Any, Any]], flt: RowFilter, q: str) -> Any:
    """``fetch(flt)``; when a search ``q`` finds no global key with that prefix, the rows
    whose external ID it is."""
    found = fetch(flt)
    if not found[0] and q:
        flt.global_key_prefix, flt.external_id = None, q
        found = fetch(flt)
    return found


def kept(fields: dict[str, str], metadata: list[str]) -> list[tuple[str, str]]:
    """A page's filters as query parameters, for its paging links."""
    return [(k, v) for k, v in fields.items() if v] + [("metadata", m) for m in metadata if m]


def _thumbnail(row: dict[str, Any]) -> str | None:
    """The URL a grid shows for a row: the image itself, or a video's poster-less source."""
    resolved = row.get("resolved") or {}
    data = resolved.get("row_data", row["row_data"])
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, str)), None)
    if row["media_type"] in ("IMAGE", "VIDEO") and isinstance(data, str):
        return data
    return None


@router.get("/data-rows/{row_id}", response_class=HTMLResponse)
def data_row(
    request: Request, row_id: int, caller: PageCaller, conn: ConnDep, settings: SettingsDep
) -> HTMLResponse:
    row = queries.get(conn, caller.org_id, row_id)
    with_resolved(conn, settings, caller.org_id, [row])
    resolved = row["resolved"]
    attachments = list(zip(row["attachments"], resolved["attachments"], strict=True))
    return render(
        request,
        "data_row.html",
        caller,
        row=row,
        dataset=datasets.get(conn, caller.org_id, row["dataset_id"]),
        asset=resolved["row_data"],
        attachments=attachments,
        overlays=[(a, r) for a, r in attachments if a["type"] == "IMAGE_OVERLAY"],
    )


@router.get("/datasets/{dataset_id}/import", response_class=HTMLResponse)
def import_page(
    request: Request, dataset_id: int, caller: PageCaller, conn: ConnDep
) -> HTMLResponse:
    return render(
        request,
        "import.html",
        caller,
        dataset=datasets.get(conn, caller.org_id, dataset_id),
        datasets=datasets.list_all(conn, caller.org_id),
    )


@router.get("/datasets/{dataset_id}/storages", response_class=HTMLResponse)
def storage_list(
    request: Request, dataset_id: int, caller: PageCaller, conn: ConnDep, settings: SettingsDep
) -> HTMLResponse:
    dataset = datasets.get(conn, caller.org_id, dataset_id)
    return storages_page(request, conn, settings, caller, "source", dataset)


def storages_page(
    request: Request,
    conn: Connection,
    settings: Any,
    caller: Caller,
    role: str,
    owner: dict[str, Any],
) -> HTMLResponse:
    """A dataset's source storages or a project's target storages, with their syncs (or
    exports) and the form that connects another."""
    source = role == "source"
    found = storages.list_storages(
        conn,
        settings,
        caller.org_id,
        dataset_id=owner["id"] if source else None,
        project_id=None if source else owner["id"],
    )
    flt = (
        jobs.JobFilter(kind="sync", dataset_id=owner["id"]) if source else jobs.JobFilter("export")
    )
    runs, _cursor = jobs.page(conn, caller.org_id, flt, None, 200)
    history: dict[int, list[dict[str, Any]]] = {}
    for job in runs:
        history.setdefault(job.get("storage_id") or 0, []).append(job)
    return render(
        request,
        "storages.html",
        caller,
        role=role,
        owner=owner,
        owner_path=("/datasets/" if source else "/projects/") + str(owner["id"]),
        storages=found,
        history={sid: jobs_of[:10] for sid, jobs_of in history.items()},
        types=storage_fields.TYPES,
        type_fields={t: _field_specs(t) for t in storage_fields.TYPES},
        options=_option_specs(storage_fields.ROLE_MODELS[role]),
        external_id=org_external_id(conn, caller.org_id),
    )


def _field_specs(type_: str) -> list[dict[str, Any]]:
    """Form fields of a storage type: name, whether it is secret, required, its help."""
    model = storage_fields.known_type(type_)
    secret = set(SECRET_FIELDS.get(type_, ()))
    return [
        {
            "name": name,
            "secret": name in secret,
            "required": info.is_required(),
            "help": info.description or "",
            "number": info.annotation is int,
        }
        for name, info in model.model_fields.items()
        if name not in storage_fields.DERIVED
    ]


def _option_specs(model: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "flag": info.annotation is bool,
            "default": info.default,
            "help": info.description or "",
        }
        for name, info in model.model_fields.items()
    ]


@router.get("/jobs", response_class=HTMLResponse)
def job_list(request: Request, caller: PageCaller, conn: ConnDep) -> HTMLResponse:
    items, _cursor = jobs.page(conn, caller.org_id, None, None, 50)
    return render(request, "jobs.html", caller, jobs=items)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, caller: PageCaller, conn: ConnDep) -> HTMLResponse:
    job = jobs.get(conn, caller.org_id, job_id)
    errors, cursor = jobs.errors(conn, caller.org_id, job_id, None, 100)
    return render(request, "job.html", caller, job=job, errors=errors, more_errors=cursor)


@router.get("/settings/api-keys", response_class=HTMLResponse)
def api_keys(request: Request, caller: PageCaller, conn: ConnDep) -> HTMLResponse:
    return render(request, "api_keys.html", caller, keys=keys.list_keys(conn, caller))


@router.get("/settings/members", response_class=HTMLResponse)
def members(request: Request, caller: PageCaller, conn: ConnDep) -> HTMLResponse:
    return render(
        request,
        "members.html",
        caller,
        members=users.list_users(conn, caller),
        org=_org_name(conn, caller),
    )


@router.get("/settings/schema", response_class=HTMLResponse)
def schema(request: Request, caller: PageCaller, conn: ConnDep) -> HTMLResponse:
    return render(
        request,
        "schema.html",
        caller,
        fields=[f.to_dict() for f in metadata_schema.list_fields(conn, caller.org_id)],
        kinds=metadata_schema.KINDS,
    )
