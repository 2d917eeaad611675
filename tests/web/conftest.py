"""Fixtures of the web UI tests: a signed-in browser session on the in-process app."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine

from tether import accounts

PASSWORD = "correct horse battery"


@dataclass
class Browser:
    """A signed-in user's cookie jar on the app (its own client: the shared one keeps no
    cookies), plus the user's API key for setting things up."""

    client: Any
    email: str
    key: str
    org_id: int
    user_id: int

    def page(self, path: str) -> Any:
        return self.client.get(path, headers={"Accept": "text/html"}, follow_redirects=False)

    def api(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}", **kw.pop("headers", {})}
        return self.client.request(method, "/api/v1" + path, headers=headers, **kw)


def client_for(app: Any) -> Any:
    """A test client of its own (a cookie jar of its own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient(app)


def signed_in(engine: Engine, app: Any, role: str = "admin", org: str | None = None) -> Browser:
    tag = uuid.uuid4().hex[:10]
    email = f"web-{tag}@example.com"
    with engine.begin() as conn:
        user_id = accounts.create_user(conn, email, org or f"org-{tag}", PASSWORD, role=role)
        key = accounts.create_api_key(conn, email)
        caller = accounts.authenticate(conn, key)
    client = client_for(app)
    r = client.post("/api/v1/session", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return Browser(client, email, key, caller.org_id, user_id)


@pytest.fixture
def browser(engine: Engine, app: Any) -> Iterator[Browser]:
    b = signed_in(engine, app)
    yield b
    b.client.close()
