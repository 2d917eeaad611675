"""A server killed or stopped in the middle of an import resumes the job when it starts again:
every row lands exactly once (each chunk commits with the job's progress). A stopped server
does not wait for the import to end: it stops after the chunk being written."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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

    deadline = time.monotonic() + 30
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
    subprocess.run([TETHER, "migrate"], env=env, check=True)  # admin commands make no database
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

    server = _serve(env)
    try:
        client = Client(f"http://127.0.0.1:{env['TETHER_PORT']}", key)
        job = client.get_job(job.id).wait_till_done(timeout=120, poll=0.2)
        assert job.status == "completed", job
        assert job.counts == {"created": ROWS, "updated": 0, "failed": 0}
        assert job.progress == {"done": ROWS, "total": ROWS}
    finally:
        server.terminate()
        server.wait(10)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(data_rows)).scalar_one()
        keys = conn.execute(select(func.count(data_rows.c.global_key.distinct()))).scalar_one()
    assert total == keys == ROWS
