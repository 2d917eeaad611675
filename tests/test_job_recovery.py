"""A server killed or stopped in the middle of an import resumes the job when it starts again:
every row lands exactly once (each chunk commits with the job's progress). A stopped server
does not wait for the import to end: it stops after the chunk being written. With several
workers, a killed worker's job is resumed by another one within a lease period."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from tether import Client
from tether.db.tables import data_rows, jobs

pytestmark = pytest.mark.e2e
TETHER = str(Path(sys.executable).parent / "tether")
ROWS = 40_000


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [TETHER, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{env['TETHER_PORT']}/api/v1/health"
    import httpx

    deadline = time.monotonic() + 90  # a loaded 2-core machine starts slowly
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError("tether serve did not start")


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_an_interrupted_import_resumes_without_duplicates(
    tmp_path: Path, stop: signal.Signals
) -> None:
    env = {
        **os.environ,
        "TETHER_DATA_DIR": str(tmp_path),
        "TETHER_PORT": str(_port()),
        "TETHER_IMPORT_CHUNK_ROWS": "200",
    }
    env.pop("TETHER_DATABASE_URL", None)
    env.pop("TETHER_QUEUE_URL", None)
    subprocess.run([TETHER, "migrate"], env=env, check=True)  # admin commands create no database
    subprocess.run(
        [TETHER, "users", "create", "ops@example.com", "--org", "ops", "--password-stdin"],
        input=b"pw\n",
        env=env,
        check=True,
    )
    key = (
        subprocess.run(
            [TETHER, "keys", "create", "ops@example.com"], env=env, check=True, capture_output=True
        )
        .stdout.decode()
        .strip()
    )
    server = _serve(env)
    try:
        client = Client(f"http://127.0.0.1:{env['TETHER_PORT']}", key)
        dataset = client.create_dataset("resume")
        rows = [
            {
                "row_data": f"s3://b/{i}.jpg",
                "global_key": f"k{i}",
                "metadata_fields": [{"name": "tag", "value": f"t{i % 7}"}],
            }
            for i in range(ROWS)
        ]
        job = dataset.create_data_rows(rows)
        while job.refresh().progress["done"] < 2000:
            assert job.status in ("queued", "running"), job
            time.sleep(0.02)
        os.kill(server.pid, stop)
        server.wait(20)
    except BaseException:
        server.kill()
        raise
    engine = create_engine(f"sqlite:///{tmp_path / 'tether.db'}")
    with engine.connect() as conn:
        state = conn.execute(select(jobs.c.status, jobs.c.done)).one()
        landed = conn.execute(select(func.count()).select_from(data_rows)).scalar_one()
    # Stopped, it did not finish the import first: the job is still running, to resume.
    assert state.status == "running" and 2000 <= state.done < ROWS, "the stop came too late"
    assert landed == state.done, "rows and recorded progress commit together"

    # What a server killed mid-upload leaves: a partial upload no job owns. The running job's
    # own upload is as old, and stays for the job.
    [owned] = (tmp_path / "uploads").iterdir()
    partial = tmp_path / "uploads" / "cut-off.upload"
    partial.write_bytes(b'{"row_data": "s3://b/1.jpg"}\n{"row_da')
    old = time.time() - 7200
    for path in (owned, partial):
        os.utime(path, (old, old))
    server = _serve(env)
    try:
        assert not partial.exists(), "the server removes staged uploads no job owns at start-up"
        client = Client(f"http://127.0.0.1:{env['TETHER_PORT']}", key)
        job = client.get_job(job.id).wait_till_done(timeout=120, poll=0.2)
        assert job.status == "completed", job
        assert not owned.exists()
        assert job.counts == {"created": ROWS, "updated": 0, "failed": 0}
        assert job.progress == {"done": ROWS, "total": ROWS}
    finally:
        server.terminate()
        server.wait(10)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(data_rows)).scalar_one()
        keys = conn.execute(select(func.count(data_rows.c.global_key.distinct()))).scalar_one()
    assert total == keys == ROWS


LEASE_SECONDS = 3.0
SHARED_ROWS = 20_000


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private redis-server on a free port, for this test alone."""
    port = _port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


def _owner(engine: Any, job_id: str) -> tuple[str, str | None, int]:
    with engine.connect() as conn:
        row = conn.execute(
            select(jobs.c.status, jobs.c.claimed_by, jobs.c.done).where(jobs.c.id == job_id)
        ).one()
    return row.status, row.claimed_by, row.done


def test_a_killed_workers_import_is_finished_by_the_other_worker(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    """Two `tether worker` processes on PostgreSQL + Redis; the one running an import is
    killed (SIGKILL) mid-way; the other resumes it within a lease period and finishes it,
    every row exactly once."""
    env = {
        **os.environ,
        "TETHER_DATA_DIR": str(tmp_path),
        "TETHER_PORT": str(_port()),
        "TETHER_DATABASE_URL": pg_url,
        "TETHER_QUEUE_URL": redis_url,
        "TETHER_EMBEDDED_WORKER": "false",
        "TETHER_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "TETHER_IMPORT_CHUNK_ROWS": "500",
    }
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    subprocess.run([TETHER, "migrate"], env=env, check=True)  # admin commands create no database
    subprocess.run(
        [TETHER, "users", "create", email, "--org", email, "--password-stdin"],
        input=b"pw\n",
        env=env,
        check=True,
    )
    key = (
        subprocess.run([TETHER, "keys", "create", email], env=env, check=True, capture_output=True)
        .stdout.decode()
        .strip()
    )
    server = _serve(env)
    workers = [
        subprocess.Popen(
            [TETHER, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    engine = create_engine("postgresql+psycopg://" + pg_url.split("://", 1)[1])
    try:
        client = Client(f"http://127.0.0.1:{env['TETHER_PORT']}", key)
        dataset = client.create_dataset(f"shared-{uuid.uuid4().hex[:6]}")
        tag = uuid.uuid4().hex[:6]
        rows = [
            {
                "row_data": f"s3://b/{i}.jpg",
                "global_key": f"{tag}-{i}",
                "metadata_fields": [{"name": "tag", "value": f"t{i % 7}"}],
            }
            for i in range(SHARED_ROWS)
        ]
        job = dataset.create_data_rows(rows)
        deadline = time.monotonic() + 120
        while True:
            status, owner, done = _owner(engine, job.id)
            if owner is not None and done >= 3000:
                break
            assert status in ("queued", "running") and time.monotonic() < deadline, status
            time.sleep(0.01)
        assert status == "running" and done < SHARED_ROWS, "the kill came too late"
        [victim] = [w for w in workers if f":{w.pid}:" in owner]
        [survivor] = [w for w in workers if w is not victim]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()

        while _owner(engine, job.id)[1] == owner:
            assert time.monotonic() - killed_at < 2 * LEASE_SECONDS + 2, "nobody resumed it"
            time.sleep(0.02)
        resumed_after = time.monotonic() - killed_at
        assert resumed_after < LEASE_SECONDS * 1.5 + 1, resumed_after
        job = job.wait_till_done(timeout=120, poll=0.2)
        assert job.status == "completed", (job, job.message)
        assert job.counts == {"created": SHARED_ROWS, "updated": 0, "failed": 0}
        assert job.progress == {"done": SHARED_ROWS, "total": SHARED_ROWS}
        assert f":{survivor.pid}:" in (_owner(engine, job.id)[1] or "")
        assert survivor.poll() is None
        with engine.connect() as conn:
            mine = data_rows.c.dataset_id == dataset.id
            total = conn.execute(select(func.count()).where(mine)).scalar_one()
            keys = conn.execute(
                select(func.count(data_rows.c.global_key.distinct())).where(mine)
            ).scalar_one()
        assert total == keys == SHARED_ROWS
    finally:
        for proc in (*workers, server):
            if proc.poll() is None:
                proc.terminate()
        for proc in (*workers, server):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine.dispose()
