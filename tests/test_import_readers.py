"""Reading import files never drops rows: classes of input for detection (long first lines in
every container, every JSON scalar, each forced format against each content), for breaks in
a file (bytes that are not UTF-8 at many positions, in every container), for numbers JSON
cannot hold, and for the rules decided once (a key given twice, a task without data, NUL).

Expected counts are worked out from how each file is built, never from what tether read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Tenant
from tether.catalog import manifests
from tether.catalog.metadata_schema import RESERVED, Schema
from tether.catalog.rows import RowError, normalize
from tether.imports import jsonscan, readers, sniff
from tether.imports.readers import Item

SCHEMA = Schema(list(RESERVED))
KIB = 1024
LONG = 200 * KIB  # longer than any sample or block a reader takes at once
CONTAINERS = ("json", "ndjson", "csv", "tsv", "txt")
EXTENSIONS = {"json": ".json", "ndjson": ".ndjson", "csv": ".csv", "tsv": ".tsv", "txt": ".txt"}


def write(tmp_path: Path, data: bytes, name: str = "upload") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_as_job(
    tmp_path: Path, data: bytes, filename: str | None = None, format: str | None = None
) -> tuple[str, list[Item]]:
    """What an import job reads: the forced container, else the detected one, and its items."""
    path = write(tmp_path, data)
    container, flavor = sniff.parse_format(format)
    container = container or sniff.detect(path, filename)
    return container, list(readers.read(path, container, frozenset(), flavor))


def good(items: list[Item]) -> list[dict[str, Any]]:
    return [i.value for i in items if i.value is not None]


def bad(items: list[Item]) -> list[Item]:
    return [i for i in items if i.error is not None]


# --- files of N rows in each container --------------------------------------------------------


def urls(n: int, width: int = 0) -> list[str]:
    return [f"s3://bucket/{i:07d}{'x' * width}.jpg" for i in range(n)]


def file_of(container: str, rows: list[str], first: str | None = None) -> bytes:
    """N rows (a URL each) in a container; ``first`` replaces the first row's URL."""
    if first is not None:
        rows = [first, *rows[1:]]
    if container == "json":
        return b"[\n" + b",\n".join(orjson.dumps({"row_data": r}) for r in rows) + b"\n]\n"
    if container == "ndjson":
        return b"".join(orjson.dumps({"row_data": r}) + b"\n" for r in rows)
    if container in ("csv", "tsv"):
        sep = "," if container == "csv" else "\t"
        return (
            f"row_data{sep}global_key\n".encode()
            + "".join(f"{r}{sep}k-{i}\n" for i, r in enumerate(rows)).encode()
        )
    return "".join(r + "\n" for r in rows).encode()


# --- detection: long first lines --------------------------------------------------------------


DEEP = b'{"row_data": "s3://b/0.jpg", "deep": %s}'


class TestLongFirstLines:
    """A first line longer than any sample is still read whole, in every container."""

    @pytest.mark.parametrize("container", CONTAINERS)
    @pytest.mark.parametrize("named", [False, True])
    def test_a_long_first_row(self, tmp_path: Path, container: str, named: bool) -> None:
        rows = urls(1000)
        long_url = "s3://bucket/" + "a" * LONG + ".jpg"
        data = file_of(container, rows, first=long_url)
        name = "rows" + EXTENSIONS[container] if named else None
        found, items = read_as_job(tmp_path, data, name)
        assert found == container
        assert len(good(items)) == 1000 and not bad(items)
        assert good(items)[0]["row_data"] == long_url

    @pytest.mark.parametrize("container", ["csv", "tsv"])
    def test_a_long_header(self, tmp_path: Path, container: str) -> None:
        sep = "," if container == "csv" else "\t"
        header = sep.join(["text", "n" * LONG])
        data = (header + "\n" + "".join(f"t{i}{sep}{i}\n" for i in range(500))).encode()
        found, items = read_as_job(tmp_path, data)
        assert found == container
        assert [i.value["row_data"]["text"] for i in items if i.value] == [
            f"t{i}" for i in range(500)
        ]

    @pytest.mark.parametrize(
        "first",
        [
            {"row_data": "s3://b/0.jpg", "note": "n" * LONG},
            {"row_data": "s3://b/0.jpg", "many": list(range(LONG // 4))},
        ],
        ids=["long-string", "long-list"],
    )
    def test_ndjson_whose_first_line_is_long(self, tmp_path: Path, first: Any) -> None:
        lines = [orjson.dumps(first)] + [orjson.dumps({"row_data": u}) for u in urls(1000)[1:]]
        data = b"\n".join(lines) + b"\n"
        assert len(lines[0]) > 64 * KIB
        found, items = read_as_job(tmp_path, data)
        assert found == "ndjson"
        assert len(good(items)) == 1000

    @pytest.mark.parametrize(
        ("first_line", "code"),
        [
            (b'{"row_data": "s3://b/0.jpg", "note": "\\ud800 alone"}', "invalid_value"),
            (DEEP % (b"[" * 3000 + b"]" * 3000), "invalid_value"),
            (DEEP % (b"[" * 200 + b"]" * 200), None),
            (b'{"row_data": "s3://b/0.jpg", "n": 1e400}', "invalid_value"),
            (b'{"row_data": "s3://b/0.jpg", ', "malformed_json"),
        ],
        ids=["lone-surrogate", "deeper-than-orjson", "deep", "1e400", "broken"],
    )
    @pytest.mark.parametrize("filename", [None, "rows.ndjson", "rows.jsonl", "rows.json"])
    def test_ndjson_whose_first_line_is_awkward(
        self, tmp_path: Path, first_line: bytes, code: str | None, filename: str | None
    ) -> None:
        rest = [orjson.dumps({"row_data": u}) for u in urls(1000)[1:]]
        data = b"\n".join([first_line, *rest]) + b"\n"
        found, items = read_as_job(tmp_path, data, filename)
        assert found == "ndjson"
        assert len(items) == 1000
        assert len(good(items)) == (999 if code else 1000)
        if code:
            assert items[0].error is not None and items[0].error.code == code
            assert items[0].error.message.startswith("line 1: ")

    def test_a_pretty_printed_object_is_json_not_ndjson(self, tmp_path: Path) -> None:
        task = {"data": {"text": "x" * LONG, "inner": {"a": 1}}, "annotations": []}
        found, items = read_as_job(tmp_path, json.dumps(task, indent=2).encode())
        assert found == "json"
        assert good(items) == [{"row_data": task["data"], "extra": {"annotations": []}}]

    def test_pretty_printed_objects_one_after_another(self, tmp_path: Path) -> None:
        tasks = [{"data": {"text": f"t{i}"}} for i in range(50)]
        data = "\n".join(json.dumps(t, indent=2) for t in tasks).encode()
        found, items = read_as_job(tmp_path, data, "tasks.json")
        assert found == "json"
        assert [i.value["row_data"] for i in items if i.value] == [t["data"] for t in tasks]

    def test_a_long_run_of_leading_blank_lines(self, tmp_path: Path) -> None:
        data = b"\r\n" * (100 * KIB) + file_of("ndjson", urls(10))
        found, items = read_as_job(tmp_path, data)
        assert found == "ndjson" and len(good(items)) == 10
        with pytest.raises(sniff.FileError, match="empty"):
            sniff.detect(write(tmp_path, b" \n" * (100 * KIB)))


# --- detection: a bare JSON scalar ------------------------------------------------------------

SCALARS = [b"42", b"-1.5", b"0", b"1e400", b"null", b"true", b"false", b'"s3://b/x.jpg"', b'"hi"']


class TestJsonScalars:
    """A file that is one JSON scalar holds no rows: a clear error, never a text list."""

    @pytest.mark.parametrize("scalar", SCALARS)
    @pytest.mark.parametrize("filename", [None, "x.json", "x.ndjson", "x.jsonl", "x.dat"])
    @pytest.mark.parametrize("around", [b"%s", b"\xef\xbb\xbf %s\r\n", b"\n\n%s\n\n"])
    def test_detection_refuses_it(
        self, tmp_path: Path, scalar: bytes, filename: str | None, around: bytes
    ) -> None:
        path = write(tmp_path, around % scalar)
        with pytest.raises(sniff.Unsure, match="single JSON"):
            sniff.detect(path, filename)

    @pytest.mark.parametrize("scalar", SCALARS)
    @pytest.mark.parametrize("format", ["json", "ndjson"])
    def test_forcing_json_refuses_it(self, tmp_path: Path, scalar: bytes, format: str) -> None:
        with pytest.raises(sniff.FileError, match="single JSON"):
            read_as_job(tmp_path, scalar + b"\n", format=format)

    @pytest.mark.parametrize("scalar", SCALARS)
    def test_named_or_forced_as_text_it_is_a_line(self, tmp_path: Path, scalar: bytes) -> None:
        for filename, format in (("x.txt", None), (None, "txt")):
            found, items = read_as_job(tmp_path, scalar + b"\n", filename, format)
            assert found == "txt"
            assert good(items) == [{"row_data": scalar.decode()}]

    @pytest.mark.parametrize("scalar", [b"42", b"null", b'"s3://b/x.jpg"'])
    def test_an_import_of_it_fails_clearly(self, tenant: Tenant, scalar: bytes) -> None:
        ds = tenant.dataset()
        job = tenant.import_rows(ds["id"], scalar, filename="rows.json")
        assert job["status"] == "failed", job
        assert "single JSON" in job["message"]
        rows = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
        assert rows == []


# --- forced formats against each content -----------------------------------------------------

CONTENTS: dict[str, bytes] = {
    "json-array": b'[{"row_data": "s3://b/1.jpg"}, {"row_data": "s3://b/2.jpg"}]',
    "json-array-pretty": b'[\n  {"row_data": "s3://b/1.jpg"},\n  {"row_data": "s3://b/2.jpg"}\n]',
    "json-object": b'{\n  "data": {"text": "one"},\n  "annotations": []\n}',
    "ndjson": b'{"row_data": "s3://b/1.jpg"}\n{"row_data": "s3://b/2.jpg"}\n',
    "csv": b"row_data,global_key\ns3://b/1.jpg,a\ns3://b/2.jpg,b\n",
    "tsv": b"row_data\tglobal_key\ns3://b/1.jpg\ta\ns3://b/2.jpg\tb\n",
    "txt": b"s3://b/1.jpg\ns3://b/2.jpg\n",
    "scalar": b"42\n",
}
# content -> the forced formats that fit it, and the rows each reads (the rest must fail)
FITS: dict[str, dict[str, int]] = {
    "json-array": {"json": 2},
    "json-array-pretty": {"json": 2},
    "json-object": {"json": 1},
    "ndjson": {"json": 2, "ndjson": 2},
    "csv": {"csv": 2, "txt": 3},
    "tsv": {"tsv": 2, "txt": 3},
    "txt": {"csv": 2, "tsv": 2, "txt": 2},
    "scalar": {"csv": 0, "tsv": 0, "txt": 1},  # a CSV of one line is its header
}


class TestForcedFormats:
    @pytest.mark.parametrize("content", CONTENTS)
    @pytest.mark.parametrize("format", CONTAINERS)
    def test_each_format_against_each_content(
        self, tmp_path: Path, content: str, format: str
    ) -> None:
        data = CONTENTS[content]
        if format in FITS[content]:
            _found, items = read_as_job(tmp_path, data, format=format)
            assert len(items) == FITS[content][format] and not bad(items)
        else:
            with pytest.raises(sniff.FileError) as info:
                read_as_job(tmp_path, data, format=format)
            message = str(info.value)
            assert f"format={format} does not fit" in message or "single JSON" in message

    @pytest.mark.parametrize("content", CONTENTS)
    def test_detection_reads_every_row(self, tmp_path: Path, content: str) -> None:
        if content == "scalar":
            return  # TestJsonScalars
        found, items = read_as_job(tmp_path, CONTENTS[content])
        assert found in FITS[content]
        assert len(good(items)) == min(n for n in FITS[content].values() if n)

    @pytest.mark.parametrize(
        ("content", "format"),
        [("json-array", "csv"), ("ndjson", "txt"), ("csv", "json"), ("txt", "ndjson")],
    )
    def test_a_forced_format_that_does_not_fit_fails_the_job(
        self, tenant: Tenant, content: str, format: str
    ) -> None:
        ds = tenant.dataset()
        job = tenant.import_rows(ds["id"], CONTENTS[content], format=format)
        assert job["status"] == "failed", job
        assert f"format={format} does not fit" in job["message"]


class TestNameAndContent:
    @pytest.mark.parametrize(
        ("data", "filename", "expected"),
        [
            (CONTENTS["ndjson"], "rows.json", "ndjson"),  # objects a line named .json
            (CONTENTS["json-array"], "rows.ndjson", "json"),  # the content allows one reading
            (CONTENTS["json-object"], "task.jsonl", "json"),
            (b"text\tnote, more\nhi\t1, 2\n", "notes.csv", "csv"),  # the name picks
            (b"text\tnote, more\nhi\t1, 2\n", None, "tsv"),
            (b"[not json, but named csv]\n", "odd.csv", "csv"),
            (b"{name},n\nx,1\n", "braces.csv", "csv"),
            (b"[]", None, "json"),
            (b" [ ]\n", "empty.ndjson", "json"),
        ],
    )
    def test_the_name_picks_among_what_the_content_allows(
        self, tmp_path: Path, data: bytes, filename: str | None, expected: str
    ) -> None:
        assert sniff.detect(write(tmp_path, data), filename) == expected

    @pytest.mark.parametrize(
        ("data", "filename"),
        [
            (CONTENTS["csv"], "rows.json"),
            (CONTENTS["txt"], "rows.ndjson"),
            (b'{"row_data": "s3://b/1.jpg", \n"oops"\n', None),  # broken, nothing after
        ],
    )
    def test_an_unsure_sniff_says_so(
        self, tmp_path: Path, data: bytes, filename: str | None
    ) -> None:
        with pytest.raises(sniff.Unsure, match="pass format="):
            sniff.detect(write(tmp_path, data), filename)

    def test_an_unsure_import_fails_asking_for_format(self, tenant: Tenant) -> None:
        ds = tenant.dataset()
        job = tenant.import_rows(ds["id"], CONTENTS["csv"], filename="rows.json")
        assert job["status"] == "failed", job
        assert "pass format=" in job["message"]
        job = tenant.import_rows(ds["id"], CONTENTS["csv"], filename="rows.json", format="csv")
        assert job["counts"]["created"] == 2


# --- breaks: bytes that are not UTF-8 ---------------------------------------------------------

N_ROWS = 20_000


def _positions(data: bytes, container: str) -> dict[str, int]:
    """Byte offsets to break at: the first row, around 64 KiB and the 1 MiB block, the end."""
    first_row = data.index(b"s3://") + 6
    if container == "csv" or container == "tsv":
        first_row = data.index(b"\n") + 7
    last_row = data.rindex(b"s3://") + 6
    out = {"first-row": first_row, "last-row": last_row}
    for name, at in (("64KiB", 64 * KIB), ("block", jsonscan.BLOCK)):
        for delta in (-1, 0, 1):
            out[f"{name}{delta:+d}"] = at + delta
    return out


def _broken(data: bytes, at: int) -> tuple[bytes, int]:
    """The data with a non-UTF-8 byte put over the character at ``at`` (or the next one that
    is no quote, comma, bracket or line end, so the structure stays whole), and its line."""
    while at < len(data) - 1 and data[at : at + 1] in b'\n\r,\t"{}[]: ':
        at += 1
    return data[:at] + b"\xff" + data[at + 1 :], data.count(b"\n", 0, at) + 1


class TestBadBytes:
    """One byte that is not UTF-8 costs its own row, wherever it is, in every container."""

    @pytest.mark.parametrize("container", CONTAINERS)
    @pytest.mark.parametrize(
        "where",
        ["first-row", "64KiB-1", "64KiB+0", "64KiB+1", "block-1", "block+0", "block+1", "last-row"],
    )
    def test_a_bad_byte(self, tmp_path: Path, container: str, where: str) -> None:
        data = file_of(container, urls(N_ROWS, width=40))
        assert len(data) > jsonscan.BLOCK + 1000
        broken, line = _broken(data, _positions(data, container)[where])
        found, items = read_as_job(tmp_path, broken, "rows" + EXTENSIONS[container])
        assert found == container
        assert len(items) == N_ROWS
        assert len(good(items)) == N_ROWS - 1
        [error] = bad(items)
        assert error.error is not None
        assert "not UTF-8" in error.error.message and "0xff" in error.error.message
        assert error.error.message.startswith(f"line {line}:")
        assert sniff.detect(write(tmp_path, broken)) == container  # without a name too

    @pytest.mark.parametrize("container", CONTAINERS)
    def test_many_bad_bytes(self, tmp_path: Path, container: str) -> None:
        data = file_of(container, urls(5000, width=40))
        lines = set()
        for at in range(1000, len(data) - 1000, 7919):
            data, line = _broken(data, at)
            lines.add(line)
        found, items = read_as_job(tmp_path, data)
        assert found == container
        assert len(good(items)) == 5000 - len(lines)
        assert {int(i.error.message.split(":")[0][5:]) for i in bad(items) if i.error} == lines

    @pytest.mark.parametrize("container", ["csv", "tsv"])
    def test_a_bad_byte_in_the_header_is_a_file_error(self, tmp_path: Path, container: str) -> None:
        data = file_of(container, urls(10)).replace(b"global_key", b"global_k\xffy", 1)
        with pytest.raises(sniff.FileError, match="first line of the file is not UTF-8"):
            read_as_job(tmp_path, data, format=container)

    def test_counts_see_past_bad_bytes(self, tmp_path: Path) -> None:
        data, _line = _broken(file_of("csv", urls(N_ROWS)), 70 * KIB)
        assert readers.count_items(write(tmp_path, data), "csv") == N_ROWS

    def test_a_file_with_no_utf8_line_is_refused(self, tmp_path: Path) -> None:
        latin1 = "image,caption\ns3://b/caf\xe9.jpg,K\xe4se\n".encode("latin-1")
        latin1 = latin1.replace(b"image,caption", b"im\xe4ge,caption")
        with pytest.raises(sniff.FileError, match="not UTF-8"):
            sniff.detect(write(tmp_path, latin1[latin1.index(b"\n") + 1 :]))

    def test_an_import_keeps_every_good_row(self, tenant: Tenant) -> None:
        ds = tenant.dataset()
        data, line = _broken(file_of("csv", urls(3000, width=40)), 64 * KIB)
        job = tenant.import_rows(ds["id"], data, filename="rows.csv")
        assert job["counts"] == {"created": 2999, "updated": 0, "failed": 1}
        [error] = tenant.errors(job["id"])
        assert error["message"].startswith(f"line {line}:")


class TestCsvBreaks:
    def test_reading_goes_on_after_a_csv_error(self, tmp_path: Path) -> None:
        big = "x" * (64 * 1024 * 1024 + 10)
        data = f"row_data,note\ns3://b/1.jpg,a\ns3://b/2.jpg,{big}\ns3://b/3.jpg,c\n".encode()
        _found, items = read_as_job(tmp_path, data, "rows.csv")
        assert [i.value["row_data"] for i in items if i.value] == ["s3://b/1.jpg", "s3://b/3.jpg"]
        assert len(bad(items)) == 1

    def test_lone_cr_line_ends(self, tmp_path: Path) -> None:
        for container in ("csv", "txt", "ndjson"):
            data = file_of(container, urls(5)).replace(b"\n", b"\r")
            found, items = read_as_job(tmp_path, data, "rows" + EXTENSIONS[container])
            assert found == container
            assert [i["row_data"] for i in good(items)] == urls(5)


# --- numbers JSON cannot hold -----------------------------------------------------------------

NOT_HELD = [
    b"1e400",
    b"-1e400",
    b"1" + b"0" * 30,
    b"-" + b"9" * 25,
    str(2**64).encode(),
    str(-(2**63) - 1).encode(),
    b"NaN",
    b"Infinity",
    b"-Infinity",
]
HELD = [str(2**64 - 1).encode(), str(-(2**63)).encode(), b"1.7e308", b"123456789012345678.5"]


def _json_files(middle: bytes) -> dict[str, bytes]:
    """Three good rows and, second, one holding ``middle``: as an array, NDJSON, objects."""
    rows = [
        b'{"row_data": "s3://b/1.jpg"}',
        b'{"row_data": "s3://b/2.jpg", "media_attributes": {"size": ' + middle + b"}}",
        b'{"row_data": "s3://b/3.jpg", "note": [1, ' + middle + b"]}",
        b'{"row_data": "s3://b/4.jpg"}',
    ]
    return {
        "json": b"[" + b",\n".join(rows) + b"]",
        "ndjson": b"\n".join(rows),
        "objects": b"\n\n".join(rows).replace(b'{"row_data"', b'{\n "row_data"'),
    }


class TestNumbers:
    @pytest.mark.parametrize("number", NOT_HELD)
    @pytest.mark.parametrize("shape", ["json", "ndjson", "objects"])
    def test_a_number_json_cannot_hold_is_one_items_error(
        self, tmp_path: Path, number: bytes, shape: str
    ) -> None:
        _found, items = read_as_job(tmp_path, _json_files(number)[shape], "rows.json")
        assert [i["row_data"] for i in good(items)] == ["s3://b/1.jpg", "s3://b/4.jpg"]
        assert [(i.index, i.error.code) for i in bad(items) if i.error] == [
            (1, "invalid_value"),
            (2, "invalid_value"),
        ]
        assert all(number.lstrip(b"-")[:10].decode() in str(i.error) for i in bad(items))

    @pytest.mark.parametrize("number", HELD)
    def test_numbers_at_the_edges_are_kept_exactly(self, tmp_path: Path, number: bytes) -> None:
        _found, items = read_as_job(tmp_path, _json_files(number)["json"], "rows.json")
        assert not bad(items)
        stored = normalize(good(items)[2], SCHEMA)
        assert orjson.loads(stored.extra or "")["note"][1] == json.loads(number)

    def test_an_import_keeps_the_rows_after_it(self, tenant: Tenant) -> None:
        ds = tenant.dataset()
        job = tenant.import_rows(ds["id"], _json_files(b"1e400")["json"])
        assert job["counts"] == {"created": 2, "updated": 0, "failed": 2}


class TestJsonArrayBreaks:
    @pytest.mark.parametrize(
        ("tail", "words"),
        [
            (b'{"row_data": "s3://b/x.jpg"]', "unexpected ']'"),
            (b'{"row_data": "s3://b/x.jpg\n}]', "not closed"),
            (b'{"row_data": "s3://b/x.jpg"', "ends inside the array"),
            (b'{"row_data": "s3://b/x.jpg"}]]', "more follows"),
        ],
    )
    def test_a_broken_structure_keeps_everything_before_and_says_where(
        self, tmp_path: Path, tail: bytes, words: str
    ) -> None:
        head = b"[\n" + b",\n".join(orjson.dumps({"row_data": u}) for u in urls(3000)) + b",\n"
        _found, items = read_as_job(tmp_path, head + tail, "rows.json")
        assert len(good(items)) == 3000 + (tail.endswith(b"]]"))
        [error] = bad(items)
        assert error.error is not None and error.error.code == "malformed_file"
        assert words in error.error.message
        assert "line 3002" in error.error.message

    @pytest.mark.parametrize(
        "item",
        [b"{oops}", b'{"a" 1}', b"{,}", b'{"row_data": tru}', b"[1,]", b"", b'{"a": "\t"}'],
    )
    def test_an_item_that_does_not_parse_is_its_own_error(
        self, tmp_path: Path, item: bytes
    ) -> None:
        data = b'[{"row_data": "s3://b/1.jpg"}, ' + item + b', {"row_data": "s3://b/2.jpg"}]'
        _found, items = read_as_job(tmp_path, data, "rows.json")
        assert [i["row_data"] for i in good(items)] == ["s3://b/1.jpg", "s3://b/2.jpg"]
        assert [i.index for i in bad(items)] == [1]

    def test_a_trailing_comma_is_no_item(self, tmp_path: Path) -> None:
        _found, items = read_as_job(tmp_path, b'[{"row_data": "s3://b/1.jpg"},\n]', "x.json")
        assert len(items) == 1 and not bad(items)


# --- rules decided once -----------------------------------------------------------------------

TWICE = [
    (b'{"row_data": "s3://b/1.jpg", "global_key": "a", "global_key": "b"}', "global_key"),
    (b'{"row_data": {"text": "x", "text": "y"}}', "text"),
    (b'{"row_data": "s3://b/1.jpg", "metadata_fields": [{"name": "a", "name": "b"}]}', "name"),
    (b'{"data": {"image": "s3://b/1.jpg", "image" : "s3://b/2.jpg"}}', "image"),
    (b'{"data": {"q": 1, "\\u0071": 2}}', "q"),
    (b'{"data": {"q": 1, "q" :\t2}}', "q"),
    (b'{"data": {"url": "s3://a", "note": "\\u003a", "url": "s3://b"}}', "url"),
]
ONCE = [
    b'{"row_data": "s3://b/1.jpg", "note": "a\\":b", "t": "12:00"}',
    b'{"data": {"a:b": "c:d", "nested": {"a:b": 1}}}',
    b'{"data": {"text": "x"}, "annotations": [{"result": [{"value": {"text": "x"}}]}]}',
    b'{"data": {"q": "\\u0071"}}',
]


class TestKeyGivenTwice:
    @pytest.mark.parametrize(("line", "key"), TWICE)
    @pytest.mark.parametrize("shape", ["ndjson", "json"])
    def test_a_key_given_twice_is_an_item_error_naming_it(
        self, tmp_path: Path, line: bytes, key: str, shape: str
    ) -> None:
        ok = b'{"row_data": "s3://b/ok.jpg"}'
        data = ok + b"\n" + line + b"\n" + ok
        if shape == "json":
            data = b"[" + data.replace(b"\n", b",\n") + b"]"
        _found, items = read_as_job(tmp_path, data, f"rows.{shape}")
        assert len(good(items)) == 2
        [error] = bad(items)
        assert error.error is not None and error.error.code == "duplicate_key"
        assert f"key {key!r} twice" in error.error.message

    @pytest.mark.parametrize("line", ONCE)
    def test_colons_and_escapes_are_no_false_alarm(self, line: bytes) -> None:
        assert manifests.loads(line) == json.loads(line)

    def test_a_csv_header_naming_a_column_twice(self, tmp_path: Path) -> None:
        _found, items = read_as_job(tmp_path, b"text,text\na,b\n", "x.csv")
        assert [i.error.code for i in bad(items) if i.error] == ["malformed_row"]


class TestTaskWithoutData:
    @pytest.mark.parametrize(
        "task",
        [
            {"annotations": []},
            {"id": 3, "predictions": [{"result": []}], "meta": {}},
            {"data": None, "annotations": []},
            {"data": "s3://b/1.jpg"},
            {"data": [1, 2]},
        ],
    )
    @pytest.mark.parametrize("shape", ["ndjson", "json"])
    def test_it_is_an_item_error(self, tmp_path: Path, task: dict[str, Any], shape: str) -> None:
        tasks = [{"data": {"text": "a"}}, task, {"data": {"text": "b"}}]
        data = b"\n".join(orjson.dumps(t) for t in tasks)
        if shape == "json":
            data = orjson.dumps(tasks)
        _found, items = read_as_job(tmp_path, data, f"tasks.{shape}")
        assert [i["row_data"] for i in good(items)] == [{"text": "a"}, {"text": "b"}]
        [error] = bad(items)
        assert error.error is not None and error.error.code == "missing_row_data"

    def test_a_flat_task_with_annotations_is_still_its_own_data(self) -> None:
        task = {"image": "s3://b/1.jpg", "annotations": []}
        assert manifests.canonical(task) == {"row_data": task}


NUL_ROWS = [
    ({"row_data": "s3://b/a\x00.jpg"}, "row_data"),
    ({"row_data": {"text": "a\x00b"}}, "row_data"),
    ({"row_data": {"te\x00xt": "ab"}}, "row_data"),
    (
        {"row_data": "s3://b/1.jpg", "attachments": [{"type": "TEXT", "value": "\x00"}]},
        "attachments",
    ),
    ({"row_data": "s3://b/1.jpg", "media_attributes": {"note": "\x00"}}, "media_attributes"),
    ({"row_data": "s3://b/1.jpg", "extra": {"annotations": [{"x": "\x00"}]}}, "other keys"),
]


class TestNul:
    @pytest.mark.parametrize(("row", "where"), NUL_ROWS)
    def test_normalize_refuses_it(self, row: dict[str, Any], where: str) -> None:
        with pytest.raises(RowError) as info:
            normalize(row, SCHEMA)
        assert info.value.code == "invalid_value"
        assert "NUL" in info.value.message and where in info.value.message

    def test_a_backslash_before_u0000_is_text(self) -> None:
        stored = normalize({"row_data": {"text": "C:\\u0000 \\\\u0000"}}, SCHEMA)
        assert orjson.loads(stored.row_data) == {"text": "C:\\u0000 \\\\u0000"}

    @pytest.mark.parametrize("container", ["ndjson", "json", "csv", "txt"])
    def test_every_container_refuses_it(self, tmp_path: Path, container: str) -> None:
        rows = urls(3)
        nul = "s3://b/\x00.jpg"
        if container in ("ndjson", "json"):
            data = file_of(container, [rows[0], nul, rows[2]])
        else:
            data = file_of(container, rows).replace(b"0000001", b"\x00", 1)
        _found, items = read_as_job(tmp_path, data, "rows" + EXTENSIONS[container])
        checked = []
        for item in items:
            try:
                checked.append(normalize(item.value or {}, SCHEMA) and None)
            except RowError as exc:
                checked.append(exc.code)
        assert checked == [None, "invalid_value", None]

    def test_import_and_patch_refuse_it_alike(self, tenant: Tenant) -> None:
        ds = tenant.dataset()
        body = orjson.dumps([{"row_data": "s3://b/1.jpg"}, {"row_data": {"text": "a\x00b"}}])
        job = tenant.import_rows(ds["id"], body)
        assert job["counts"] == {"created": 1, "updated": 0, "failed": 1}
        [error] = tenant.errors(job["id"])
        assert error["code"] == "invalid_value" and "NUL" in error["message"]
        [row] = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
        r = tenant.patch(f"/data-rows/{row['id']}", json={"row_data": {"text": "a\x00b"}})
        assert r.status_code == 422
        assert "NUL" in r.json()["error"]["message"]
