"""Storage listing benchmark (issue 14, section 1).

    python bench/storage_list.py --backend local --objects 100000
    python bench/storage_list.py --backend redis --objects 100000

Fills a fresh store with N objects (local: files of 100-odd bytes in folders of
``--per-folder`` files under a temporary document root; Redis: task-JSON string values on a
private ``redis-server`` started on a free loopback port), then lists it, in the same run and
on a warm cache, two ways:

- ``Storage.list`` to the end (pages of ``ObjectInfo`` in key order: key, size, etag,
  modified),
- the raw physical limit of the same store: a recursive ``os.scandir`` walk that stats every
  file (what any listing needs for size and mtime) in the order the OS gives, or a raw
  ``SCAN`` of the same keys with the same redis-py client and COUNT.

Each is run ``--rounds`` times (alternating); the best round of each is printed as objects/s
with their ratio (target: Storage.list >= 0.8 x raw). It also prints the peak of the
Python heap (tracemalloc) during one ``Storage.list`` against the total size of its keys.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import redis_server, scandir_walk

TARGET_RATIO = 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["local", "redis"], default="local")
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--per-folder", type=int, default=1000, help="local: files a folder")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with (local_store if args.backend == "local" else redis_store)(args) as (storage, raw):
        report(args, storage, raw)


def report(args: argparse.Namespace, storage: object, raw: Callable[[], int]) -> None:
    def listed() -> int:
        return sum(len(page) for page in storage.list())  # type: ignore[attr-defined]

    assert listed() == raw() == args.objects, "the two listings disagree"  # and warms caches
    best = {"Storage.list": 0.0, "raw": 0.0}
    for _ in range(args.rounds):
        for name, run in (("raw", raw), ("Storage.list", listed)):
            began = time.perf_counter()
            count = run()
            best[name] = max(best[name], count / (time.perf_counter() - began))
    tracemalloc.start()
    listed()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ratio = best["Storage.list"] / best["raw"]
    raw_name = "os.scandir walk + stat" if args.backend == "local" else "redis SCAN"
    print(f"backend {args.backend}, {args.objects:,} objects, best of {args.rounds} rounds")
    print(f"  Storage.list          {best['Storage.list']:>12,.0f} objects/s")
    print(f"  raw {raw_name:<18}{best['raw']:>12,.0f} objects/s")
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"  ratio                 {ratio:>12.2f}  ({verdict} the {TARGET_RATIO} target)")
    print(f"  peak Python heap during one Storage.list: {peak / 2**20:.1f} MiB")


# -- local ----------------------------------------------------------------------------------


@contextmanager
def local_store(args: argparse.Namespace) -> Iterator[tuple[object, Callable[[], int]]]:
    from tether.storages.local import LocalStorage

    with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp:
        folder = Path(tmp) / "store"
        began = time.perf_counter()
        for index in range(args.objects):
            sub = folder / f"f{index // args.per_folder:05d}"
            if index % args.per_folder == 0:
                sub.mkdir(parents=True)
            (sub / f"img_{index:08d}.jpg").write_bytes(b"x" * (100 + index % 50))
        print(f"wrote {args.objects:,} files in {time.perf_counter() - began:.1f} s")
        yield LocalStorage(path=str(folder), document_root=tmp), lambda: scandir_walk(folder)


# -- redis ----------------------------------------------------------------------------------


@contextmanager
def redis_store(args: argparse.Namespace) -> Iterator[tuple[object, Callable[[], int]]]:
    from tether.storages.redis import SCAN_COUNT, RedisStorage

    with redis_server() as port:
        storage = RedisStorage(port=port, path="tasks/")
        client = storage._client  # the same client for the raw SCAN
        began = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for index in range(args.objects):
            value = b'{"data": {"image": "s3://bucket/img_%08d.jpg"}}' % index
            pipe.set(f"tasks/{index:08d}.json", value)
            if index % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()
        print(f"wrote {args.objects:,} keys in {time.perf_counter() - began:.1f} s")

        def raw_scan() -> int:
            return sum(1 for _ in client.scan_iter(match=b"tasks/*", count=SCAN_COUNT))

        yield storage, raw_scan
        storage.close()


if __name__ == "__main__":
    main()
