"""Fixtures of the projects tests: an SDK client and the CLI on the in-process API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import Tenant
from tests.test_sdk_transport import AppTransport
from tether import Client
from tether.cli import app as cli_app
from tether.cli import common

BOXES = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
</View>"""


@pytest.fixture
def sdk(tenant: Tenant, http: Any) -> Iterator[Client]:
    with Client("http://testserver", api_key=tenant.key, transport=AppTransport(http)) as c:
        yield c


@pytest.fixture
def cli(tenant: Tenant, http: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cli("projects", "list")``: the ``tether`` command on the in-process API."""
    monkeypatch.setenv("TETHER_API_KEY", tenant.key)
    monkeypatch.setattr(
        common,
        "Client",
        lambda: Client("http://testserver", api_key=tenant.key, transport=AppTransport(http)),
    )

    def run(*args: str, input: str | None = None) -> Any:
        return CliRunner().invoke(cli_app, list(args), input=input)

    return run


def new_project(tenant: Tenant, name: str, label_config: str = BOXES) -> dict[str, Any]:
    r = tenant.post("/projects", json={"name": name, "label_config": label_config})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]
