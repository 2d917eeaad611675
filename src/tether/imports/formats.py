"""The names import modules had before ``formats`` was split, kept for the modules that still
import them (``api/uploads.py``, ``api/routes/datasets.py``, ``imports/runner.py``).

New code imports ``imports.sniff`` (containers, ``format=``), ``imports.readers`` (reading
items) and ``catalog.manifests`` (Labelbox rows and Label Studio tasks).
"""

from __future__ import annotations

from pathlib import Path

from tether.catalog.manifests import FLAVORS, canonical
from tether.imports import sniff
from tether.imports.readers import Item, count_items, read
from tether.imports.sniff import CONTAINERS, CONTAINERS_ONLY, FileError, parse_format

__all__ = [
    "CONTAINERS",
    "CONTAINERS_ONLY",
    "FLAVORS",
    "FileError",
    "Item",
    "canonical",
    "count_items",
    "detect",
    "parse_format",
    "read",
]


def detect(path: Path, filename: str | None = None) -> str | None:
    """For the upload's first check: ``FileError`` for a file no reading can take (empty,
    UTF-16, not UTF-8); the container when content and name decide it; None when only the
    user's ``format=`` can (the job then reads the format given, or fails asking for one)."""
    try:
        return sniff.detect(path, filename)
    except sniff.Unsure:
        return None
