"""Resolve benchmark (issue 15, section 4).

    python bench/resolve.py                                   # every section
    python bench/resolve.py --section urls [--db postgresql]  # resolving (resolve_urls.py)
    python bench/resolve.py --section proxy --local-mb 200 --s3-mb 50

Sections are functions (``urls_section``, ``proxy_section``) that each print their own
table, so they can be run alone or together.

proxy: the throughput of ``GET /api/v1/storages/{id}/proxy`` (an object streamed through a
real ``tether serve``, fresh data dir, SQLite) for one large object on local files and on a
moto S3 server, beside a direct read of the same object from the same store, in this process,
with the same backend (``Storage.read`` of ``open_backend(record)`` from the same stored
record), best of ``--rounds`` each, every read taken in turn in each round (the direct read,
the proxy and the HTTP floor with each client), so a changing load falls on all of them
alike. The client checks each body's length (and once, untimed, its SHA-256). Also: the
time to the last byte of a 1 MiB range at the object's end (a video seek: read with a
ranged read, never the whole object) and the server's peak RSS while it streams (bounded
memory: flat in the object's size). Target: proxy MB/s >= 0.8 x the direct read's.

Two clients read every HTTP answer: httpx (``iter_raw`` in 1 MiB blocks, as the SDK
would) and a lean one (one socket, the head parsed, then ``recv_into`` one reused 1 MiB
buffer: about what a browser's C network stack costs). httpx is itself a limit here: it
reads 64 KiB a ``recv`` and parses each with h11, so it tops out near 0.6 GB/s on this
machine while a server sends faster; the lean client shows what the server can do.

For reference, measured in the same run with both clients: the HTTP floor of each store
(``_http_floor.py``: a bare uvicorn app serving the same object from the same store -- a
local file read on the event loop, or an S3 object streamed by obstore's async API -- with
no framework, database, token, ``stat`` or thread hop), and loopback TCP (the local file
``sendfile``d by a bare socket, no HTTP server at all: what loopback carries). A direct read
of a local file is a copy out of the page cache, several times what loopback TCP carries,
so no HTTP server reaches 0.8 of it; a direct S3 read runs two processes (moto and the
reader) where a proxied one runs three (moto, the server, the client) on the same cores.
The ratio to the direct read is printed as the issue asks, beside the ratio to
min(direct, HTTP floor) with the same client: the limit a Python HTTP server is held to.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import resolve_urls
from _common import (
    MB,
    PeakRss,
    cpu_seconds,
    free_port,
    line,
    moto_bucket,
    moto_server,
    server,
    stop,
    user_and_key,
    wait_listening,
)

from tether.accounts.orgs import get_or_create_org
from tether.config import Settings
from tether.db.engine import make_engine
from tether.resolve import urls
from tether.storages.base import Storage
from tether.sync.connections import get_record, insert_storage, open_backend

TARGET_PROXY_RATIO = 0.8
BLOCK = 1 << 20
ORG = "bench"
KEY = "video/big clip.mp4"


@dataclass
class ProxyRun:
    store: str
    size: int
    direct: float  # best seconds of Storage.read
    proxied: float  # best seconds through the proxy, httpx client
    lean: float  # best seconds through the proxy, lean client
    seek: float  # best seconds of a 1 MiB range at the end, through the proxy
    floor: float  # best seconds of the bare uvicorn app (same store), httpx client
    floor_lean: float  # the same, lean client
    peak_rss: int  # the server's, while it streams
    idle_rss: int
    cpu: float  # the server's CPU seconds over the proxied rounds


def _best(rounds: int, run: Callable[[], int], size: int, what: str) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        got = run()
        best = min(best, time.perf_counter() - began)
        if got != size:
            sys.exit(f"{what} read {got:,} bytes, expected {size:,}")
    return best


def _direct(backend: Storage, key: str) -> int:
    return sum(len(block) for block in backend.read(key))


def _fetch(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> int:
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code not in (200, 206):
            sys.exit(f"the proxy answered {response.status_code}: {response.read()[:300]!r}")
        return sum(len(block) for block in response.iter_raw(BLOCK))


def _fetch_lean(base: str, path: str, headers: dict[str, str] | None = None) -> int:
    """GET ``path`` on one bare socket: the head read and checked, then the body taken with
    ``recv_into`` one reused buffer (no HTTP library); the body's length."""
    where = urlsplit(base)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    with socket.create_connection((host, port)) as sock:
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            got = sock.recv(65536)
            if not got:
                sys.exit(f"the server closed before its head: {head[:300]!r}")
            head += got
        head, body = head.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        if status not in (200, 206):
            sys.exit(f"the server answered {status}: {head[:300]!r}")
        fields = dict(line.split(b":", 1) for line in lines[1:])
        length = int({k.strip().lower(): v for k, v in fields.items()}[b"content-length"])
        view = memoryview(bytearray(BLOCK))
        got_bytes = len(body)
        while got_bytes < length:
            n = sock.recv_into(view)
            if not n:
                break
            got_bytes += n
        return got_bytes


def _sha256_through(client: httpx.Client, url: str) -> str:
    digest = hashlib.sha256()
    with client.stream("GET", url) as response:
        for block in response.iter_raw(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _fill(backend: Storage, key: str, size: int) -> str:
    """``size`` random bytes under ``key`` (streamed: never all in memory); their SHA-256."""
    digest = hashlib.sha256()

    def blocks() -> Iterator[bytes]:
        left = size
        while left > 0:
            block = os.urandom(min(8 * MB, left))
            digest.update(block)
            left -= len(block)
            yield block

    backend.write_stream(key, blocks(), content_type="video/mp4")
    return digest.hexdigest()


def _measure(
    name: str,
    settings: Settings,
    fields: dict[str, str],
    size: int,
    url: str,
    pid: int,
    rounds: int,
) -> ProxyRun:
    """One store: its storage stored (as the API would), the object written, every read."""
    fields_json = json.dumps(fields)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with engine.begin() as conn:
            org_id = get_or_create_org(conn, ORG)
            type_ = "local" if name == "local" else "s3"
            storage_id = insert_storage(
                conn, settings, org_id=org_id, type_=type_, fields=fields, use_signed_urls=False
            )
            record = get_record(conn, settings, org_id, storage_id)
    finally:
        engine.dispose()
    backend = open_backend(settings, record)
    key = KEY
    want = _fill(backend, key, size)
    path = urls.proxy_url(settings, org_id, storage_id, key, ttl_seconds=3600)
    source = [str(Path(fields["path"]) / key)] if name == "local" else ["s3", fields_json, key]
    with (
        _floor_server(settings.data_dir.parent, source) as floor_url,
        httpx.Client(base_url=url, timeout=600) as client,
        httpx.Client(base_url=floor_url, timeout=600) as floor_client,
    ):
        if _sha256_through(client, path) != want:
            sys.exit(f"{name}: the proxy's bytes differ from the object's")
        reads: dict[str, Callable[[], int]] = {
            "direct": lambda: _direct(backend, key),
            "proxied": lambda: _fetch(client, path),
            "floor": lambda: _fetch(floor_client, "/"),
            "lean": lambda: _fetch_lean(url, path),
            "floor_lean": lambda: _fetch_lean(floor_url, "/"),
        }
        idle = PeakRss(pid, tree=True)._sample()
        with PeakRss(pid, tree=True, every=0.01) as rss:
            cpu = cpu_seconds(pid)
            best = _interleaved(rounds, reads, size)
            cpu = cpu_seconds(pid) - cpu
        tail = {"Range": f"bytes={size - MB}-"}
        seek = _best(rounds, lambda: _fetch(client, path, tail), MB, "a ranged read")
    return ProxyRun(
        name, size, best["direct"], best["proxied"], best["lean"], seek, best["floor"],
        best["floor_lean"], rss.peak, idle, cpu,
    )  # fmt: skip


def _interleaved(rounds: int, reads: dict[str, Callable[[], int]], size: int) -> dict[str, float]:
    """Best seconds of each read, taken in turn round after round, so a machine's changing
    load falls on all of them alike and their ratios are of the same moments."""
    best = dict.fromkeys(reads, float("inf"))
    for _ in range(rounds):
        for what, run in reads.items():
            best[what] = min(best[what], _best(1, run, size, what))
    return best


def proxy_section(local_mb: int = 200, s3_mb: int = 50, rounds: int = 3) -> list[ProxyRun]:
    """Proxy throughput beside a direct read, on local files and moto S3; prints its table."""
    work = Path(tempfile.mkdtemp(prefix="tether-bench-resolve-"))
    runs: list[ProxyRun] = []
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        root = work / "documents"
        (root / "store").mkdir(parents=True)
        config = {
            "TETHER_DATA_DIR": str(work / "data"),
            "TETHER_LOCAL_FILES_SERVING_ENABLED": "true",
            "TETHER_LOCAL_FILES_DOCUMENT_ROOT": str(root),
            "TETHER_OUTBOUND_ALLOWLIST": "127.0.0.1",
        }
        moto = stack.enter_context(moto_server(work))
        proc, url = stack.enter_context(server(work, config))
        user_and_key(config, org=ORG)
        settings = Settings(
            data_dir=work / "data",
            secret_key=None,
            local_files_serving_enabled=True,
            local_files_document_root=root,
            outbound_allowlist="127.0.0.1",
        )
        s3_fields = {
            "bucket": moto_bucket(moto),
            "endpoint_url": moto,
            "region": "us-east-1",
            "access_key_id": "bench",
            "secret_access_key": "bench",
        }
        stores = [("local", {"path": str(root / "store")}, local_mb), ("s3", s3_fields, s3_mb)]
        for name, fields, mb in stores:
            runs.append(_measure(name, settings, fields, mb * MB, url, proc.pid, rounds))
        tcp = _tcp_floor(root / "store" / KEY, local_mb * MB, rounds)
    _report(runs, rounds, local_mb / tcp)
    return runs


@contextmanager
def _floor_server(work: Path, source: list[str]) -> Iterator[str]:
    """The bare app (``_http_floor.py`` with ``source``: a file's path, or ``s3 FIELDS KEY``)
    on a free port, until the block ends; its base URL."""
    port = free_port()
    log = work / "floor.log"
    with log.open("wb") as out:
        argv = [sys.executable, str(Path(__file__).parent / "_http_floor.py"), str(port), *source]
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(proc, port, "the HTTP floor", log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _tcp_floor(path: Path, size: int, rounds: int) -> float:
    """Best seconds the lean client takes to read ``path`` from a bare socket that writes an
    HTTP head and then ``sendfile``s the file (a thread of this process; the kernel copies)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(rounds):
            conn, _addr = listener.accept()
            with conn, path.open("rb") as file:
                conn.recv(65536)
                conn.sendall(f"HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n".encode())
                conn.sendfile(file)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        return _best(rounds, lambda: _fetch_lean(base, "/"), size, "loopback TCP")
    finally:
        thread.join(timeout=60)
        listener.close()


def _report(runs: list[ProxyRun], rounds: int, tcp: float) -> None:
    print("\ntether proxy: GET /api/v1/storages/{id}/proxy through `tether serve` (SQLite)")
    print(f"  best of {rounds}, the reads taken in turn; direct: Storage.read of the same")
    print("  backend, in this process")
    print("  clients: httpx (iter_raw, 1 MiB blocks); lean (one socket, recv_into 1 MiB)")
    print("  HTTP floor: a bare uvicorn app serving the same object from the same store")
    line("loopback TCP, lean", f"{tcp:,.0f} MB/s", "a file sendfile'd, no HTTP server", width=24)
    for run in runs:
        size_mb = run.size / MB
        direct = size_mb / run.direct
        store = "local files" if run.store == "local" else "moto S3"
        print(f"  {store}, one object of {size_mb:,.0f} MB")
        line("direct read", f"{direct:,.0f} MB/s", f"{run.direct:.2f} s", width=24)
        for client, seconds, floor_s in (
            ("httpx", run.proxied, run.floor),
            ("lean", run.lean, run.floor_lean),
        ):
            proxied, floor = size_mb / seconds, size_mb / floor_s
            ratio = proxied / direct
            ok = "PASS" if ratio >= TARGET_PROXY_RATIO else "FAIL"
            line(f"HTTP floor, {client}", f"{floor:,.0f} MB/s", f"{floor_s:.2f} s", width=24)
            line(f"proxy, {client}", f"{proxied:,.0f} MB/s", f"{seconds:.2f} s", width=24)
            target = f">= {TARGET_PROXY_RATIO}  {ok}"
            line("  / direct read", f"{ratio:.2f}", "", target, width=24)
            bound = min(direct, floor)
            of = f"of {bound:,.0f} MB/s, the same client"
            line("  / min(direct, floor)", f"{proxied / bound:.2f}", of, width=24)
        per_mb = run.cpu / (size_mb * rounds * 2) * 1000
        line("server CPU", f"{per_mb:.2f} ms/MB", "tether serve's, proxied rounds", width=24)
        line("seek: last 1 MiB", f"{run.seek * 1000:.1f} ms", "Range: bytes=-1MiB", width=24)
        rss = f"idle {run.idle_rss / MB:.0f} MB"
        line("server peak RSS", f"{run.peak_rss / MB:.0f} MB", rss, width=24)


SECTIONS: dict[str, Callable[[argparse.Namespace], object]] = {
    "urls": resolve_urls.urls_section,
    "proxy": lambda args: proxy_section(args.local_mb, args.s3_mb, args.rounds),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--local-mb", type=int, default=200, help="the local object's size")
    parser.add_argument("--s3-mb", type=int, default=50, help="the S3 object's size")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many passes")
    resolve_urls.add_arguments(parser)
    args = parser.parse_args()
    for name in args.section or sorted(SECTIONS):
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
