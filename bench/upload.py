"""Upload benchmark (issue 14, section 4): files from disk into the managed storage of a real
``tether serve``, beside the physical limit measured in the same run.

    python bench/upload.py --files 2000 --file-kb 20 --big-mb 500

Starts ``tether serve`` on a fresh data dir (SQLite) with an account, then:

- ``tether upload FOLDER`` of ``--files`` small files (objects and rows): files/s, and a
  re-run of the same command (everything already there: the resumable no-op) in seconds;
- one ``--big-mb`` file through ``Client.upload_file``: MB/s beside a raw ``shutil.copyfile``
  of the same file on the same disk (the ratio is what the HTTP hop costs), and the peak
  RSS of the server and of the uploading process.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TETHER = str(Path(sys.executable).parent / "tether")
MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--file-kb", type=int, default=20)
    parser.add_argument("--big-mb", type=int, default=500)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.test_e2e import running_server

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        limit = str((args.big_mb + 1) * MIB)
        with running_server(data, TETHER_MAX_ASSET_BYTES=limit) as server:
            _email, key = server.new_account()
            env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")} | {
                "TETHER_URL": server.url,
                "TETHER_API_KEY": key,
            }
            small_files(root, args, env)
            big_file(root, args, server, key)


def small_files(root: Path, args: argparse.Namespace, env: dict[str, str]) -> None:
    folder = root / "small"
    for i in range(args.files):
        path = folder / f"{i // 1000:03d}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(args.file_kb * 1024))
    command = [TETHER, "upload", str(folder), "--dataset", "bench", "--create"]
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    first = time.perf_counter() - began
    began = time.perf_counter()
    again = subprocess.run(command[:-1], env=env, check=True, capture_output=True, text=True)
    rerun = time.perf_counter() - began
    assert f"0 uploaded, {args.files} already there" in again.stderr, again.stderr
    print(
        f"tether upload, {args.files} files of {args.file_kb} KB: {first:.1f} s "
        f"({args.files / first:.0f} files/s, objects and rows); re-run (all there): "
        f"{rerun:.1f} s ({args.files / rerun:.0f} files/s checked)"
    )


def big_file(root: Path, args: argparse.Namespace, server: object, key: str) -> None:
    from tether import Client

    big = root / "big.bin"
    with big.open("wb") as handle:
        for _ in range(args.big_mb):
            handle.write(os.urandom(MIB))
    size = big.stat().st_size
    began = time.perf_counter()
    shutil.copyfile(big, root / "copy.bin")
    raw = size / (time.perf_counter() - began) / MIB
    (root / "copy.bin").unlink()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with Client(server.url, api_key=key, timeout=120) as sdk:  # type: ignore[attr-defined]
        began = time.perf_counter()
        sdk.upload_file(big, key="bench/big.bin")
        took = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    pid = server.proc.pid  # type: ignore[attr-defined]
    hwm = next(
        int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    rate = size / took / MIB
    print(
        f"upload_file, {args.big_mb} MB: {rate:.0f} MB/s vs raw copy {raw:.0f} MB/s "
        f"(ratio {rate / raw:.2f}); peak RSS server {hwm / MIB:.0f} MB, "
        f"client {after / MIB:.0f} MB (grew {(after - before) / MIB:.0f} MB)"
    )


if __name__ == "__main__":
    main()
