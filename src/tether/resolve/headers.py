"""What an asset's headers say: its MIME type (from its first bytes, ``puremagic``), then by
kind -- images: ``width``/``height`` (``imagesize``: the size in the header, the EXIF rotation
applied as browsers show it; no pixel is decoded); video: ``duration`` (seconds), ``width``,
``height``, ``frameRate``; audio: ``duration`` (PyAV, whose wheels bundle FFmpeg's demuxers:
it reads the container's header and index, not the frames); PDF: ``pageCount`` (``pypdf``:
the trailer, the cross-reference table and the page tree's count). Plus ``size``.

Every parser reads a ``RangedFile``, so only the bytes it asks for are fetched.
"""

from __future__ import annotations

from typing import Any

from tether.resolve.ranged import BudgetExceeded, RangedFile

HEAD = 8192  # bytes the MIME sniffer looks at
# FFmpeg's probe reads this much at most to find its streams (its default is 5 MB).
_AV_OPTIONS = {"probesize": str(256 * 1024)}
_AV_MIMES = ("application/ogg", "application/mp4")


class Unreadable(Exception):
    """The asset's headers cannot be read: ``code`` says how (a per-item error's code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def attributes_of(file: RangedFile) -> dict[str, Any]:
    """The media attributes of the asset ``file`` reads (``Unreadable`` if it cannot)."""
    try:
        mime = sniff(file)
        if mime.startswith("image/"):
            found = _image(file)
        elif mime.startswith(("video/", "audio/")) or mime in _AV_MIMES:
            found = _audio_video(file, video=not mime.startswith("audio/"))
        elif mime == "application/pdf":
            found = _pdf(file)
        else:
            raise Unreadable("unknown_format", f"a {mime} file: not an image, video, audio or PDF")
    except BudgetExceeded as exc:
        raise Unreadable("asset_too_large", str(exc)) from None
    return {**found, "mimeType": mime, "size": file.size}


def sniff(file: RangedFile) -> str:
    import puremagic

    file.seek(0)
    head = file.read(HEAD)
    if not head:
        raise Unreadable("unreadable_asset", "the asset is empty")
    try:
        mime = puremagic.from_string(head, mime=True)
    except puremagic.PureError:
        mime = ""
    if not mime:
        raise Unreadable("unknown_format", "its first bytes match no known media format")
    return str(mime)


def _image(file: RangedFile) -> dict[str, Any]:
    import imagesize

    file.seek(0)
    width, height = imagesize.get(file)
    if width < 0 or height < 0:
        raise Unreadable("unreadable_asset", "the image's header gives no size (truncated?)")
    return {"width": width, "height": height}


def _audio_video(file: RangedFile, video: bool) -> dict[str, Any]:
    import av

    file.seek(0)
    try:
        with av.open(file, options=_AV_OPTIONS) as container:
            found: dict[str, Any] = {}
            duration = _duration(container)
            if duration is not None:
                found["duration"] = duration
            streams = [s for s in container.streams.video if not _is_cover(s)] if video else []
            if streams:
                stream = streams[0]
                found["width"] = stream.codec_context.width
                found["height"] = stream.codec_context.height
                rate = stream.average_rate or stream.guessed_rate
                if rate:
                    found["frameRate"] = round(float(rate), 3)
    except BudgetExceeded:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise Unreadable("unreadable_asset", f"the container cannot be read: {exc}") from None
    if "duration" not in found:
        raise Unreadable("unreadable_asset", "the container gives no duration")
    return found


def _duration(container: Any) -> float | None:
    if container.duration is not None and container.duration > 0:
        return round(container.duration / 1_000_000, 3)  # AV_TIME_BASE units
    for stream in container.streams:
        if stream.duration and stream.time_base:
            return round(float(stream.duration * stream.time_base), 3)
    return None


def _is_cover(stream: Any) -> bool:
    """An MP3's or M4A's cover picture shows as a video stream of one frame."""
    disposition = getattr(stream, "disposition", None)
    return bool(disposition is not None and "attached_pic" in str(disposition).lower())


def _pdf(file: RangedFile) -> dict[str, Any]:
    import pypdf
    from pypdf.errors import PyPdfError

    file.seek(0)
    try:
        reader = pypdf.PdfReader(file)  # type: ignore[arg-type]  # a binary file, as IO wants
        count = len(reader.pages)
    except BudgetExceeded:
        raise
    except (PyPdfError, OSError, ValueError, KeyError, TypeError) as exc:
        raise Unreadable("unreadable_asset", f"the PDF cannot be read: {exc}") from None
    return {"pageCount": count}
