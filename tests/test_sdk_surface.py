"""The SDK's public surface: exactly the curated names, each importable, and importing them
pulls in no server code (the SDK talks HTTP only)."""

from __future__ import annotations

import subprocess
import sys

import tether
import tether.sdk

SDK_NAMES = {
    "Annotation",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "ForbiddenError",
    "Dataset",
    "InvalidError",
    "Job",
    "JobTimeoutError",
    "NotFoundError",
    "Prediction",
    "Project",
    "Storage",
    "TetherAPIError",
    "TooLargeError",
}


def test_all_lists_exactly_the_curated_names() -> None:
    assert set(tether.sdk.__all__) == SDK_NAMES
    assert len(tether.sdk.__all__) == len(SDK_NAMES)
    assert set(tether.__all__) == SDK_NAMES | {"__version__"}
    assert len(tether.__all__) == len(SDK_NAMES) + 1


def test_every_name_resolves_to_the_sdk_object() -> None:
    for name in SDK_NAMES:
        obj = getattr(tether.sdk, name)
        assert getattr(tether, name) is obj, name
        assert obj.__module__.startswith("tether.sdk."), (name, obj.__module__)
        assert name in dir(tether)
    assert isinstance(tether.__version__, str) and tether.__version__


def test_star_imports_give_the_same_names() -> None:
    top: dict[str, object] = {}
    exec("from tether import *", top)
    sdk: dict[str, object] = {}
    exec("from tether.sdk import *", sdk)
    assert set(top) - {"__builtins__"} == set(tether.__all__)
    assert set(sdk) - {"__builtins__"} == SDK_NAMES
    for name in SDK_NAMES:
        assert top[name] is sdk[name]


def test_unknown_names_are_attribute_errors() -> None:
    for module in (tether, tether.sdk):
        try:
            module.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
        except AttributeError:
            continue
        raise AssertionError(f"{module.__name__}.NoSuchThing resolved")


def test_exceptions_form_one_tree() -> None:
    for name in (
        "AuthenticationError",
        "ConflictError",
        "ForbiddenError",
        "InvalidError",
        "NotFoundError",
    ):
        assert issubclass(getattr(tether, name), tether.TetherAPIError)
    assert issubclass(tether.TooLargeError, tether.TetherAPIError)
    assert issubclass(tether.JobTimeoutError, TimeoutError)
    error = tether.NotFoundError(404, "not_found", "no dataset 'x'", None)
    assert (error.status, error.code, error.message) == (404, "not_found", "no dataset 'x'")


def test_importing_the_sdk_loads_no_server_code() -> None:
    code = (
        "import sys\n"
        "from tether import Client, Dataset, Job, NotFoundError\n"
        "server = [m for m in ('sqlalchemy', 'fastapi', 'alembic', 'huey', 'tether.api',"
        " 'tether.db', 'tether.catalog', 'tether.imports', 'tether.config') if m in sys.modules]\n"
        "print(','.join(server))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_the_cli_uses_only_the_public_sdk() -> None:
    """The data commands are SDK clients like any other: no private module, name or
    attribute of the SDK (``client._json``, ``tether.sdk._client``), and no server code."""
    import ast
    from pathlib import Path

    import tether.cli

    server = ("tether.api", "tether.db", "tether.catalog", "tether.imports", "tether.jobs")
    for path in Path(tether.cli.__file__).parent.glob("*.py"):
        if path.name == "admin.py":  # admin commands act on the database, not through HTTP
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("tether.sdk._"), (path.name, node.module)
                assert not node.module.startswith(server), (path.name, node.module)
                if node.module in ("tether", "tether.sdk"):
                    for alias in node.names:
                        assert alias.name in tether.__all__, (path.name, alias.name)
            if isinstance(node, ast.Attribute):
                private = node.attr.startswith("_") and not node.attr.startswith("__")
                assert not private, (path.name, node.lineno, node.attr)
