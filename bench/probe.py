"""Media probing on a moto S3 server: how many bytes and requests reading one asset's
headers costs, and its time beside a direct read of the whole object from the same store in
the same run (the physical limit a probe that downloaded assets would have).

    python bench/probe.py [--mb 40]

Assets made here: a JPEG, a WAV and an MP4 of about ``--mb`` MB each (the MP4 with its
``moov`` box at the end, as PyAV writes it), written to a fresh bucket.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

from _common import MB, line, moto_bucket, moto_server

from tether.resolve.headers import attributes_of
from tether.resolve.probe import storage_file
from tether.storages.registry import open_storage


def _mp4(mb: int) -> bytes:
    import av
    from PIL import Image

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.bit_rate = 50_000_000
        while out.tell() < mb * MB:
            image = Image.frombytes("RGB", (320, 240), os.urandom(320 * 240 * 3))
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def _wav(mb: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(os.urandom(mb * MB))
    return out.getvalue()


def _jpeg(mb: int) -> bytes:
    from PIL import Image

    side = int((mb * MB / 3) ** 0.5)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG", quality=100)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=40)
    args = parser.parse_args()
    assets = {"big.jpg": _jpeg(args.mb), "big.wav": _wav(args.mb), "big.mp4": _mp4(args.mb)}
    with tempfile.TemporaryDirectory() as tmp, moto_server(Path(tmp)) as url:
        store = open_storage(
            "s3",
            bucket=moto_bucket(url),
            endpoint_url=url,
            access_key_id="bench",
            secret_access_key="bench",
            max_retries=0,
        )
        for key, data in assets.items():
            store.write(key, data)
        print(f"probe: one asset's headers through S3 (moto), python {sys.version.split()[0]}")
        for key, data in assets.items():
            started = time.perf_counter()
            whole = sum(len(chunk) for chunk in store.read(key))
            direct = time.perf_counter() - started
            started = time.perf_counter()
            file = storage_file(store, key, 16 * MB)
            found = attributes_of(file)
            took = time.perf_counter() - started
            assert whole == len(data)
            shown = {k: v for k, v in found.items() if k not in ("size", "mimeType")}
            line(
                key,
                f"{file.fetched / 1024:.0f} KiB",
                f"{file.requests} reads, {file.fetched / len(data):.2%} of {len(data) / MB:.1f} MB",
            )
            line(
                "",
                f"{took * 1000:.0f} ms",
                f"probe time; reading it whole from the store: {direct * 1000:.0f} ms",
            )
            line("", "", str(shown))


if __name__ == "__main__":
    main()
