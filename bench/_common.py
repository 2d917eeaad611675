"""What the benchmarks share: the processes they start (a real ``tether serve``, the
``tether`` command, a moto server, a private ``redis-server``), fresh PostgreSQL databases,
and the measures they take of a process (peak RSS of its tree, CPU seconds, a py-spy record).

Scripts in ``bench/`` run as ``python bench/NAME.py``, so this module is imported by its
plain name (``from _common import ...``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import create_engine, text

TETHER = str(Path(sys.executable).parent / "tether")
PG_DEFAULT = os.environ.get("TETHER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(proc: subprocess.Popen[Any], port: int, name: str, log: Path | None) -> None:
    """Until ``port`` on loopback accepts a connection; exits if ``proc`` ends first."""
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
                raise SystemExit(f"{name} did not start: {tail}") from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- tether ----------------------------------------------------------------------------------


def env_with(**config: str) -> dict[str, str]:
    """This environment without any TETHER_ setting of the caller's, plus ``config``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(config)
    return env


def cli(config: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run the ``tether`` command; its stdout (exits on failure)."""
    result = subprocess.run(
        [TETHER, *args], env=env_with(**config), input=stdin, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"tether {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def user_and_key(
    config: dict[str, str], email: str = "bench@example.com", org: str = "bench"
) -> str:
    """A user of a new organization, made with the ``tether`` command; an API key of it."""
    cli(config, "users", "create", email, "--org", org, "--password-stdin", stdin="pw\n")
    return cli(config, "keys", "create", email).strip()


@contextmanager
def server(work: Path, config: dict[str, str]) -> Iterator[tuple[subprocess.Popen[Any], str]]:
    """A real ``tether serve`` on a free port with ``config``, until it answers health."""
    port = free_port()
    log_path = work / "serve.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [TETHER, "serve", "--port", str(port)],
        env=env_with(**config),
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"tether serve did not start:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield proc, url
    finally:
        stop(proc)
        log.close()


# --- measures --------------------------------------------------------------------------------


class PeakRss:
    """Samples the RSS of processes (a process and its children) in a thread."""

    def __init__(self, pid: int, tree: bool, every: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.tree = tree
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        procs = [self.proc, *(self.proc.children(recursive=True) if self.tree else [])]
        total = 0
        for p in procs:
            with suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRss:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children that have ended."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def profile(
    pid: int, rate: int | None = None, out: str | None = None
) -> subprocess.Popen[Any] | None:
    """With BENCH_PROFILE=out.svg (py-spy installed), record process ``pid`` until the
    returned process gets SIGINT (``end_profile``); ``out.txt`` records collapsed stacks,
    ``out.json`` speedscope. BENCH_PROFILE_IDLE=1 records waiting threads too, by thread;
    BENCH_PROFILE_RATE sets the samples a second (default 50)."""
    out = out or os.environ.get("BENCH_PROFILE")
    if not out:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    fmt = {".json": "speedscope", ".txt": "raw"}.get(Path(out).suffix, "flamegraph")
    rate = rate or int(os.environ.get("BENCH_PROFILE_RATE", "50"))
    argv = [spy, "record", "-p", str(pid), "-o", out, "-f", fmt, "-r", str(rate)]
    if os.environ.get("BENCH_PROFILE_IDLE"):  # waiting threads too: where the wall time goes
        argv += ["--idle", "--threads"]
    return subprocess.Popen([*argv, "--subprocesses"], stdout=subprocess.DEVNULL)


def end_profile(spy: subprocess.Popen[Any] | None) -> None:
    if spy is not None:
        spy.send_signal(2)
        spy.wait()


# --- PostgreSQL ------------------------------------------------------------------------------


def raw_floor_engine(sa_url: str, made: list[Any]) -> Any:
    """An engine on a database for a raw floor: ``made`` (tables of tether's schema) created,
    with organization 1 and dataset 1 that the raw rows belong to."""
    from datetime import UTC, datetime

    from tether.db import tables

    engine = create_engine(sa_url)
    tables.metadata.create_all(engine, tables=made)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', :t)"), {"t": now}
        )
        conn.execute(
            text(
                "INSERT INTO datasets (id, org_id, name, description, created_at, updated_at) "
                "VALUES (1, 1, 'd', '', :t, :t)"
            ),
            {"t": now},
        )
    return engine


def psycopg_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@contextmanager
def pg_database(admin_url: str, keep: bool = False) -> Iterator[str]:
    """A fresh database on the server of ``admin_url`` (dropped afterwards unless kept)."""
    name = f"tether_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(psycopg_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- peers -----------------------------------------------------------------------------------


@contextmanager
def moto_server(work: Path) -> Iterator[str]:
    """A moto server (S3) on a free loopback port; its URL."""
    port = free_port()
    log = work / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(proc, port, "moto", log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def moto_bucket(url: str) -> str:
    """A new bucket on a moto server (any credentials do)."""
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    with urllib.request.urlopen(urllib.request.Request(f"{url}/{bucket}", method="PUT")):
        pass
    return bucket


@contextmanager
def redis_server() -> Iterator[int]:
    """A private ``redis-server`` on a free loopback port (never the machine's shared one),
    no persistence; its port."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no redis-server binary on this machine")
    with tempfile.TemporaryDirectory(prefix="tether-bench-redis-") as tmp:
        port = free_port()
        options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp]
        proc = subprocess.Popen([binary, *options, "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            for _ in range(200):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if proc.poll() is not None:
                        raise SystemExit("redis-server exited at start") from None
                    time.sleep(0.05)
            else:
                raise SystemExit("redis-server did not start")
            client.close()
            yield port
        finally:
            stop(proc)


def line(label: str, value: str, detail: str, target: str = "", width: int = 18) -> None:
    """One row of a benchmark's table: label, figure, how it was measured, target."""
    print(f"  {label:<{width}} {value:>15}   {detail:<52} {('target ' + target) if target else ''}")


def scandir_walk(folder: Path) -> int:
    """The raw local listing: files under ``folder`` by an ``os.scandir`` walk that stats
    each one (what any lister of a folder must at least do)."""
    count, stack = 0, [str(folder)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    count += 1
    return count
