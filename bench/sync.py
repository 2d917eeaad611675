"""Sync benchmark (issue 14, section 6).

    python bench/sync.py --backend local --objects 100000      # and a first sync at 10 x N
    python bench/sync.py --backend redis --objects 100000
    python bench/sync.py --backend s3 --objects 20000           # on a moto server
    python bench/sync.py --backend local --db postgresql

Fills a fresh store with N objects (local: files of 100-odd bytes in folders of 1,000 under
a document root; Redis: task-JSON values on a private ``redis-server``; S3: small objects in
a bucket of a moto server), starts a real ``tether serve`` (fresh data dir; for PostgreSQL a
fresh database) with its embedded worker, stores a source storage of the store into a
dataset and syncs it through the API (``POST /api/v1/storages/{id}/sync``, the SDK's
``sync_storage``), as a user would: the sync runs in the server, so the RSS and CPU measured
are the server's, job machinery, HTTP and all. It times, from the job's own start and end:

1. the first sync (every object becomes a row) -> objects/s;
2. a no-op re-sync (nothing changed; best of ``--noop-rounds``) -> seconds;
3. a sync after 1% new, 1% changed and 1% deleted objects, scattered over the whole store
   (``remove_missing`` on, so the deleted ones' rows are removed);

and compares them with the raw listing of the same store in the same run, in this process,
with the same client: ``Storage.list`` of ``open_backend(record)`` (the backend object the
sync opens from the same stored record; best of ``--rounds``, measured before and between
the syncs), and, for reference, the client underneath it (an ``os.scandir`` walk that stats
every file; redis-py ``SCAN`` on the same connection; ``obstore.list`` on the same store).
It samples the peak RSS of the server during each sync, and for local files (unless
``--no-tenfold``) runs a first sync and a no-op re-sync at 10 x N on a fresh server and store
to show whether memory is flat in N.

Targets: first sync >= 0.8 x the raw listing rate (and >= 20,000 objects/s for local files);
no-op re-sync <= 1.2 x the raw listing time; peak RSS at 10 x N <= 1.25 x at N ("flat").

``BENCH_PROFILE=out.svg`` records the server with py-spy during the phase ``--profile``
names (first, noop or change).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from _common import (
    MB,
    PG_DEFAULT,
    PeakRss,
    cpu_seconds,
    end_profile,
    line,
    moto_bucket,
    moto_server,
    pg_database,
    profile,
    psycopg_url,
    redis_server,
    scandir_walk,
    server,
    user_and_key,
)
from sqlalchemy import Engine, select

from tether.accounts.orgs import get_or_create_org
from tether.catalog import datasets as dataset_service
from tether.catalog.store import ROW_COLUMNS, bulk_insert
from tether.config import Settings
from tether.db.engine import make_engine
from tether.db.migrate import upgrade
from tether.db.tables import data_rows, datasets
from tether.sdk import Client
from tether.storages.base import ObjectInfo, Storage
from tether.sync import links
from tether.sync.connections import get_record, insert_storage, open_backend
from tether.sync.diff import version_of

TARGET_FIRST_RATIO, TARGET_LOCAL_RATE, TARGET_NOOP_RATIO, TARGET_RSS_RATIO = 0.8, 20_000, 1.2, 1.25
DEFAULT_OBJECTS = {"local": 100_000, "redis": 100_000, "s3": 20_000}
PER_FOLDER = 1000


# --- stores ----------------------------------------------------------------------------------


class Store:
    """A store of N objects to sync: its connection fields, how to fill and change it, and
    the raw client listing under ``Storage.list``."""

    type_: str
    raw_name: str
    fields: dict[str, Any]

    def fill(self, n: int) -> None:
        raise NotImplementedError

    def change(self, n: int) -> int:
        """1% new, 1% changed, 1% deleted objects, scattered; returns the count of each."""
        raise NotImplementedError

    def raw_list(self, backend: Storage) -> int:
        """Objects listed by the client under ``backend`` (the same connection)."""
        raise NotImplementedError


def spread(n: int) -> tuple[int, list[int]]:
    """One object in a hundred, at even steps over the whole store: (count, first index)."""
    k = max(1, n // 100)
    return k, [j * (n // k) for j in range(k)]


class LocalStore(Store):
    type_, raw_name = "local", "os.scandir walk + stat"

    def __init__(self, root: Path) -> None:
        self.folder = root / "store"
        self.fields = {"path": str(self.folder)}

    def _path(self, index: int, suffix: str = "") -> Path:
        return self.folder / f"f{index // PER_FOLDER:05d}" / f"img_{index:08d}{suffix}.jpg"

    def fill(self, n: int) -> None:
        for index in range(n):
            if index % PER_FOLDER == 0:
                self._path(index).parent.mkdir(parents=True)
            self._path(index).write_bytes(b"x" * (100 + index % 50))

    def change(self, n: int) -> int:
        k, starts = spread(n)
        for i in starts:
            self._path(i, "a").write_bytes(b"new")  # sorts right after img_i.jpg
            self._path(i + 1).write_bytes(b"changed" * 40)
            self._path(i + 2).unlink()
        return k

    def raw_list(self, backend: Storage) -> int:
        return scandir_walk(self.folder)


class RedisStore(Store):
    type_, raw_name = "redis", "redis-py SCAN"
    PATH = "tasks/"

    def __init__(self, port: int) -> None:
        import redis

        self.client = redis.Redis(port=port)
        self.fields = {"host": "127.0.0.1", "port": port, "path": self.PATH}

    @staticmethod
    def _key(index: int, suffix: str = "") -> str:
        return f"{RedisStore.PATH}{index:08d}{suffix}.json"

    @staticmethod
    def _task(index: int, note: str = "") -> bytes:
        return b'{"data": {"image": "s3://bucket/img_%08d.jpg"%s}}' % (index, note.encode())

    def fill(self, n: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        for index in range(n):
            pipe.set(self._key(index), self._task(index))
            if index % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()

    def change(self, n: int) -> int:
        k, starts = spread(n)
        pipe = self.client.pipeline(transaction=False)
        for i in starts:
            pipe.set(self._key(i, "a"), self._task(i))
            pipe.set(self._key(i + 1), self._task(i + 1, ', "text": "changed"'))
            pipe.delete(self._key(i + 2))
        pipe.execute()
        return k

    def raw_list(self, backend: Storage) -> int:
        from tether.storages.redis import SCAN_COUNT

        client = backend._client  # type: ignore[attr-defined]  # the sync's own connection
        match = self.PATH.encode() + b"*"
        return sum(1 for _ in client.scan_iter(match=match, count=SCAN_COUNT))


class S3Store(Store):
    type_, raw_name = "s3", "obstore.list"
    PREFIX = "bench/img/"

    def __init__(self, url: str) -> None:
        from obstore.store import S3Store as ObjectStore

        bucket = moto_bucket(url)
        creds = {"access_key_id": "bench", "secret_access_key": "bench"}
        self.store = ObjectStore(
            bucket,
            endpoint=url,
            region="us-east-1",
            client_options={"allow_http": True},
            **creds,  # type: ignore[arg-type]
        )
        self.fields = {
            "bucket": bucket,
            "prefix": self.PREFIX,
            "endpoint_url": url,
            "region": "us-east-1",
            **creds,
        }

    def _key(self, index: int, suffix: str = "") -> str:
        return f"{self.PREFIX}{index:07d}{suffix}.jpg"

    def _run(self, jobs: list[tuple[str, bytes | None]], concurrency: int = 32) -> None:
        import obstore

        async def main() -> None:
            gate = asyncio.Semaphore(concurrency)

            async def one(key: str, data: bytes | None) -> None:
                async with gate:
                    if data is None:
                        await obstore.delete_async(self.store, key)
                    else:
                        await obstore.put_async(self.store, key, data)

            await asyncio.gather(*(one(key, data) for key, data in jobs))

        asyncio.run(main())

    def fill(self, n: int) -> None:
        self._run([(self._key(i), b"x" * 64) for i in range(n)])

    def change(self, n: int) -> int:
        k, starts = spread(n)
        jobs: list[tuple[str, bytes | None]] = []
        for i in starts:
            jobs += [(self._key(i, "a"), b"new"), (self._key(i + 1), b"changed" * 10)]
            jobs.append((self._key(i + 2), None))
        self._run(jobs)
        return k

    def raw_list(self, backend: Storage) -> int:
        import obstore

        store = backend._store  # type: ignore[attr-defined]  # the sync's own store
        return sum(len(chunk) for chunk in obstore.list(store, self.PREFIX, chunk_size=1000))


@contextmanager
def open_store(backend: str, work: Path, root: Path) -> Iterator[Store]:
    if backend == "local":
        yield LocalStore(root)
    elif backend == "redis":
        with redis_server() as port:
            store = RedisStore(port)
            yield store
            store.client.close()
    else:
        with moto_server(work) as url:
            yield S3Store(url)


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Listings:
    """The best times of the two raw listings of the store, over every round measured."""

    store: Store
    backend: Storage
    prefix: str
    recursive: bool
    best: dict[str, float] = field(default_factory=dict)  # seconds
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of this process
    counts: dict[str, int] = field(default_factory=dict)

    def storage_list(self) -> int:
        pages = self.backend.list(self.prefix, recursive=self.recursive)
        return sum(len(page) for page in pages)

    def measure(self, rounds: int) -> None:
        for _ in range(rounds):
            for name, run in (
                ("raw", lambda: self.store.raw_list(self.backend)),
                ("list", self.storage_list),
            ):
                began, cpu = time.perf_counter(), time.process_time()
                count = run()
                spent, cpu = time.perf_counter() - began, time.process_time() - cpu
                self.counts[name] = count
                self.best[name] = min(self.best.get(name, float("inf")), spent)
                self.cpu[name] = min(self.cpu.get(name, float("inf")), cpu)
        if self.counts["raw"] != self.counts["list"]:
            sys.exit(f"the two raw listings disagree: {self.counts}")


@dataclass
class SyncRun:
    run: float  # the job's own time, started_at to finished_at (server clock)
    wall: float  # from the POST to the poll that saw it done
    cpu: float  # the server's CPU seconds meanwhile
    peak_rss: int
    counts: dict[str, int]


def timed_sync(client: Client, pid: int, storage_id: int, spy_out: str | None = None) -> SyncRun:
    spy = profile(pid, out=spy_out) if spy_out else None
    with PeakRss(pid, tree=True, every=0.02) as rss:
        cpu = cpu_seconds(pid)
        began = time.perf_counter()
        job = client.sync_storage(storage_id).wait_till_done(poll=0.5)
        wall = time.perf_counter() - began
        cpu = cpu_seconds(pid) - cpu
    end_profile(spy)
    if job.status != "completed" or job.started_at is None or job.finished_at is None:
        sys.exit(f"the sync did not complete: {job!r} {job.message}")
    run = (
        datetime.fromisoformat(job.finished_at) - datetime.fromisoformat(job.started_at)
    ).total_seconds()
    counts = {k: v for k, v in job.counts.model_dump().items() if v is not None}
    return SyncRun(run, wall, cpu, rss.peak, counts)


def expect(run: SyncRun, phase: str, **given: int) -> None:
    names = ("listed", "created", "updated", "unchanged", "missing", "removed", "failed")
    wanted = {name: given.get(name, 0) for name in names}
    got = {name: run.counts.get(name, 0) for name in names}
    if got != wanted:
        sys.exit(f"{phase}: the sync counted {got}, expected {wanted}")


@dataclass
class Pass:
    """One fresh store, server and database, and what was measured on them."""

    n: int
    listings: Listings
    idle_rss: int
    first: SyncRun
    noop: SyncRun
    change: SyncRun | None = None
    k: int = 0
    floor: tuple[float, float] | None = None  # write_floor's seconds and CPU seconds


def run_pass(args: argparse.Namespace, n: int, with_change: bool) -> Pass:
    work = Path(tempfile.mkdtemp(prefix="tether-bench-sync-"))
    spy = os.environ.get("BENCH_PROFILE") if with_change else None  # the pass at N
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, work, True)
        root = Path(tempfile.mkdtemp(prefix="tether-bench-documents-", dir=args.files_dir))
        if not args.keep:
            stack.callback(shutil.rmtree, root, True)
        config = {
            "TETHER_DATA_DIR": str(work / "data"),
            "TETHER_LOCAL_FILES_SERVING_ENABLED": "true",
            "TETHER_LOCAL_FILES_DOCUMENT_ROOT": str(root),
            "TETHER_OUTBOUND_ALLOWLIST": "127.0.0.1",
        }
        if args.db == "postgresql":
            config["TETHER_DATABASE_URL"] = stack.enter_context(pg_database(args.pg, args.keep))
        if args.chunk_objects:
            config["TETHER_SYNC_CHUNK_OBJECTS"] = str(args.chunk_objects)
        store = stack.enter_context(open_store(args.backend, work, root))
        began = time.perf_counter()
        store.fill(n)
        print(f"  filled {n:,} {args.backend} objects in {time.perf_counter() - began:.1f} s")
        proc, url = stack.enter_context(server(work, config))
        client = stack.enter_context(Client(url, api_key=user_and_key(config), timeout=600))
        dataset = client.create_dataset("bench")
        settings = Settings(
            data_dir=work / "data",
            database_url=config.get("TETHER_DATABASE_URL"),
            secret_key=None,
            local_files_serving_enabled=True,
            local_files_document_root=root,
            outbound_allowlist=config["TETHER_OUTBOUND_ALLOWLIST"],
        )
        storage_id, listings = _storage(settings, store, dataset.id, stack, args)
        listings.measure(args.rounds)  # warms the caches too
        if listings.counts["list"] != n:
            sys.exit(f"Storage.list listed {listings.counts['list']:,}, expected {n:,}")
        idle = PeakRss(proc.pid, tree=True)._sample()
        first = timed_sync(client, proc.pid, storage_id, spy if args.profile == "first" else None)
        expect(first, "first sync", listed=n, created=n)
        listings.measure(1)
        noops: list[SyncRun] = []
        for _ in range(args.noop_rounds):
            out = spy if args.profile == "noop" and not noops else None
            noops.append(timed_sync(client, proc.pid, storage_id, out))
            expect(noops[-1], "no-op re-sync", listed=n, unchanged=n)
            listings.measure(1)
        noop = min(noops, key=lambda r: r.run)
        noop.peak_rss = max(r.peak_rss for r in noops)
        result = Pass(n, listings, idle, first, noop)
        if with_change:
            k = store.change(n)
            listings.measure(1)
            out = spy if args.profile == "change" else None
            result.change = timed_sync(client, proc.pid, storage_id, out)
            result.k = k
            counts = {"listed": n, "created": k, "updated": k, "unchanged": n - 2 * k}
            expect(result.change, "1% sync", **counts, missing=k, removed=k)
            listings.measure(1)
        if not args.no_floor:
            result.floor = write_floor(args, work, listings)
    return result


def _storage(
    settings: Settings, store: Store, dataset_id: int, stack: ExitStack, args: argparse.Namespace
) -> tuple[int, Listings]:
    """The source storage of ``store`` stored into the server's database as the storage API
    would (``insert_storage``), and the raw listings of the backend opened from its record."""
    engine = make_engine(settings.sqlalchemy_url)
    stack.callback(engine.dispose)
    tasks = args.mode == "tasks" if args.mode else store.type_ == "redis"
    with engine.begin() as conn:
        org_id = conn.execute(
            select(datasets.c.org_id).where(datasets.c.id == dataset_id)
        ).scalar_one()
        storage_id = insert_storage(
            conn,
            settings,
            org_id=org_id,
            type_=store.type_,
            fields=store.fields,
            dataset_id=dataset_id,
            title="bench",
            treat_every_object_as_source_file=not tasks,
            remove_missing=True,
        )
        record = get_record(conn, settings, org_id, storage_id)
    backend = open_backend(settings, record)
    close = getattr(backend, "close", None)
    if close is not None:
        stack.callback(close)
    return storage_id, Listings(store, backend, record.prefix, record.recursive)


# --- the write floor -------------------------------------------------------------------------


def write_floor(args: argparse.Namespace, work: Path, lists: Listings) -> tuple[float, float]:
    """Seconds and CPU seconds (this process) the database driver takes to store what a first
    sync stores for the listed objects: one ``data_rows`` row each (its URI, size and MIME
    type, as the sync makes them) and its link, into a fresh database of the same schema
    (migrated), a transaction per ``TETHER_SYNC_CHUNK_OBJECTS`` objects, with the driver's
    bulk path the sync uses too (``executemany`` on SQLite, binary ``COPY`` on PostgreSQL).
    The listing and the tuples are made outside the timer."""
    with ExitStack() as stack:
        if args.db == "postgresql":
            url = psycopg_url(stack.enter_context(pg_database(args.pg, args.keep)))
        else:
            url = f"sqlite:///{work / 'floor.db'}"
        engine = make_engine(url)
        stack.callback(engine.dispose)
        upgrade(engine)
        org_id, dataset_id, storage_id = _floor_owners(engine, work)
        chunk = args.chunk_objects or Settings(data_dir=work).sync_chunk_objects
        backend, spent, cpu, next_id = lists.backend, 0.0, 0.0, 1
        stamp: Any = datetime.now(UTC)
        if engine.dialect.name == "sqlite":
            stamp = stamp.strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy stores it
        with engine.connect() as conn:
            for part in _chunked(backend.list(lists.prefix, recursive=lists.recursive), chunk):
                records, linked = [], []
                for info in part:
                    row = {
                        "id": next_id,
                        "org_id": org_id,
                        "dataset_id": dataset_id,
                        "media_type": "IMAGE",
                        "row_data": orjson.dumps(backend.uri(info.key)).decode(),
                        "media_attributes": orjson.dumps(
                            {"size": info.size, "mimeType": "image/jpeg"}
                        ).decode(),
                        "created_at": stamp,
                        "updated_at": stamp,
                    }
                    records.append(tuple(row.get(name) for name in ROW_COLUMNS))
                    linked.append((info.key, 0, next_id, version_of(info)))
                    next_id += 1
                began, used = time.perf_counter(), time.process_time()
                with conn.begin():
                    bulk_insert(conn, data_rows, records)
                    links.insert(conn, storage_id, linked)
                spent += time.perf_counter() - began
                cpu += time.process_time() - used
    return spent, cpu


def _chunked(pages: Iterator[Sequence[ObjectInfo]], size: int) -> Iterator[list[ObjectInfo]]:
    part: list[ObjectInfo] = []
    for page in pages:
        for info in page:
            part.append(info)
            if len(part) == size:
                yield part
                part = []
    if part:
        yield part


def _floor_owners(engine: Engine, work: Path) -> tuple[int, int, int]:
    with engine.begin() as conn:
        org_id = get_or_create_org(conn, "floor")
        dataset_id = int(dataset_service.create(conn, org_id, "floor")["id"])
        fields = {"path": str(work)}
        storage_id = insert_storage(
            conn,
            Settings(data_dir=work),
            org_id=org_id,
            type_="local",
            fields=fields,
            dataset_id=dataset_id,
        )
    return org_id, dataset_id, storage_id


# --- the report ------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def row(label: str, value: str, detail: str, target: str = "") -> None:
    line(label, value, detail, target, width=22)


def report(args: argparse.Namespace, main: Pass, tenfold: Pass | None) -> None:
    n, lists = main.n, main.listings
    list_s, raw_s, list_cpu = lists.best["list"], lists.best["raw"], lists.cpu["list"]
    list_rate = n / list_s
    tasks = args.mode == "tasks" if args.mode else args.backend == "redis"
    mode = "tasks: every object read as a task" if tasks else "one row per object"
    db = "PostgreSQL" if args.db == "postgresql" else "SQLite"
    print(
        f"\ntether sync: {args.backend}, {n:,} objects ({mode}), {db}; "
        "through `tether serve` (POST /api/v1/storages/{id}/sync)"
    )
    print("  times: the job's own (started_at to finished_at); CPU: the server process's")
    row(
        "raw Storage.list",
        f"{list_rate:,.0f} obj/s",
        f"{list_s:.2f} s (CPU {list_cpu:.2f} s), best of all rounds, in this process",
    )
    row(
        "raw client under it",
        f"{n / raw_s:,.0f} obj/s",
        f"{raw_s:.2f} s (CPU {lists.cpu['raw']:.2f} s): {lists.store.raw_name}",
    )
    first = main.first
    rate = n / first.run
    ratio = rate / list_rate
    row(
        "first sync",
        f"{rate:,.0f} obj/s",
        f"{first.run:.2f} s (wall {first.wall:.2f} s, CPU {first.cpu:.1f} s)",
    )
    row(
        "  / Storage.list rate",
        f"{ratio:.2f}",
        f"{rate / (n / raw_s):.2f} of the raw client's",
        f">= {TARGET_FIRST_RATIO}  {verdict(ratio >= TARGET_FIRST_RATIO)}",
    )
    if args.backend == "local":
        ok = rate >= TARGET_LOCAL_RATE
        row("  local files", f"{rate:,.0f} obj/s", "", f">= {TARGET_LOCAL_RATE:,}  {verdict(ok)}")
    row(
        "  by CPU",
        f"{list_cpu / first.cpu:.2f}",
        f"{first.cpu / n * 1e6:.0f} us CPU an object vs Storage.list's {list_cpu / n * 1e6:.1f}",
    )
    if main.floor is not None:
        floor_s, floor_cpu = main.floor
        how = "binary COPY" if args.db == "postgresql" else "executemany"
        row(
            "raw write floor",
            f"{n / floor_s:,.0f} obj/s",
            f"{floor_s:.2f} s (CPU {floor_cpu:.1f} s): {how}, the same rows + links",
        )
        where = "SQLite's CPU included" if args.db == "sqlite" else "PostgreSQL's CPU not"
        row(
            "  first sync / floor",
            f"{floor_s / first.run:.2f}",
            f"rate ratio; by CPU {floor_cpu / first.cpu:.2f} ({where})",
        )
    noop = main.noop
    ratio = noop.run / list_s
    row(
        "no-op re-sync",
        f"{noop.run:.2f} s",
        f"best of {args.noop_rounds} (wall {noop.wall:.2f} s, CPU {noop.cpu:.2f} s)",
    )
    row(
        "  / Storage.list time",
        f"{ratio:.2f}",
        f"{noop.run / raw_s:.2f} of the raw client's",
        f"<= {TARGET_NOOP_RATIO}  {verdict(ratio <= TARGET_NOOP_RATIO)}",
    )
    row("  by CPU", f"{noop.cpu / list_cpu:.2f}", "CPU seconds / Storage.list's")
    if main.change is not None:
        change, k = main.change, main.k
        row(
            "1% new, changed, gone",
            f"{change.run:.2f} s",
            f"+{k:,} ~{k:,} -{k:,} (wall {change.wall:.2f} s, CPU {change.cpu:.2f} s)",
        )
        row(
            "  / Storage.list time",
            f"{change.run / list_s:.2f}",
            f"by CPU {change.cpu / list_cpu:.2f}",
        )
    row("server RSS", f"{main.idle_rss / MB:,.0f} MB", "idle, before the first sync")
    row("  peak, first sync", f"{first.peak_rss / MB:,.0f} MB", "process tree, every 20 ms")
    row("  peak, no-op", f"{noop.peak_rss / MB:,.0f} MB", "")
    if main.change is not None:
        row("  peak, 1% sync", f"{main.change.peak_rss / MB:,.0f} MB", "")
    if tenfold is not None:
        _report_tenfold(main, tenfold)


def _report_tenfold(main: Pass, big: Pass) -> None:
    n = big.n
    list_s, list_cpu = big.listings.best["list"], big.listings.cpu["list"]
    rate = n / big.first.run
    print(f"  at 10 x N = {n:,} objects (a fresh store, server and database):")
    row("  raw Storage.list", f"{n / list_s:,.0f} obj/s", f"{list_s:.2f} s (CPU {list_cpu:.1f} s)")
    row(
        "  first sync",
        f"{rate:,.0f} obj/s",
        f"{big.first.run:.1f} s, {rate * list_s / n:.2f} of Storage.list's rate; "
        f"CPU {big.first.cpu / n * 1e6:.0f} us an object",
    )
    row(
        "  no-op re-sync",
        f"{big.noop.run:.2f} s",
        f"{big.noop.run / list_s:.2f} of Storage.list's time; by CPU {big.noop.cpu / list_cpu:.2f}",
    )
    peak_n = max(main.first.peak_rss, main.noop.peak_rss)
    peak_big = max(big.first.peak_rss, big.noop.peak_rss)
    ratio = peak_big / peak_n
    grown_n, grown_big = peak_n - main.idle_rss, peak_big - big.idle_rss
    row(
        "  peak RSS",
        f"{peak_big / MB:,.0f} MB",
        f"x{ratio:.2f} the {peak_n / MB:,.0f} MB at N; over idle +{grown_big / MB:,.0f} MB"
        f" vs +{grown_n / MB:,.0f} MB",
        f"<= {TARGET_RSS_RATIO} x: flat  {verdict(ratio <= TARGET_RSS_RATIO)}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("local", "redis", "s3"), default="local")
    parser.add_argument("--objects", type=int, help="default 100,000 (local, redis), 20,000 (s3)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server for --db postgresql")
    parser.add_argument(
        "--mode",
        choices=("files", "tasks"),
        help="files: one row per object (treat_every_object_as_source_file, default for "
        "local and s3); tasks: each object read as tasks (default for redis)",
    )
    parser.add_argument(
        "--files-dir",
        help="local: where the document root with the files is made (default: the temp dir; "
        "/dev/shm when the disk is slow to fill)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="raw listing rounds at first")
    parser.add_argument("--noop-rounds", type=int, default=5)
    parser.add_argument("--chunk-objects", type=int, help="TETHER_SYNC_CHUNK_OBJECTS")
    parser.add_argument("--no-tenfold", action="store_true", help="local: skip the runs at 10 x N")
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the raw write floor of the first sync"
    )
    parser.add_argument("--profile", choices=("first", "noop", "change"), default="first")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and databases")
    args = parser.parse_args()
    n = args.objects or DEFAULT_OBJECTS[args.backend]
    print(f"pass at N = {n:,}")
    main_pass = run_pass(args, n, with_change=True)
    tenfold = None
    if args.backend == "local" and not args.no_tenfold:
        print(f"pass at 10 x N = {10 * n:,}")
        tenfold = run_pass(args, 10 * n, with_change=False)
    report(args, main_pass, tenfold)


if __name__ == "__main__":
    main()
