"""Shared fixtures. Every DB-touching test runs on SQLite and on PostgreSQL.

PostgreSQL is the machine's server (TETHER_TEST_PG, default
postgresql://postgres@127.0.0.1:5432/test); each test session makes a database of its own
there and drops it at the end. Tests isolate themselves by working in an organization of
their own (every query is scoped by organization), so no table is ever truncated.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from tether import accounts
from tether.config import Settings
from tether.db.engine import make_engine
from tether.db.migrate import upgrade

PG_ADMIN_URL = os.environ.get("TETHER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def _psycopg(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (fails loudly if none is there)."""
    name = f"tether_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_psycopg(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - a machine without PostgreSQL
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not usable: {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def settings(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Settings:
    data_dir = tmp_path_factory.mktemp(f"data-{backend}")
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    return Settings(
        data_dir=data_dir,
        database_url=url,
        queue_url="immediate",
        secret_key=None,
        import_chunk_rows=50,
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_engine(settings.sqlalchemy_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def app(settings: Settings, engine: Engine) -> Any:
    from tether.api.app import create_app

    return create_app(settings)


@pytest.fixture(scope="session")
def http(app: Any) -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    with TestClient(app) as client:
        yield client


@dataclass
class Tenant:
    """One organization with one user (an admin unless made as a member) and API key,
    talking to the in-process API."""

    org_id: int
    user_id: int
    email: str
    key: str
    http: Any

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, **kw: Any) -> Any:
        return self.http.get("/api/v1" + path, headers=self.headers, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.http.post("/api/v1" + path, headers=headers, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.http.patch("/api/v1" + path, headers=self.headers, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.http.delete("/api/v1" + path, headers=self.headers, **kw)

    def dataset(self, name: str | None = None) -> dict[str, Any]:
        r = self.post("/datasets", json={"name": name or f"ds-{uuid.uuid4().hex[:8]}"})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def import_rows(self, dataset_id: int, body: bytes | str, **params: Any) -> dict[str, Any]:
        """Bulk create (runs at once: the test queue is Huey's immediate mode)."""
        r = self.post(f"/datasets/{dataset_id}/data-rows", content=body, params=params)
        assert r.status_code == 202, r.text
        return r.json()  # type: ignore[no-any-return]

    def errors(self, job_id: str) -> list[dict[str, Any]]:
        return self.get(f"/jobs/{job_id}/errors", params={"limit": 1000}).json()["items"]


def make_tenant(engine: Engine, http: Any, org: str | None = None, role: str = "admin") -> Tenant:
    """A user with an API key in ``org`` (a new organization when not given)."""
    tag = uuid.uuid4().hex[:10]
    email = f"user-{tag}@example.com"
    with engine.begin() as conn:
        user_id = accounts.create_user(  # no password, so no argon2: fast
            conn, email, org or f"org-{tag}", None, role=role
        )
        key = accounts.create_api_key(conn, email)
        caller = accounts.authenticate(conn, key)
    return Tenant(caller.org_id, user_id, email, key, http)


@pytest.fixture
def tenant(engine: Engine, http: Any) -> Tenant:
    return make_tenant(engine, http)


@pytest.fixture
def member(engine: Engine, http: Any, tenant: Tenant) -> Tenant:
    """A member (not an admin) of ``tenant``'s organization."""
    with engine.connect() as conn:
        org = accounts.get_org(conn, tenant.org_id)["name"]
    return make_tenant(engine, http, org=org, role="member")


@pytest.fixture
def other_tenant(engine: Engine, http: Any) -> Tenant:
    return make_tenant(engine, http)


@pytest.fixture
def fixtures_dir() -> Path:
    return Path(__file__).parent / "fixtures"
