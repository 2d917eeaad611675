"""COCO, YOLO and Pascal VOC exports of a project, made by Label Studio's own converter
(PyPI ``label-studio-converter``, the ``convert`` extra: ``pip install 'tether[convert]'``).

The converter reads a Label Studio JSON export and the label config; it is given the tasks
tether exports (``export.batches``) in a temporary folder, and what it makes is sent:
- ``coco``: its one ``result.json`` (images, categories, annotations; a box's ``bbox`` in
  pixels from the region's percentages and ``original_width``/``original_height``; polygons
  as ``segmentation``);
- ``yolo``: a zip of ``classes.txt``, ``notes.json`` and ``labels/<image name>.txt`` (class,
  then the box's center and size as fractions of the image, a line a region);
- ``voc``: a zip of ``Annotations/<image name>.xml`` (a box's ``xmin``/``ymin``/``xmax``/
  ``ymax`` in pixels).

It never fetches an image: it runs with its resource download off, and every image value it
is given is made a name that is no local path (so it cannot open a file of the server to
read a size). Sizes come from ``original_width``/``original_height`` in the results, as
Label Studio's editor writes them. The converter's own rules stay, as in Label Studio:
every annotation that is not a skip is one item (a task with two annotations is two images
in COCO); skips and predictions are left out; label files are named after the image's base
name. Tasks whose data lack the image key are left out (``Converted.skipped``). COCO is
built in memory by the converter (one JSON document); YOLO and VOC are written file by file.
The API converts labeled tasks unless asked for others (an image nobody labeled yet is no
image without objects). More in ``docs/project-export.md``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tether.errors import Invalid
from tether.projects.export import ProjectExport

FORMATS = {"coco": "COCO", "yolo": "YOLO", "voc": "VOC"}
INSTALL = "pip install 'tether[convert]'"
READ_CHUNK = 1024 * 1024
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass
class Converted:
    """What a conversion made: ``path`` (a JSON file or a zip) in ``folder`` (removed by
    ``close``), with the file name and media type to send it as."""

    path: Path
    folder: Path
    filename: str
    media_type: str
    tasks: int
    skipped: int = 0
    _closed: bool = field(default=False, repr=False)

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes; the folder goes when they are read (or on ``close``)."""
        try:
            with self.path.open("rb") as f:
                while chunk := f.read(READ_CHUNK):
                    yield chunk
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            shutil.rmtree(self.folder, ignore_errors=True)


def _converter_class() -> Any:
    try:
        from label_studio_converter.converter import Converter
    except ImportError:
        raise Invalid(
            "COCO, YOLO and VOC exports need Label Studio's converter on the server: "
            f"{INSTALL} (the package label-studio-converter)",
            {"field": "format", "install": INSTALL},
            code="converter_not_installed",
        ) from None
    # It logs a warning for every task without annotations: not news in an export.
    logging.getLogger("label_studio_converter").setLevel(logging.ERROR)
    return Converter


def converter(label_config_xml: str, fmt: str) -> Any:
    """Label Studio's converter for the project's config, ``Invalid`` when ``fmt`` is not
    one of ``FORMATS``, when the converter is not installed, or when the config makes
    nothing the format holds (COCO and YOLO need rectangles or polygons on an image, VOC
    rectangles)."""
    if fmt not in FORMATS:
        raise Invalid(f"no converted format {fmt!r}", {"field": "format"})
    made = _converter_class()(label_config_xml, project_dir=None, download_resources=False)
    if FORMATS[fmt] not in made.supported_formats:
        raise Invalid(
            f"the project's label config makes nothing a {FORMATS[fmt]} export holds "
            "(COCO and YOLO: RectangleLabels or PolygonLabels on one Image; VOC: "
            "RectangleLabels)",
            {"field": "format"},
            code="format_unsupported",
        )
    return made


def convert(export: ProjectExport, fmt: str) -> Converted:
    """Run the converter on the export (closed when done) and give back its file."""
    try:
        made = converter(str(export.project["label_config"]), fmt)
        key = made._data_keys[0]
        folder = Path(tempfile.mkdtemp(prefix="tether-convert-"))
    except BaseException:
        export.close()
        raise
    try:
        source = folder / "tasks.json"
        skipped = _write_feed(export, key, source)
        out = folder / "out"
        try:
            made.convert(str(source), str(out), FORMATS[fmt], is_dir=False)
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as exc:
            # Regions are checked against the config, not their values: a polygon
            # without points stops the converter.
            raise Invalid(
                f"Label Studio's converter could not make {FORMATS[fmt]} of the project's "
                f"annotations: {type(exc).__name__}: {exc}",
                {"field": "format"},
                code="conversion_failed",
            ) from None
        source.unlink()
        name = f"project-{export.project['id']}-{fmt}"
        if fmt == "coco":
            return Converted(
                out / "result.json",
                folder,
                f"{name}.json",
                "application/json",
                export.tasks,
                skipped,
            )
        archive = folder / f"{name}.zip"
        _zip(out, archive)
        return Converted(archive, folder, archive.name, "application/zip", export.tasks, skipped)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        export.close()


def _write_feed(export: ProjectExport, key: str, path: Path) -> int:
    """The JSON export the converter reads: tasks whose data hold ``key``, its value made a
    name no local path can be. Returns how many tasks were left out."""
    skipped = 0
    first = True
    with path.open("wb") as f:
        f.write(b"[")
        for items in export.items:
            kept = []
            for task in items:
                data = task["data"]
                if not isinstance(data, dict) or not isinstance(data.get(key), str):
                    skipped += 1
                    continue
                task["data"] = {**data, key: _no_path(data[key])}
                kept.append(orjson.dumps(task))
            if kept:
                f.write((b"\n" if first else b",\n") + b",\n".join(kept))
                first = False
        f.write(b"\n]\n")
    return skipped


def _no_path(value: str) -> str:
    """``value`` as the converter may see it: a URI with a scheme stays (its file name is
    what the converter writes); anything else, which could name a file of the server, gets
    one (``tether:///photos/1.jpg``)."""
    if _SCHEME.match(value):
        return value
    return "tether:///" + value.lstrip("/")


def _zip(folder: Path, archive: Path) -> None:
    """Every file under ``folder`` into ``archive`` (paths relative to it; empty folders,
    such as the converter's unused ``images/``, are left out)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for root, _dirs, files in os.walk(folder):
            for name in sorted(files):
                full = Path(root) / name
                z.write(full, full.relative_to(folder).as_posix())
