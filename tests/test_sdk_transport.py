"""The SDK's request layer in-process: ``Client(transport=...)`` over the real app (through a
transport that can lose answers after the server handled them) or over a scripted
``httpx.MockTransport``. Only what is safe to send again is sent again."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Tenant
from tether import Client
from tether.sdk import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    TetherAPIError,
    TooLargeError,
)

pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")


class AppTransport(httpx.BaseTransport):
    """Hands each request to the in-process app; ``lose(n)`` makes the next ``n`` answers
    vanish after the server handled the request (as a dropped connection would)."""

    def __init__(self, http: Any) -> None:
        self.http = http
        self.sent: list[httpx.Request] = []
        self.to_lose = 0
        self.error: type[httpx.TransportError] = httpx.ReadError

    def lose(self, n: int = 1, error: type[httpx.TransportError] = httpx.ReadError) -> None:
        self.to_lose, self.error = n, error

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        answer = self.http.request(
            request.method, str(request.url), headers=request.headers, content=request.read()
        )
        if self.to_lose:
            self.to_lose -= 1
            raise self.error("connection lost", request=request)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


@pytest.fixture
def wire(http: Any) -> AppTransport:
    return AppTransport(http)


@pytest.fixture
def sdk(tenant: Tenant, wire: AppTransport) -> Iterator[Client]:
    with Client("http://testserver", api_key=tenant.key, transport=wire, backoff=0) as c:
        yield c


def name() -> str:
    return f"ds-{uuid.uuid4().hex[:8]}"


def test_create_dataset_whose_answer_was_lost_returns_the_dataset(
    sdk: Client, wire: AppTransport
) -> None:
    wire.lose(2)
    ds = sdk.create_dataset(wanted := name())
    assert ds.name == wanted
    assert [d.name for d in sdk.datasets()].count(wanted) == 1
    tries = [r for r in wire.sent if r.method == "POST"]
    assert len(tries) == 3
    assert len({r.headers["Idempotency-Key"] for r in tries}) == 1


def test_every_create_and_change_survives_a_lost_answer(sdk: Client, wire: AppTransport) -> None:
    ds = sdk.create_dataset(name())
    job = ds.create_data_rows(
        [{"row_data": f"s3://b/{i}.jpg", "global_key": f"{ds.id}-{i}"} for i in range(6)]
    ).wait_till_done()
    assert job.counts["created"] == 6
    ids = [r["id"] for r in ds.data_rows()]
    calls: list[Callable[[], Any]] = [
        lambda: sdk.create_metadata_field(f"f{uuid.uuid4().hex[:8]}", "string"),
        lambda: sdk.update_data_row(ids[0], external_id="e"),
        lambda: sdk.assign_global_keys([{"data_row_id": ids[1], "global_key": f"n-{ids[1]}"}]),
        lambda: sdk.clear_global_keys([f"{ds.id}-2"]),
        lambda: sdk.delete_data_row(ids[3]),
        lambda: ds.update(description="changed"),
    ]
    for call in calls:
        wire.lose(1)
        call()  # raises if the retry acted again (409, 404, not found)
    wire.lose(1)
    results = sdk.delete_data_rows(ids=[ids[4]], global_keys=[f"{ds.id}-5"])
    assert all(r.get("deleted", r.get("ok")) for r in results), results
    wire.lose(1)
    assert ds.delete() == 3


def test_a_retried_delete_data_rows_reports_nothing_not_found(
    sdk: Client, wire: AppTransport
) -> None:
    ds = sdk.create_dataset(name())
    ds.create_data_rows(
        [{"row_data": f"s3://b/{i}.jpg", "global_key": f"d{ds.id}-{i}"} for i in range(4)]
    ).wait_till_done()
    ids = [r["id"] for r in ds.data_rows()]
    for error in (httpx.ReadError, httpx.RemoteProtocolError):
        wire.lose(1, error)
        target = [ids.pop()]
        results = sdk.delete_data_rows(ids=target)
        assert [r.get("deleted", r.get("ok")) for r in results] == [True], results
    assert len(list(ds.data_rows())) == 2


def test_a_request_that_is_not_safe_to_repeat_is_not_repeated(
    sdk: Client, wire: AppTransport
) -> None:
    ds = sdk.create_dataset(name())
    job = ds.create_data_rows([{"row_data": "s3://b/x.jpg"}]).wait_till_done()
    before = len(wire.sent)
    wire.lose(1)
    with pytest.raises(httpx.ReadError):
        sdk.request("POST", f"/jobs/{job.id}/cancel")  # no key: may have acted
    assert len(wire.sent) == before + 1


def test_reads_are_retried(sdk: Client, wire: AppTransport) -> None:
    ds = sdk.create_dataset(name())
    wire.lose(3)
    assert sdk.get_dataset(ds.id).name == ds.name
    wire.lose(1)
    assert sdk.get_data_row_ids_for_global_keys(["nope"])[0]["data_row_id"] is None
    wire.lose(4)
    with pytest.raises(httpx.ReadError):
        sdk.get_dataset(ds.id)  # retries=3: four losses are too many


# --- scripted answers ------------------------------------------------------------------------


def scripted(*answers: httpx.Response | type[httpx.TransportError]) -> tuple[Client, list[Any]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, httpx.Response):
            return answer
        raise answer("scripted", request=request)

    client = Client("http://t", api_key="k", transport=httpx.MockTransport(handler), backoff=0)
    return client, seen


def error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": "m", "details": 1}})


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", ForbiddenError),
        (404, "not_found", NotFoundError),
        (409, "conflict", ConflictError),
        (413, "too_large", TooLargeError),
        (422, "invalid", InvalidError),
        (500, "internal", TetherAPIError),
    ],
)
def test_each_error_status_is_its_exception(status: int, code: str, cls: type) -> None:
    client, seen = scripted(error(status, code))
    with pytest.raises(cls) as info:
        client.create_dataset("x")
    assert type(info.value) is cls
    assert (info.value.status, info.value.code, info.value.details) == (status, code, 1)
    assert len(seen) == 1


def test_an_answer_that_is_not_the_error_shape_is_still_an_error() -> None:
    client, _ = scripted(httpx.Response(403, text="<html>proxy says no</html>"))
    with pytest.raises(ForbiddenError) as info:
        client.datasets()
    assert info.value.code == "http_error" and "proxy says no" in info.value.message


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_only_when_safe(status: int) -> None:
    ok = httpx.Response(200, json={"items": []})
    client, seen = scripted(error(status, "x"), error(status, "x"), ok)
    assert client.datasets() == []
    assert len(seen) == 3
    client, seen = scripted(error(status, "x"), ok)
    with pytest.raises(TetherAPIError):
        client.request("POST", "/jobs/j/cancel")
    assert len(seen) == 1


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH"])
def test_a_connection_never_opened_is_always_retried(method: str) -> None:
    client, seen = scripted(httpx.ConnectError, httpx.ConnectTimeout, httpx.Response(200))
    assert client.request(method, "/anything").status_code == 200
    assert len(seen) == 3


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_lost_answer_to_an_unkeyed_change_is_raised(method: str) -> None:
    for lost in (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
        client, seen = scripted(lost, httpx.Response(200))
        with pytest.raises(lost):
            client.request(method, "/anything")
        assert len(seen) == 1


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_a_lost_answer_to_an_idempotent_method_is_retried(method: str) -> None:
    client, seen = scripted(httpx.ReadError, httpx.Response(200))
    assert client.request(method, "/anything").status_code == 200
    assert len(seen) == 2


def test_a_missing_key_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TETHER_API_KEY", raising=False)
    with pytest.raises(ValueError, match="TETHER_API_KEY"):
        Client("http://t")


def _job(i: int) -> dict[str, Any]:
    return {
        "id": f"j{i}",
        "kind": "import",
        "status": "completed",
        "dataset_id": 1,
        "format": "ndjson",
        "options": {},
        "progress": {"done": 1, "total": 1},
        "counts": {"created": 1, "updated": 0, "failed": 0},
        "message": None,
        "created_at": "2026-01-01T00:00:00Z",
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z",
    }


@pytest.mark.parametrize("cursor_field", ["next_cursor", None])
def test_jobs_follow_the_cursor_when_the_server_gives_one(cursor_field: str | None) -> None:
    pages = [[_job(i) for i in range(3)], [_job(i) for i in range(3, 5)]]
    if cursor_field is None:
        answers = [httpx.Response(200, json={"items": pages[0]})]
    else:
        answers = [
            httpx.Response(200, json={"items": pages[0], cursor_field: "c1"}),
            httpx.Response(200, json={"items": pages[1], cursor_field: None}),
        ]
    client, seen = scripted(*answers)
    ids = [j.id for j in client.iter_jobs(page_size=3)]
    assert ids == (["j0", "j1", "j2"] if cursor_field is None else [f"j{i}" for i in range(5)])
    assert "after" not in seen[0].url.params
    if cursor_field is not None:
        assert seen[1].url.params["after"] == "c1"


def test_jobs_limit_stops_early() -> None:
    page = {"items": [_job(i) for i in range(3)], "next_cursor": "more"}
    client, seen = scripted(httpx.Response(200, json=page))
    assert [j.id for j in client.jobs(limit=2)] == ["j0", "j1"]
    assert len(seen) == 1 and seen[0].url.params["limit"] == "2"


@pytest.mark.parametrize(
    "tail",
    [
        b'{"error": {"code": "export_incomplete", "message": "the dataset was deleted"}}\n',
        b'{"error": "the dataset was deleted"}\n',
    ],
)
def test_an_error_line_in_an_export_raises(tail: bytes) -> None:
    rows = b"".join(orjson.dumps({"id": i, "row_data": "x"}) + b"\n" for i in range(3))
    ds = httpx.Response(
        200, json={"id": 5, "name": "d", "description": "", "created_at": "", "updated_at": ""}
    )
    client, _ = scripted(ds, httpx.Response(200, content=rows + tail))
    got = []
    with pytest.raises(TetherAPIError, match="the dataset was deleted"):
        for row in client.get_dataset(5).export():
            got.append(row)
    assert [r["id"] for r in got] == [0, 1, 2]


def test_a_row_that_holds_an_error_key_is_still_a_row() -> None:
    line = orjson.dumps({"id": 1, "row_data": "x", "error": "a field of the row"}) + b"\n"
    ds = httpx.Response(
        200, json={"id": 5, "name": "d", "description": "", "created_at": "", "updated_at": ""}
    )
    client, _ = scripted(ds, httpx.Response(200, content=line))
    assert [r["id"] for r in client.get_dataset(5).export()] == [1]


@pytest.mark.parametrize("announced", ["4", "2"])
def test_an_export_that_does_not_hold_the_rows_it_announced_raises(announced: str) -> None:
    rows = b"".join(orjson.dumps({"id": i, "row_data": "x"}) + b"\n" for i in range(3))
    ds = httpx.Response(
        200, json={"id": 5, "name": "d", "description": "", "created_at": "", "updated_at": ""}
    )
    answer = httpx.Response(200, content=rows, headers={"X-Tether-Export-Rows": announced})
    client, _ = scripted(ds, answer)
    with pytest.raises(TetherAPIError) as raised:
        list(client.get_dataset(5).export())
    assert raised.value.code == "export_incomplete"
    ds = httpx.Response(
        200, json={"id": 5, "name": "d", "description": "", "created_at": "", "updated_at": ""}
    )
    whole = httpx.Response(200, content=rows, headers={"X-Tether-Export-Rows": "3"})
    client, _ = scripted(ds, whole)
    assert [r["id"] for r in client.get_dataset(5).export()] == [0, 1, 2]
