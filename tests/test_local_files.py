"""``GET /data/local-files/?d=``: Label Studio's URL form for files under the document root,
served only when serving is on, only inside the root, only to a signed-in caller whose
organization has a local storage covering the file. The traversal corpus is a table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import Tenant
from tether.config import Settings
from tether.resolve.local_files import checked_path
from tether.sync.connections import insert_storage

DATA = bytes(range(256)) * 40  # 10,240 bytes
URL = "/data/local-files/"


@pytest.fixture
def root(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A document root holding a covered folder ``covered/`` (with ``img/a b#1.jpg`` and
    ``clip.mp4``), a folder no storage covers, and a secret outside the root."""
    documents = tmp_path / "documents"
    (documents / "covered" / "img").mkdir(parents=True)
    (documents / "uncovered").mkdir()
    (documents / "covered" / "img" / "a b#1.jpg").write_bytes(DATA)
    (documents / "covered" / "clip.mp4").write_bytes(DATA)
    (documents / "covered" / "日本").mkdir()
    (documents / "covered" / "日本" / "語.png").write_bytes(b"png")
    (documents / "uncovered" / "x.jpg").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", documents / "covered" / "out.txt")
    os.symlink(tmp_path, documents / "covered" / "outdir")
    os.symlink(documents / "covered" / "clip.mp4", documents / "covered" / "alias.mp4")
    monkeypatch.setattr(settings, "local_files_serving_enabled", True)
    monkeypatch.setattr(settings, "local_files_document_root", documents)
    return documents


def _local_storage(engine: Engine, settings: Settings, org_id: int, folder: Path) -> int:
    with engine.begin() as conn:
        return insert_storage(
            conn, settings, org_id=org_id, type_="local", fields={"path": str(folder)}
        )


@pytest.fixture
def covered(engine: Engine, settings: Settings, tenant: Tenant, root: Path) -> Tenant:
    _local_storage(engine, settings, tenant.org_id, root / "covered")
    return tenant


def fetch(tenant: Tenant, d: str, **headers: str) -> Any:
    return tenant.http.get(URL, params={"d": d}, headers={**tenant.headers, **headers})


def test_a_covered_file_is_served_with_its_headers(covered: Tenant) -> None:
    response = fetch(covered, "covered/img/a b#1.jpg")
    assert response.status_code == 200, response.text
    assert response.content == DATA
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert "private" in response.headers["cache-control"]
    assert response.headers["etag"] and response.headers["last-modified"]
    assert fetch(covered, "covered/日本/語.png").content == b"png"
    assert fetch(covered, "covered/alias.mp4").content == DATA  # a symlink inside the root


@pytest.mark.parametrize(
    ("range_", "expected"),
    [("bytes=0-99", DATA[:100]), ("bytes=1000-", DATA[1000:]), ("bytes=-10", DATA[-10:])],
)
def test_range_reads_part_of_a_file(covered: Tenant, range_: str, expected: bytes) -> None:
    response = fetch(covered, "covered/clip.mp4", Range=range_)
    assert response.status_code == 206
    assert response.content == expected
    assert response.headers["content-range"].endswith(f"/{len(DATA)}")


def test_if_none_match_answers_not_modified(covered: Tenant, root: Path) -> None:
    etag = fetch(covered, "covered/clip.mp4").headers["etag"]
    assert fetch(covered, "covered/clip.mp4", **{"If-None-Match": etag}).status_code == 304
    assert fetch(covered, "covered/clip.mp4", **{"If-None-Match": f"W/{etag}"}).status_code == 304
    assert fetch(covered, "covered/clip.mp4", **{"If-None-Match": '"other"'}).status_code == 200
    (root / "covered" / "clip.mp4").write_bytes(DATA + b"more")
    changed = fetch(covered, "covered/clip.mp4", **{"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


# Each path tries to leave the root, or to name a file some other way than plainly.
TRAVERSALS = [
    ("", 422),
    ("../secret.txt", 422),
    ("covered/../../secret.txt", 422),
    ("covered/./img/a b#1.jpg", 422),
    ("..", 422),
    ("/etc/passwd", 422),
    (str(Path("/etc/passwd")), 422),
    ("C:/Windows/win.ini", 422),
    ("covered\\..\\..\\secret.txt", 422),
    ("covered/img\\a b#1.jpg", 422),
    ("%2e%2e/secret.txt", 422),  # encoded once more than the framework decodes
    ("covered/%2e%2e/%2e%2e/secret.txt", 422),
    ("%252e%252e/secret.txt", 422),
    ("covered%2f..%2f..%2fsecret.txt", 422),
    ("covered/img/a b#1.jpg\x00.png", 422),
    ("\x00", 422),
    ("covered//img/a b#1.jpg", 422),
    ("covered/img/", 422),
    ("covered/out.txt", 422),  # a symlink leading out of the root
    ("covered/outdir/secret.txt", 422),
    ("covered/img", 404),  # a folder is not a file
    ("covered/missing.jpg", 404),
    ("uncovered/x.jpg", 403),  # inside the root, but no storage of the caller covers it
]


@pytest.mark.parametrize(("d", "status"), TRAVERSALS)
def test_the_traversal_corpus_is_refused(covered: Tenant, d: str, status: int) -> None:
    response = fetch(covered, d)
    assert response.status_code == status, (d, response.text)
    assert "secret" not in response.text or "secret.txt" in d
    assert response.json()["error"]["code"]


@pytest.mark.parametrize(
    "d", ["..", "a/../b", "a\\b", "/a", "a//b", "a/", "./a", "a%2Fb", "a\x00b", ""]
)
def test_checked_path_refuses_what_is_not_a_plain_relative_path(d: str) -> None:
    from tether.errors import Invalid

    with pytest.raises(Invalid):
        checked_path(d)


@pytest.mark.parametrize("d", ["a", "a/b.jpg", "a b/#1?.jpg", "日本/語.png", "a%b", "100%.jpg"])
def test_checked_path_takes_plain_relative_paths(d: str) -> None:
    assert checked_path(d) == d


def test_another_organizations_file_is_403(
    covered: Tenant, other_tenant: Tenant, engine: Engine, settings: Settings, root: Path
) -> None:
    assert fetch(other_tenant, "covered/clip.mp4").status_code == 403
    _local_storage(engine, settings, other_tenant.org_id, root / "uncovered")
    assert fetch(other_tenant, "uncovered/x.jpg").status_code == 200
    assert fetch(covered, "uncovered/x.jpg").status_code == 403


def test_a_member_reads_too(covered: Tenant, member: Tenant) -> None:
    assert fetch(member, "covered/clip.mp4").content == DATA


def test_without_a_caller_it_is_401(covered: Tenant) -> None:
    response = covered.http.get(URL, params={"d": "covered/clip.mp4"})
    assert response.status_code == 401


def test_serving_off_is_404(
    covered: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "local_files_serving_enabled", False)
    response = fetch(covered, "covered/clip.mp4")
    assert response.status_code == 404
    assert "off" in response.json()["error"]["message"]
