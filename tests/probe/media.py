"""Small real media files, made here: images by Pillow, WAV by ``wave``, MP4 by PyAV's
encoder, PDF by pypdf. Each comes with the attributes it was made with."""

from __future__ import annotations

import io
import os
import wave
from typing import Any


def image(fmt: str, width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 60)).save(out, fmt)
    return out.getvalue()


def wav(seconds: float, rate: int = 8000, noise: bool = False) -> bytes:
    out = io.BytesIO()
    frames = int(seconds * rate)
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(os.urandom(frames * 2) if noise else b"\0\0" * frames)
    return out.getvalue()


def mp4(width: int, height: int, fps: int, frames: int, noise: bool = False) -> bytes:
    """An MPEG-4 video; PyAV writes the ``moov`` box at the end (a probe must seek there)."""
    import av
    from PIL import Image

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if noise:
            stream.bit_rate = 20_000_000
        for i in range(frames):
            pixels = (
                Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
                if noise
                else Image.new("RGB", (width, height), (i % 256, 0, 0))
            )
            for packet in stream.encode(av.VideoFrame.from_image(pixels)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def pdf(pages: int) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(200, 100)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def assets() -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Name -> (bytes, the attributes they were made with)."""
    return {
        "photo.jpg": (image("JPEG", 64, 48), {"width": 64, "height": 48}),
        "shot.png": (image("PNG", 30, 20), {"width": 30, "height": 20}),
        "pic.webp": (image("WEBP", 17, 9), {"width": 17, "height": 9}),
        "clip.mp4": (
            mp4(32, 24, 25, 50),
            {"width": 32, "height": 24, "frameRate": 25.0, "duration": 2.0},
        ),
        "tone.wav": (wav(1.5), {"duration": 1.5}),
        "doc.pdf": (pdf(3), {"pageCount": 3}),
    }
