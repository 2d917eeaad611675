"""Authentication and the one JSON error shape, through the in-process API."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import Tenant
from tether import __version__, accounts

UNAUTHORIZED_NO_KEY = {
    "error": {
        "code": "unauthorized",
        "message": "send an API key as 'Authorization: Bearer <key>'",
        "details": None,
    }
}
UNAUTHORIZED_BAD_KEY = {
    "error": {"code": "unauthorized", "message": "invalid or revoked API key", "details": None}
}
PROTECTED = [
    ("get", "/api/v1/datasets"),
    ("post", "/api/v1/datasets"),
    ("get", "/api/v1/datasets/some-name"),
    ("patch", "/api/v1/datasets/some-name"),
    ("delete", "/api/v1/datasets/some-name"),
    ("post", "/api/v1/datasets/some-name/data-rows"),
    ("get", "/api/v1/datasets/some-name/export"),
    ("get", "/api/v1/data-rows"),
    ("get", "/api/v1/data-rows/1"),
    ("patch", "/api/v1/data-rows/1"),
    ("delete", "/api/v1/data-rows/1"),
    ("post", "/api/v1/data-rows/delete"),
    ("post", "/api/v1/data-rows/lookup"),
    ("post", "/api/v1/data-rows/global-keys"),
    ("post", "/api/v1/data-rows/global-keys/clear"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/abc"),
    ("get", "/api/v1/jobs/abc/errors"),
    ("post", "/api/v1/jobs/abc/cancel"),
    ("get", "/api/v1/metadata-schema"),
    ("post", "/api/v1/metadata-schema"),
    ("get", "/api/v1/metadata-schema/tag"),
    ("patch", "/api/v1/metadata-schema/tag"),
    ("delete", "/api/v1/metadata-schema/tag"),
]


def _call(http: Any, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if method in ("post", "patch"):
        kwargs["json"] = {}
    return getattr(http, method)(path, **kwargs)


def test_health_is_open_and_reports_version(http: Any) -> None:
    r = http.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": __version__}


def test_openapi_document_is_served_without_a_key(http: Any) -> None:
    r = http.get("/api/v1/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in ("/api/v1/datasets", "/api/v1/data-rows", "/api/v1/jobs/{job_id}"):
        assert path in paths
    assert "/api/v1/metadata-schema" in paths


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_route_needs_a_key(http: Any, method: str, path: str) -> None:
    r = _call(http, method, path)
    assert r.status_code == 401, r.text
    assert r.json() == UNAUTHORIZED_NO_KEY
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer tth_not-a-real-key", "Bearer ", "Basic dXNlcjpwYXNz", "tth_no-scheme", "Bearer"],
)
def test_a_bad_key_is_401(http: Any, authorization: str) -> None:
    r = http.get("/api/v1/datasets", headers={"Authorization": authorization})
    assert r.status_code == 401
    body = r.json()
    assert body["error"]["code"] == "unauthorized"
    assert body in (UNAUTHORIZED_NO_KEY, UNAUTHORIZED_BAD_KEY)
    if authorization.startswith("Bearer tth_"):
        assert body == UNAUTHORIZED_BAD_KEY


def test_a_key_with_a_changed_character_is_401(http: Any, tenant: Tenant) -> None:
    tampered = tenant.key[:-1] + ("A" if tenant.key[-1] != "A" else "B")
    r = http.get("/api/v1/datasets", headers={"Authorization": f"Bearer {tampered}"})
    assert r.status_code == 401
    assert r.json() == UNAUTHORIZED_BAD_KEY
    assert tenant.get("/datasets").status_code == 200


def test_scheme_is_case_insensitive(http: Any, tenant: Tenant) -> None:
    r = http.get("/api/v1/datasets", headers={"Authorization": f"bearer {tenant.key}"})
    assert r.status_code == 200


def test_revoked_key_is_401_and_other_keys_keep_working(
    http: Any, engine: Engine, tenant: Tenant
) -> None:
    with engine.begin() as conn:
        second = accounts.create_api_key(conn, tenant.email, name="second")
    assert http.get("/api/v1/datasets", headers={"Authorization": f"Bearer {second}"}).is_success
    with engine.begin() as conn:
        keys = accounts.list_api_keys(conn, tenant.email)
        first_id = next(k["id"] for k in keys if k["name"] == "default")
        accounts.revoke_api_key(conn, int(str(first_id)))
    r = tenant.get("/datasets")
    assert r.status_code == 401
    assert r.json() == UNAUTHORIZED_BAD_KEY
    r = http.get("/api/v1/datasets", headers={"Authorization": f"Bearer {second}"})
    assert r.status_code == 200


def test_use_records_last_used_time(engine: Engine, tenant: Tenant) -> None:
    with engine.connect() as conn:
        before = accounts.list_api_keys(conn, tenant.email)
    assert tenant.get("/datasets").status_code == 200
    with engine.connect() as conn:
        after = accounts.list_api_keys(conn, tenant.email)
    assert len(before) == len(after) == 1
    assert after[0]["last_used_at"] is not None
    assert after[0]["hint"] == tenant.key[:8]


def test_unknown_route_and_method_use_the_error_shape(tenant: Tenant) -> None:
    r = tenant.get("/no-such-thing")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "Not Found", "details": None}}
    r = tenant.http.put("/api/v1/datasets", headers=tenant.headers, json={})
    assert r.status_code == 405
    assert r.json() == {
        "error": {"code": "method_not_allowed", "message": "Method Not Allowed", "details": None}
    }


def test_validation_error_shape(tenant: Tenant) -> None:
    r = tenant.get("/data-rows", params={"limit": 0})
    assert r.status_code == 422
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == "invalid"
    assert body["error"]["message"].startswith("query.limit: ")
    assert body["error"]["details"][0]["loc"] == ["query", "limit"]


def test_malformed_json_body_is_422_not_500(tenant: Tenant) -> None:
    r = tenant.post("/datasets", content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid"


def test_unknown_body_field_is_refused(tenant: Tenant) -> None:
    r = tenant.post("/datasets", json={"name": "x", "colour": "red"})
    assert r.status_code == 422
    assert "colour" in r.json()["error"]["message"]
