"""Authentication (API keys, web sign-in sessions with CSRF, a user's own keys) and the one
JSON error shape, through the in-process API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from tests.conftest import Tenant
from tether import __version__, accounts
from tether.accounts.throttle import MAX_TRACKED, SignInThrottle
from tether.db import tables
from tether.errors import RateLimited
from tether.security.api_keys import hash_key

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
    ("get", "/api/v1/session"),
    ("get", "/api/v1/api-keys"),
    ("post", "/api/v1/api-keys"),
    ("delete", "/api/v1/api-keys/1"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("patch", "/api/v1/users/1"),
    ("delete", "/api/v1/users/1"),
    ("get", "/api/v1/organization"),
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


# --- web sign-in ---------------------------------------------------------------------

PASSWORD = "correct horse battery"
BAD_CREDENTIALS = {
    "error": {"code": "unauthorized", "message": "wrong email or password", "details": None}
}


@pytest.fixture
def browser(app: Any) -> Any:
    """A client of its own, so its cookies never reach other tests."""
    from fastapi.testclient import TestClient

    return TestClient(app)


@contextmanager
def throttle(app: Any, **limits: Any) -> Iterator[SignInThrottle]:
    """A throttle of the test's own while inside (all tests share one client address).
    (pytest's monkeypatch would delete Starlette's state attribute on undo.)"""
    before = app.state.sign_in_throttle
    app.state.sign_in_throttle = SignInThrottle(**limits)
    try:
        yield app.state.sign_in_throttle
    finally:
        app.state.sign_in_throttle = before


@pytest.fixture
def fresh_throttle(app: Any) -> Iterator[SignInThrottle]:
    with throttle(app) as fresh:
        yield fresh


def _person(engine: Engine, org: str | None = None) -> dict[str, Any]:
    """A member with a password (argon2 makes these slow: most tests share one)."""
    email = f"person-{uuid.uuid4().hex[:8]}@example.com"
    with engine.begin() as conn:
        user_id = accounts.create_user(conn, email, org or f"org-{email}", PASSWORD)
        org_id = conn.execute(
            select(tables.users.c.org_id).where(tables.users.c.id == user_id)
        ).scalar_one()
    return {"email": email, "password": PASSWORD, "id": user_id, "org_id": org_id}


@pytest.fixture(scope="module")
def person(engine: Engine) -> dict[str, Any]:
    return _person(engine)


@pytest.fixture
def own_person(engine: Engine, tenant: Tenant) -> dict[str, Any]:
    """A member of the tenant's organization, for tests that change or remove them."""
    with engine.connect() as conn:
        org = accounts.get_org(conn, tenant.org_id)["name"]
    return _person(engine, org)


@pytest.fixture(scope="module")
def signed_in(app: Any, person: dict[str, Any]) -> tuple[Any, str]:
    """A browser signed in as ``person`` (for tests that leave its session as it was)."""
    from fastapi.testclient import TestClient

    browser = TestClient(app)
    return browser, _sign_in(browser, person)["csrf_token"]


def _sign_in(browser: Any, person: dict[str, Any]) -> dict[str, Any]:
    r = browser.post(
        "/api/v1/session", json={"email": person["email"], "password": person["password"]}
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _set_cookies(response: Any) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


@pytest.mark.usefixtures("fresh_throttle")
def test_sign_in_sets_an_httponly_lax_cookie(browser: Any, person: dict[str, Any]) -> None:
    r = browser.post("/api/v1/session", json={"email": person["email"], "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == {"id": person["id"], "email": person["email"], "role": "member"}
    assert body["organization"]["id"] == person["org_id"]
    assert body["auth"] == "session" and len(body["csrf_token"]) >= 32
    cookies = _set_cookies(r)
    session = cookies["tether_session"].lower()
    assert "httponly" in session and "samesite=lax" in session and "path=/" in session
    assert "max-age=86400" in session and "secure" not in session  # plain http here
    csrf = cookies["tether_csrf"].lower()
    assert "httponly" not in csrf and "samesite=lax" in csrf
    assert body["csrf_token"] in cookies["tether_csrf"]
    token = browser.cookies["tether_session"]
    assert token not in r.text  # the session token is in the cookie only
    me = browser.get("/api/v1/session")
    assert me.status_code == 200
    assert me.json() == body


def test_over_https_the_cookies_are_secure(app: Any, person: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    browser = TestClient(app, base_url="https://testserver")
    r = browser.post("/api/v1/session", json={"email": person["email"], "password": PASSWORD})
    assert r.status_code == 200
    assert all("secure" in c.lower() for c in _set_cookies(r).values())


def test_a_session_works_on_every_route(browser: Any, person: dict[str, Any]) -> None:
    csrf = _sign_in(browser, person)["csrf_token"]
    assert browser.get("/api/v1/datasets").status_code == 200
    made = browser.post(
        "/api/v1/datasets", json={"name": f"web-{uuid.uuid4().hex[:6]}"}, headers=_csrf(csrf)
    )
    assert made.status_code == 201, made.text
    # the member's role holds for a session just as for a key
    gone = browser.delete(f"/api/v1/datasets/{made.json()['id']}", headers=_csrf(csrf))
    assert gone.status_code == 403 and gone.json()["error"]["code"] == "forbidden"


def _csrf(token: str) -> dict[str, str]:
    return {"X-CSRF-Token": token}


CSRF_HEADERS: list[dict[str, str] | None] = [None, {"X-CSRF-Token": ""}, {"X-CSRF-Token": "x"}]


@pytest.mark.parametrize("headers", CSRF_HEADERS)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/datasets", {"name": "csrf"}),
        ("PATCH", "/api/v1/datasets/1", {"description": "x"}),
        ("DELETE", "/api/v1/datasets/1", None),
        ("POST", "/api/v1/api-keys", {"name": "stolen"}),
        ("DELETE", "/api/v1/session", None),
    ],
)
def test_unsafe_requests_by_cookie_need_the_csrf_token(
    signed_in: tuple[Any, str],
    headers: dict[str, str] | None,
    method: str,
    path: str,
    body: Any,
) -> None:
    browser, _csrf_token = signed_in
    r = browser.request(method, path, json=body, headers=headers or {})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "csrf_failed"
    assert "X-CSRF-Token" in r.json()["error"]["message"]
    assert browser.get("/api/v1/session").status_code == 200  # still signed in
    assert not any(k["name"] == "stolen" for k in browser.get("/api/v1/api-keys").json()["items"])


def test_csrf_token_of_another_session_is_refused(
    browser: Any, person: dict[str, Any], signed_in: tuple[Any, str]
) -> None:
    theirs = signed_in[1]
    _sign_in(browser, person)
    r = browser.post("/api/v1/datasets", json={"name": "x"}, headers=_csrf(theirs))
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"


def test_an_api_key_needs_no_csrf_token_even_beside_a_cookie(
    signed_in: tuple[Any, str], tenant: Tenant
) -> None:
    browser = signed_in[0]
    r = browser.post(
        "/api/v1/datasets", json={"name": f"k-{uuid.uuid4().hex[:6]}"}, headers=tenant.headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["created_by"] == tenant.user_id  # the key's user, not the cookie's


def test_sign_in_takes_json_only(browser: Any, person: dict[str, Any]) -> None:
    """A cross-site form can post text/plain or a form without a preflight: neither signs
    anyone in (no login CSRF)."""
    raw = f'{{"email": "{person["email"]}", "password": "{PASSWORD}"}}'
    as_text = browser.post("/api/v1/session", content=raw, headers={"Content-Type": "text/plain"})
    as_form = browser.post("/api/v1/session", data={"email": person["email"], "password": PASSWORD})
    for r in (as_text, as_form):
        assert r.status_code == 422, r.text
        assert "tether_session" not in r.headers.get("set-cookie", "")


WRONG = [
    ("wrong password", lambda p, t: {"email": p["email"], "password": PASSWORD + "!"}),
    ("empty password", lambda p, t: {"email": p["email"], "password": ""}),
    ("unknown email", lambda p, t: {"email": "nobody-x@example.com", "password": PASSWORD}),
    ("user without a password", lambda p, t: {"email": t.email, "password": PASSWORD}),
    ("not an email", lambda p, t: {"email": "", "password": PASSWORD}),
]


@pytest.mark.parametrize(("case", "body"), WRONG, ids=[w[0] for w in WRONG])
def test_every_wrong_sign_in_looks_the_same(
    browser: Any, person: dict[str, Any], tenant: Tenant, case: str, body: Any, fresh_throttle: Any
) -> None:
    r = browser.post("/api/v1/session", json=body(person, tenant))
    assert r.status_code == 401, (case, r.text)
    assert r.json() == BAD_CREDENTIALS
    assert "set-cookie" not in r.headers


def test_email_case_does_not_matter(browser: Any, person: dict[str, Any]) -> None:
    r = browser.post(
        "/api/v1/session", json={"email": f" {person['email'].upper()} ", "password": PASSWORD}
    )
    assert r.status_code == 200


def test_sign_out_ends_the_session(browser: Any, person: dict[str, Any]) -> None:
    csrf = _sign_in(browser, person)["csrf_token"]
    token = browser.cookies["tether_session"]
    r = browser.delete("/api/v1/session", headers=_csrf(csrf))
    assert r.status_code == 204
    cleared = _set_cookies(r)
    assert {"tether_session", "tether_csrf"} <= set(cleared)
    assert "max-age=0" in cleared["tether_session"].lower()
    assert browser.get("/api/v1/session").status_code == 401
    # the old token no longer works, even when a client keeps sending it
    browser.cookies.set("tether_session", token)
    r = browser.get("/api/v1/datasets")
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "the session has ended; sign in again"
    assert browser.delete("/api/v1/session").status_code == 204  # nothing left to end


def test_signing_out_without_a_session_only_clears_cookies(browser: Any) -> None:
    assert browser.delete("/api/v1/session").status_code == 204
    browser.cookies.set("tether_session", "tts_made-up")
    assert browser.delete("/api/v1/session").status_code == 204


def test_an_expired_session_is_401(browser: Any, person: dict[str, Any], engine: Engine) -> None:
    _sign_in(browser, person)
    token_hash = hash_key(browser.cookies["tether_session"])
    with engine.begin() as conn:
        conn.execute(
            update(tables.sessions)
            .where(tables.sessions.c.token_hash == token_hash)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert browser.get("/api/v1/datasets").status_code == 401


def test_a_new_password_or_removal_ends_sessions(
    app: Any, own_person: dict[str, Any], tenant: Tenant
) -> None:
    person = own_person
    from fastapi.testclient import TestClient

    first, second = TestClient(app), TestClient(app)
    _sign_in(first, person)
    assert tenant.patch(f"/users/{person['id']}", json={"password": "another one!"}).is_success
    assert first.get("/api/v1/session").status_code == 401
    _sign_in(second, {**person, "password": "another one!"})
    assert tenant.delete(f"/users/{person['id']}").status_code == 204
    assert second.get("/api/v1/session").status_code == 401


@pytest.mark.usefixtures("fresh_throttle")
def test_failed_sign_ins_are_throttled_per_email(
    app: Any, browser: Any, person: dict[str, Any]
) -> None:
    app.state.sign_in_throttle.per_email = 3
    for email in (person["email"], "nobody-at-all@example.com"):  # known or not: the same
        for _ in range(3):
            wrong = browser.post("/api/v1/session", json={"email": email, "password": "nope"})
            assert wrong.status_code == 401
        r = browser.post("/api/v1/session", json={"email": email, "password": PASSWORD})
        assert r.status_code == 429, r.text
        error = r.json()["error"]
        assert error["code"] == "rate_limited"
        assert 0 < error["details"]["retry_after"] <= 15 * 60
        assert r.headers["retry-after"] == str(error["details"]["retry_after"])
    assert browser.get("/api/v1/session").status_code == 401  # the right password did not pass


@pytest.mark.usefixtures("fresh_throttle")
def test_failed_sign_ins_are_throttled_per_client(
    app: Any, browser: Any, person: dict[str, Any]
) -> None:
    app.state.sign_in_throttle.per_client = 4
    for i in range(4):
        body = {"email": f"spray-{i}@example.com", "password": "guess"}
        assert browser.post("/api/v1/session", json=body).status_code == 401
    r = browser.post("/api/v1/session", json={"email": person["email"], "password": PASSWORD})
    assert r.status_code == 429


# --- a user's own API keys -----------------------------------------------------------


def test_a_user_creates_lists_and_revokes_own_keys(http: Any, member: Tenant) -> None:
    made = member.post("/api-keys", json={"name": "laptop"})
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["key"].startswith("tth_") and new["hint"] == new["key"][:8]
    assert new["user_id"] == member.user_id and new["email"] == member.email
    assert new["revoked_at"] is None
    key = new["key"]
    listing = member.get("/api-keys")
    assert key not in listing.text  # shown once: never again
    assert [k["name"] for k in listing.json()["items"]] == ["default", "laptop"]
    assert all("key" not in k for k in listing.json()["items"])
    with_new = {"Authorization": f"Bearer {key}"}
    assert http.get("/api/v1/session", headers=with_new).json()["user"]["id"] == member.user_id
    assert member.delete(f"/api-keys/{new['id']}").status_code == 204
    assert http.get("/api/v1/datasets", headers=with_new).status_code == 401
    revoked = next(k for k in member.get("/api-keys").json()["items"] if k["id"] == new["id"])
    assert revoked["revoked_at"] is not None
    again = member.delete(f"/api-keys/{new['id']}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"


def test_members_see_and_revoke_only_their_own_keys(member: Tenant, tenant: Tenant) -> None:
    admin_key = tenant.get("/api-keys").json()["items"][0]
    assert [k["user_id"] for k in member.get("/api-keys").json()["items"]] == [member.user_id]
    r = member.delete(f"/api-keys/{admin_key['id']}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert tenant.get("/datasets").status_code == 200
    everyone = {k["user_id"] for k in tenant.get("/api-keys?all=true").json()["items"]}
    assert everyone == {tenant.user_id, member.user_id}


def test_revoking_the_key_in_use_is_allowed(member: Tenant) -> None:
    own = member.get("/api-keys").json()["items"][0]
    assert member.delete(f"/api-keys/{own['id']}").status_code == 204
    assert member.get("/datasets").status_code == 401


@pytest.mark.parametrize("name", ["", " ", "x" * 201])
def test_bad_key_names_are_422(member: Tenant, name: str) -> None:
    r = member.post("/api-keys", json={"name": name})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"


def test_a_signed_in_user_makes_a_key_for_scripts(
    browser: Any, http: Any, person: dict[str, Any]
) -> None:
    csrf = _sign_in(browser, person)["csrf_token"]
    r = browser.post("/api/v1/api-keys", json={"name": "script"}, headers=_csrf(csrf))
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['key']}"}
    assert http.get("/api/v1/session", headers=headers).json()["auth"] == "api_key"


def test_the_organization(tenant: Tenant, engine: Engine) -> None:
    r = tenant.get("/organization")
    assert r.status_code == 200
    with engine.connect() as conn:
        assert r.json()["name"] == accounts.get_org(conn, tenant.org_id)["name"]
    assert r.json()["id"] == tenant.org_id


# --- the sign-in throttle on its own, with a clock the test moves ---------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _attempts(limiter: SignInThrottle, email: str, client: str | None, n: int) -> None:
    for _ in range(n):
        limiter.check(email, client)
        limiter.failed(email, client)


def test_throttle_windows_and_resets() -> None:
    clock = Clock()
    limiter = SignInThrottle(per_email=3, per_client=5, window_seconds=60, clock=clock)
    _attempts(limiter, "a@x.io", "1.2.3.4", 3)
    with pytest.raises(RateLimited) as caught:
        limiter.check("a@x.io", "5.6.7.8")  # per email, from anywhere
    assert caught.value.details == {"retry_after": 60}
    limiter.check("b@x.io", "1.2.3.4")  # another email from the same client: 3 of 5 used
    clock.now += 45
    with pytest.raises(RateLimited) as caught:
        limiter.check("a@x.io", None)
    assert caught.value.details == {"retry_after": 15}
    clock.now += 15  # the window has passed
    limiter.check("a@x.io", "1.2.3.4")
    _attempts(limiter, "c@x.io", "9.9.9.9", 2)
    limiter.succeeded("c@x.io")  # a success forgets the email's failures ...
    _attempts(limiter, "c@x.io", "9.9.9.9", 2)
    limiter.check("c@x.io", "9.9.9.9")
    _attempts(limiter, "d@x.io", "9.9.9.9", 1)  # ... but not the client's: 5 of 5 now
    with pytest.raises(RateLimited):
        limiter.check("e@x.io", "9.9.9.9")
    limiter.check("e@x.io", "8.8.8.8")


def test_throttle_memory_stays_bounded() -> None:
    clock = Clock()
    limiter = SignInThrottle(per_email=2, window_seconds=60, clock=clock)
    for i in range(MAX_TRACKED + 500):
        limiter.failed(f"u{i}@x.io", None)
        clock.now += 0.001
    assert len(limiter._failures) <= MAX_TRACKED
    limiter.failed(f"u{MAX_TRACKED + 499}@x.io", None)  # the newest are kept
    with pytest.raises(RateLimited):
        limiter.check(f"u{MAX_TRACKED + 499}@x.io", None)


def test_every_operation_documenting_csrf_really_refuses_without_the_token(
    http: Any, app: Any, signed_in: tuple[Any, str]
) -> None:
    """What the document says of 403 ``csrf_failed`` holds for each operation it names.
    (``http`` first: it imports the test client the way the suite does.)"""
    browser, _csrf_token = signed_in
    spec = app.openapi()
    checked = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "csrf_failed" not in operation["responses"].get("403", {}).get("description", ""):
                continue
            concrete = path.replace("{", "").replace("}", "")  # any segment will do
            concrete = "/".join(
                "1" if "_id" in s or s in ("dataset", "field") else s for s in concrete.split("/")
            )
            r = browser.request(method.upper(), concrete, json={})
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"]["code"] == "csrf_failed", (method, path)
            checked += 1
    assert checked >= 20


def _reached(dependant: Any, skip: tuple[Any, ...] = ()) -> set[Any]:
    """Every dependency callable under ``dependant``, not descending into ``skip``."""
    found: set[Any] = set()
    for sub in dependant.dependencies:
        if sub.call in skip:
            continue
        found.add(sub.call)
        found |= _reached(sub, skip)
    return found


def _api_routes(routes: Any) -> Iterator[Any]:
    from fastapi.routing import APIRoute

    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # an included router
            yield from _api_routes(route.original_router.routes)


def test_a_route_opens_no_connection_only_to_authenticate(app: Any) -> None:
    """``CallerDep`` authenticates on the request's connection: a route that holds none
    (a body streamed in or out) must take ``CallerAloneDep``, or it would hold a
    transaction open for as long as it streams."""
    from tether.api import deps

    routes = list(_api_routes(app.router.routes))
    assert len(routes) > 50
    wrong = []
    for route in routes:
        calls = _reached(route.dependant)
        if {deps.caller, deps.optional_caller} & calls:
            own = _reached(route.dependant, skip=(deps.caller, deps.optional_caller))
            if deps.connection not in own:
                wrong.append(f"{sorted(route.methods)} {route.path}")
    assert wrong == []
    alone = [r.path for r in routes if deps.caller_alone in _reached(r.dependant)]
    assert "/datasets/{dataset}/data-rows" in alone


def test_a_request_checks_out_one_connection(app: Any, tenant: Tenant) -> None:
    from sqlalchemy import event

    checkouts: list[object] = []
    engine: Engine = app.state.engine

    def counted(*_args: object) -> None:
        checkouts.append(None)

    event.listen(engine, "checkout", counted)
    try:
        assert tenant.get("/datasets").status_code == 200
    finally:
        event.remove(engine, "checkout", counted)
    assert len(checkouts) == 1


def test_a_refused_request_still_records_the_key_use(engine: Engine, tenant: Tenant) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(tables.api_keys)
            .where(tables.api_keys.c.key_hash == hash_key(tenant.key))
            .values(last_used_at=None)
        )
    assert tenant.get("/data-rows/999999999").status_code == 404
    with engine.connect() as conn:
        used = conn.execute(
            select(tables.api_keys.c.last_used_at).where(
                tables.api_keys.c.key_hash == hash_key(tenant.key)
            )
        ).scalar_one()
    assert used is not None
