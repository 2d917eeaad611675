"""``tether upload`` and the SDK's uploads against a real ``tether serve``: folders, resumable
re-runs that create nothing twice, per-file errors with exit code 2, a file that changes
while it is sent, and memory that stays flat however large the file (the body streams
through the server into the managed storage, and out of the client from the file)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_e2e import Server, ok, running_server, with_item_errors
from tether import Client
from tether.sdk._uploads import destination

pytestmark = pytest.mark.e2e

LIMIT = 256 * 1024 * 1024
BIG = 200 * 1024 * 1024  # read from a sparse file: no disk is written for it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("uploads-e2e")
    with running_server(data, TETHER_MAX_ASSET_BYTES=str(LIMIT)) as srv:
        srv.email, srv.key = srv.new_account()
        yield srv


def org_folder(server: Server) -> Path:
    """The managed storage's folder of the server's main account."""
    org = httpx.get(
        f"{server.url}/api/v1/organization", headers={"Authorization": f"Bearer {server.key}"}
    ).json()
    return server.data_dir / "assets" / f"org-{org['id']}"


def sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.jpg": b"a" * 1000,
        "b ü#%.png": b"b" * 2000,
        "sub/c.mp4": b"c" * 3000,
        "sub/deep/er/d.wav": b"d" * 4000,
        "sub/文件 🙂.pdf": b"e" * 5000,
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / ".hidden").write_bytes(b"h")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"g")
    return files


def test_upload_a_folder_then_again_creates_nothing_twice(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    files = tree(folder)
    name = f"ds-{uuid.uuid4().hex[:8]}"
    big = sparse(tmp_path / "huge.mp4", LIMIT + 1)
    first = with_item_errors(
        server.cli("upload", str(folder), str(big), str(tmp_path / "gone.jpg"),
                   "--dataset", name, "--create")
    )  # fmt: skip
    assert "too_large" in first.stderr and "file_not_found" in first.stderr
    assert "5 uploaded, 0 already there, 2 failed" in first.stderr
    assert "rows: 5 created" in first.stderr
    with server.client() as sdk:
        ds = sdk.get_dataset_by_name(name)
        rows = {r.external_id: r for r in ds.data_rows()}
    assert set(rows) == set(files)  # keys are paths under the folder; hidden names left out
    stored = org_folder(server) / str(ds.id)
    for key, data in files.items():
        assert (stored / key).read_bytes() == data
        assert rows[key].row_data == rows[key].global_key
    assert {rows[k].media_type for k in files} == {"IMAGE", "VIDEO", "AUDIO", "PDF"}
    assert not (stored / ".hidden").exists() and not (stored / "huge.mp4").exists()
    mtimes = {k: (stored / k).stat().st_mtime_ns for k in files}

    again = ok(server.cli("upload", str(folder), "--dataset", name))
    assert "0 uploaded, 5 already there, 0 failed" in again.stderr
    assert "rows: 0 created, 5 already there" in again.stderr
    assert {k: (stored / k).stat().st_mtime_ns for k in files} == mtimes
    with server.client() as sdk:
        assert sdk.get_dataset(ds.id).count_rows() == 5


def test_an_interrupted_upload_resumes_with_what_is_missing(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    files = tree(folder)
    name = f"ds-{uuid.uuid4().hex[:8]}"
    with server.client() as sdk:
        ds = sdk.create_dataset(name)
        done = list(
            ds.upload_files([(folder / "a.jpg", "a.jpg"), (folder / "sub/c.mp4", "sub/c.mp4")])
        )
        assert all(r.ok and r.created for r in done)
        ds.create_data_rows([{"row_data": done[0].uri, "global_key": done[0].uri}]).wait_till_done()
    resumed = ok(server.cli("upload", str(folder), "--dataset", name))
    assert "3 uploaded, 2 already there, 0 failed" in resumed.stderr
    assert "rows: 4 created, 1 already there" in resumed.stderr
    with server.client() as sdk:
        assert sdk.get_dataset(ds.id).count_rows() == len(files)


def test_a_storage_of_another_organization_is_refused(server: Server, tmp_path: Path) -> None:
    _email, other_key = server.new_account()
    with Client(server.url, api_key=other_key) as theirs:
        their_storage = theirs.upload_file(sparse(tmp_path / "x.jpg", 10))
        assert their_storage.startswith("/data/upload/files/")
        ds = theirs.create_dataset("theirs")
        (done,) = list(ds.upload_files([tmp_path / "x.jpg"]))
        assert done.ok
        storage_id = destination(theirs, ds.id, None).storage_id
    with server.client() as sdk:
        mine = sdk.create_dataset(f"mine-{uuid.uuid4().hex[:6]}")
        assert destination(sdk, mine.id, None).storage_id != storage_id
    args = ("upload", str(tmp_path / "x.jpg"), "--dataset", mine.name)
    result = server.cli(*args, "--storage", str(storage_id))
    assert result.returncode == 1 and f"no storage {storage_id}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_that_changes_while_sent_stores_nothing(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "changing.bin"
    path.write_bytes(os.urandom(8 * 1024 * 1024))
    calls = 0

    def shrink(_n: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            with path.open("r+b") as handle:
                handle.truncate(3 * 1024 * 1024)

    with server.client() as sdk:
        ds = sdk.create_dataset(f"ch-{uuid.uuid4().hex[:8]}")
        (result,) = list(ds.upload_files([path], on_bytes=shrink))
        assert (result.ok, result.code) == (False, "file_changed"), result
        folder = org_folder(server) / str(ds.id)
        deadline = time.monotonic() + 10
        while any(folder.glob(".tether-*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the server notices the broken-off body, then removes its part
        assert not (folder / "changing.bin").exists()
        assert not list(folder.glob(".tether-*.part"))
        (again,) = list(ds.upload_files([path]))  # as it is now: stored whole
        assert again.ok and again.size == 3 * 1024 * 1024
    assert (folder / "changing.bin").read_bytes() == path.read_bytes()


PEAK_SCRIPT = """
import resource, sys
from pathlib import Path
from tether import Client
with Client(sys.argv[1], api_key=sys.argv[2], timeout=120) as sdk:
    sdk.upload_file(Path(sys.argv[3]), key=sys.argv[4])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def client_peak(server: Server, path: Path, key: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, server.url, server.key, str(path), key],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1])


def test_a_large_file_streams_through_with_flat_memory(server: Server, tmp_path: Path) -> None:
    small = sparse(tmp_path / "small.bin", 1024)
    big = sparse(tmp_path / "big.bin", BIG)
    client_small = client_peak(server, small, "mem/small.bin")
    server_before = peak_rss(server.proc.pid)
    client_big = client_peak(server, big, "mem/big.bin")
    server_growth = peak_rss(server.proc.pid) - server_before
    stored = org_folder(server) / "files" / "mem" / "big.bin"
    assert stored.stat().st_size == BIG
    mib = 1024 * 1024
    # A whole-file buffer would add 200 MiB on either side; a few 1 MiB chunks are allowed.
    assert server_growth < 40 * mib, f"server grew {server_growth / mib:.0f} MiB"
    assert client_big - client_small < 40 * mib, (
        f"client peak {client_big / mib:.0f} MiB vs {client_small / mib:.0f} MiB"
    )
