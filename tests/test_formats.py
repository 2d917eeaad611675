"""Reading import files and validating rows, without a database: containers, Labelbox rows
vs Label Studio tasks, CSV/TSV/TXT details, media types and the per-row checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tether.catalog import manifests
from tether.catalog.manifests import canonical
from tether.catalog.media import infer_for_task
from tether.catalog.metadata_schema import RESERVED, Schema
from tether.catalog.rows import NormalRow, RowError, normalize
from tether.imports import readers, sniff
from tether.imports.readers import Item, read
from tether.imports.sniff import FileError, detect, parse_format

MANIFESTS = Path(__file__).parent / "fixtures" / "manifests"
SCHEMA = Schema(list(RESERVED))
BOM = b"\xef\xbb\xbf"

TAG_ID = "cko8s9r5v0001h2dk9elqdidh"
SPLIT_ID = "cko8sbczn0002h2dkdaxb5kal"
TRAIN_ID, VALID_ID, TEST_ID = (
    "cko8sbscr0003h2dk04w86hof",
    "cko8sc2yr0004h2dk69aj5x63",
    "cko8scbz70005h2dkastwhgqt",
)
CAPTURE_ID = "cko8sdzv70006h2dk8jg64zvb"
EMBEDDING_ID = "ckpyije740000yxdk81pbgjdc"


def items_of(
    tmp_path: Path,
    data: bytes,
    container: str,
    flavor: str | None = None,
    field_names: frozenset[str] = frozenset(),
) -> list[Item]:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return list(read(path, container, field_names, flavor))


def values(items: list[Item]) -> list[dict[str, Any] | None]:
    return [i.value for i in items]


def norm(row: dict[str, Any], media_type: str | None = None, read: bool = False) -> NormalRow:
    """Validate a row as a user writes it (``read``: as ``readers`` hands it over)."""
    return normalize(row if read else canonical(row, "labelbox"), SCHEMA, media_type)


def error_of(row: dict[str, Any], media_type: str | None = None) -> RowError:
    with pytest.raises(RowError) as info:
        norm(row, media_type)
    return info.value


# --- the format option -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, (None, None)),
        ("json", ("json", None)),
        ("txt", ("txt", None)),
        ("csv/labelbox", ("csv", "labelbox")),
        ("tsv/label_studio", ("tsv", "label_studio")),
        ("ndjson/label_studio", ("ndjson", "label_studio")),
        ("label_studio", (None, "label_studio")),
        ("labelbox", (None, "labelbox")),
    ],
)
def test_parse_format(given: str | None, expected: tuple[str | None, str | None]) -> None:
    assert parse_format(given) == expected


@pytest.mark.parametrize("given", ["xml", "CSV", "txt/labelbox", "csv/other", "csv/"])
def test_parse_format_refuses_unknown_values(given: str) -> None:
    with pytest.raises(FileError, match="unknown format"):
        parse_format(given)


def test_every_accepted_format_parses() -> None:
    for value in sniff.CONTAINERS:
        container, flavor = parse_format(value)
        assert container in (None, *sniff.CONTAINERS_ONLY)
        assert flavor in (None, *manifests.FLAVORS)
        assert container or flavor


# --- detecting the container -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (BOM + b'[\r\n {"a": 1}\r\n]', None, "json"),
        (b'{"image": "s3://b/a.jpg"}\n{"image": "s3://b/b.jpg"}', None, "ndjson"),
        (b'{\n  "data": {"text": "x"}\n}', None, "json"),
        (BOM + b'{"row_data": "s3://b/a.jpg"}\r\n', "ROWS.JSONL", "ndjson"),
        (b"image,pet\nhttps://x/a.jpg,Dog", "Pets.CSV", "csv"),
        (b"text\tlabel\nhi\t1\n", "Reviews.TSV", "tsv"),
        (b"s3://b/a.jpg\n", "List.TXT", "txt"),
        (b"[not json, but named csv]\n", "odd.csv", "csv"),
        (b"text\tlabel\nhi, there\t1\n", None, "tsv"),
        (b"image,pet\nhttps://x/a.jpg,Dog", None, "csv"),
        (b"s3://b/a.jpg,ext-1\n", None, "csv"),
        (b"gs://b/1 (1).JPG\ngs://b/1 (2).JPG\n", None, "txt"),
        (b"s3://b/fruit,apples.jpg\n", None, "txt"),
    ],
)
def test_detect(tmp_path: Path, data: bytes, filename: str | None, expected: str) -> None:
    path = tmp_path / "upload"
    path.write_bytes(data)
    assert detect(path, filename) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (BOM + b" \r\n\r\n", "empty"),
        ("[1]".encode("utf-16"), "UTF-16"),
        (b"s3://b/\xff.jpg\n", "not UTF-8"),
    ],
)
def test_detect_refuses_unreadable_files(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "upload"
    path.write_bytes(data)
    with pytest.raises(FileError, match=message):
        detect(path, None)


# --- JSON and NDJSON -------------------------------------------------------------------------


def test_json_array_with_bom_and_crlf(tmp_path: Path) -> None:
    data = BOM + b'[\r\n  {"data": {"text": "eins"}},\r\n  {"data": {"text": "zwei"}}\r\n]'
    got = items_of(tmp_path, data, "json")
    assert [i.value["row_data"] for i in got if i.value] == [{"text": "eins"}, {"text": "zwei"}]
    assert [i.index for i in got] == [0, 1]
    assert [i.flavor for i in got] == ["label_studio", "label_studio"]


def test_one_task_object_is_one_task(tmp_path: Path) -> None:
    task = {"data": {"image": "s3://b/a.png", "q": "?"}, "predictions": [{"score": 0.5}]}
    got = items_of(tmp_path, json.dumps(task, indent=2).encode(), "json")
    assert len(got) == 1
    assert got[0].value == {"row_data": task["data"], "extra": {"predictions": [{"score": 0.5}]}}


def test_ndjson_with_bom_crlf_no_trailing_newline_and_a_bad_line(tmp_path: Path) -> None:
    data = BOM + b'{"image": "a.png"}\r\n\r\n{"image": \r\n{"image": "c.png"}'
    got = items_of(tmp_path, data, "ndjson")
    assert [i.index for i in got] == [0, 1, 2]
    assert got[0].value == {"row_data": {"image": "a.png"}}
    assert got[1].error is not None and got[1].error.code == "malformed_json"
    assert "line 3" in got[1].error.message
    assert got[2].value == {"row_data": {"image": "c.png"}}


def test_json_values_keep_their_types(tmp_path: Path) -> None:
    data = {
        "s": "99",
        "n": 99,
        "f": 0.5,
        "z": None,
        "b": False,
        "nested": [[1, 2], {"k": [None, "x"]}],
        "🔑 schlüssel": "wert ✓",
    }
    got = items_of(tmp_path, json.dumps([{"data": data}], ensure_ascii=False).encode(), "json")
    row = got[0].value
    assert row is not None
    assert orjson.loads(norm(row, read=True).row_data) == data
    assert list(orjson.loads(norm(row, read=True).row_data)) == list(data)  # key order too


# --- CSV, TSV and TXT ------------------------------------------------------------------------


def test_csv_follows_rfc_4180(tmp_path: Path) -> None:
    data = (
        BOM + b'image,"caption, long","say ""hi"""\r\n'
        b'https://x/a.jpg,"one, two","line 1\r\nline 2 ""quoted"""\r\n'
        b"https://x/b.jpg,plain,"
    )
    got = items_of(tmp_path, data, "csv")
    assert values(got) == [
        {
            "row_data": {
                "image": "https://x/a.jpg",
                "caption, long": "one, two",
                'say "hi"': 'line 1\r\nline 2 "quoted"',
            }
        },
        {"row_data": {"image": "https://x/b.jpg", "caption, long": "plain", 'say "hi"': ""}},
    ]


def test_tsv_splits_on_tabs_only(tmp_path: Path) -> None:
    data = b'text\tlabel\n"quoted", with comma\t"1"\nsaid "no\t0\n'
    got = items_of(tmp_path, data, "tsv")
    assert values(got) == [
        {"row_data": {"text": '"quoted", with comma', "label": '"1"'}},
        {"row_data": {"text": 'said "no', "label": "0"}},
    ]


def test_tsv_with_a_labelbox_header(tmp_path: Path) -> None:
    data = b'Data URL\tExternal ID\tnote\ns3://b/a b.jpg\t"e-1"\tsays "hi", twice\n'
    got = items_of(tmp_path, data, "tsv")
    assert got[0].flavor == "labelbox"
    assert got[0].value == {
        "row_data": "s3://b/a b.jpg",
        "external_id": '"e-1"',
        "metadata_fields": [],
        "extra": {"note": 'says "hi", twice'},
    }


def test_txt_is_one_uri_a_line_kept_as_written(tmp_path: Path) -> None:
    data = (
        BOM + b"gs://b/1 (1).JPG\r\n\r\n"
        b"https://x/v.mp4?sig=a%2Fb&t=(1)\r\n"
        b"https://t/{z}/{x}/{y}.png\r\ngs://b/folder/"
    )
    got = items_of(tmp_path, data, "txt")
    assert values(got) == [
        {"row_data": "gs://b/1 (1).JPG"},
        {"row_data": "https://x/v.mp4?sig=a%2Fb&t=(1)"},
        {"row_data": "https://t/{z}/{x}/{y}.png"},
        {"row_data": "gs://b/folder/"},
    ]
    assert [i.index for i in got] == [0, 1, 2, 3]


def test_txt_takes_no_flavor(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="one URI a line"):
        items_of(tmp_path, b"s3://b/a.jpg\n", "txt", "label_studio")


def test_csv_header_with_a_labelbox_column_maps_columns_by_name(tmp_path: Path) -> None:
    data = (
        b"EXTERNAL ID,Data URL,split,Metadata///String///tag,notes,Global_Key,id,,media type\n"
        b"e-1,s3://b/a.jpg,train,blau,hallo,g-1,77,,image\n"
    )
    got = items_of(tmp_path, data, "csv", field_names=frozenset({"split", "tag"}))
    assert got[0].flavor == "labelbox"
    assert got[0].value == {
        "external_id": "e-1",
        "row_data": "s3://b/a.jpg",
        "global_key": "g-1",
        "media_type": "image",
        "metadata_fields": [{"name": "split", "value": "train"}, {"name": "tag", "value": "blau"}],
        "extra": {"notes": "hallo", "source_id": "77"},
    }


@pytest.mark.parametrize("url_column", ["row_data", "Data URL", "ROW_DATA", "data url"])
def test_csv_url_column_any_case(tmp_path: Path, url_column: str) -> None:
    data = f"global_key,{url_column}\ng,s3://b/x.png\n".encode()
    got = items_of(tmp_path, data, "csv")
    assert got[0].value is not None
    assert got[0].value["row_data"] == "s3://b/x.png"
    assert got[0].value["global_key"] == "g"


def test_csv_without_url_column_takes_the_first_other_column(tmp_path: Path) -> None:
    data = b"external_id,picture,mood\ne-1,s3://b/a.jpg,ok\n"
    got = items_of(tmp_path, data, "csv")
    assert got[0].value == {
        "external_id": "e-1",
        "row_data": "s3://b/a.jpg",
        "metadata_fields": [],
        "extra": {"mood": "ok"},
    }


def test_csv_field_given_in_two_columns_is_a_row_error(tmp_path: Path) -> None:
    data = b"row_data,global_key,Global Key\ns3://b/a.jpg,g-1,g-2\ns3://b/b.jpg,g-3,\n"
    got = items_of(tmp_path, data, "csv")
    assert got[0].value is None and got[0].error is not None
    assert got[0].error.code == "duplicate_field"
    assert "global_key is given twice" in got[0].error.message
    assert got[1].value is not None and got[1].value["global_key"] == "g-3"


def test_csv_metadata_given_in_two_columns_is_a_row_error(tmp_path: Path) -> None:
    data = b"row_data,split,metadata///enum///split\ns3://b/a.jpg,train,test\n"
    row = items_of(tmp_path, data, "csv", field_names=frozenset({"split"}))[0].value
    assert row is not None
    with pytest.raises(RowError) as info:
        normalize(row, SCHEMA)
    err = info.value
    assert (err.code, err.message) == ("invalid_metadata", "metadata field 'split' is given twice")


def test_headerless_csv_is_positional(tmp_path: Path) -> None:
    data = b"s3://b/a.jpg,ext-1\r\nhttps://x/b (2).png\r\ns3://b/c.gif,ext-3,more, and more"
    got = items_of(tmp_path, data, "csv")
    assert values(got) == [
        {"row_data": "s3://b/a.jpg", "external_id": "ext-1"},
        {"row_data": "https://x/b (2).png"},
        {
            "row_data": "s3://b/c.gif",
            "external_id": "ext-3",
            "extra": {"column_3": "more", "column_4": " and more"},
        },
    ]
    assert {i.flavor for i in got} == {"labelbox"}


def test_label_studio_csv_row_checks(tmp_path: Path) -> None:
    data = b"text,label,\nshort\nok,1,\ntoo,many,cells,here\nx,y,unnamed\n"
    got = items_of(tmp_path, data, "csv")
    assert got[0].value == {"row_data": {"text": "short", "label": ""}}
    assert got[1].value == {"row_data": {"text": "ok", "label": "1"}}
    assert got[2].error is not None and got[2].error.code == "malformed_row"
    assert "4 cells but the header names 3 columns" in got[2].error.message
    assert got[3].error is not None and "does not name" in got[3].error.message


def test_label_studio_csv_header_naming_a_column_twice(tmp_path: Path) -> None:
    got = items_of(tmp_path, b"text,text\na,b\n", "csv")
    assert got[0].value is None and got[0].error is not None
    assert "names column 'text' twice" in got[0].error.message


def test_forced_flavors_on_csv(tmp_path: Path) -> None:
    data = b"image,global_key\ns3://b/a.jpg,g-1\n"
    detected = items_of(tmp_path, data, "csv")
    assert detected[0].flavor == "labelbox"
    assert detected[0].value is not None and detected[0].value["global_key"] == "g-1"
    forced = items_of(tmp_path, data, "csv", "label_studio")
    assert forced[0].flavor == "label_studio"
    assert forced[0].value == {"row_data": {"image": "s3://b/a.jpg", "global_key": "g-1"}}
    plain = b"url,label\ns3://b/a.jpg,cat\n"
    assert items_of(tmp_path, plain, "csv")[0].value == {
        "row_data": {"url": "s3://b/a.jpg", "label": "cat"}
    }
    as_labelbox = items_of(tmp_path, plain, "csv", "labelbox")[0]
    assert as_labelbox.value == {
        "row_data": "s3://b/a.jpg",
        "metadata_fields": [],
        "extra": {"label": "cat"},
    }


def test_forced_label_studio_csv_always_has_a_header(tmp_path: Path) -> None:
    data = b"s3://b/header-cell.jpg,b\ns3://b/a.jpg,1\n"
    assert len(items_of(tmp_path, data, "csv")) == 2  # no header detected
    got = items_of(tmp_path, data, "csv", "label_studio")
    assert values(got) == [{"row_data": {"s3://b/header-cell.jpg": "s3://b/a.jpg", "b": "1"}}]


def test_count_items(tmp_path: Path) -> None:
    path = tmp_path / "u"
    path.write_bytes(BOM + b'text,n\r\n"two\r\nlines",1\r\n\r\nb,2')
    assert readers.count_items(path, "csv") == 2
    path.write_bytes(b"s3://b/a.jpg,1\ns3://b/b.jpg,2\n")
    assert readers.count_items(path, "csv") == 2
    assert readers.count_items(path, "csv", "label_studio") == 1
    path.write_bytes(BOM + b"a\r\n\r\nb")
    assert readers.count_items(path, "txt") == 2


# --- telling Labelbox rows from Label Studio tasks ------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "row_data",
        "global_key",
        "external_id",
        "externalId",
        "metadata_fields",
        "metadata",
        "attachments",
        "media_type",
        "imageUrl",
        "conversationalData",
    ],
)
def test_any_labelbox_key_makes_a_labelbox_row(tmp_path: Path, key: str) -> None:
    row, flavor = manifests.row_of(
        {key: "s3://b/a.jpg" if key == "row_data" else None, "image": "x"}
    )
    assert flavor == "labelbox"
    if key != "row_data":  # a Labelbox row without row_data: a per-row error later
        with pytest.raises(RowError, match="row_data is missing"):
            normalize(row, SCHEMA)


def test_other_objects_are_label_studio_tasks() -> None:
    task = {
        "id": 12,
        "data": {"image": "s3://b/a.jpg", "text": "t", "audio": "s3://b/a.wav"},
        "annotations": [{"id": 1, "result": [], "completed_by": 3, "lead_time": 1.5}],
        "predictions": [{"model_version": "m", "score": 0.2, "result": []}],
        "drafts": [],
        "meta": {"k": "v"},
        "created_at": "2023-01-01T00:00:00Z",
        "updated_at": "2023-01-02T00:00:00Z",
        "created_by": 4,
        "project": 2,
    }
    row, flavor = manifests.row_of(task)
    assert flavor == "label_studio"
    assert row == {
        "row_data": task["data"],
        "extra": {
            "source_id": 12,
            "annotations": task["annotations"],
            "predictions": task["predictions"],
            "drafts": [],
            "meta": {"k": "v"},
            "source_created_at": "2023-01-01T00:00:00Z",
            "source_updated_at": "2023-01-02T00:00:00Z",
            "source_created_by": 4,
            "project": 2,
        },
    }


def test_a_task_with_id_and_source_id_is_a_row_error() -> None:
    with pytest.raises(RowError, match="both id and source_id"):
        canonical({"id": 1, "source_id": 2, "data": {"text": "x"}})


def test_flat_task_is_its_own_data() -> None:
    task = {"image": "s3://b/a.jpg", "id": 5, "score": None}
    assert canonical(task) == {"row_data": task}


def test_forced_flavors_on_json_items() -> None:
    flat = {"image": "s3://b/a.jpg", "metadata": "camera 2"}
    assert canonical(flat)["metadata_fields"] == "camera 2"  # read as Labelbox
    assert canonical(flat, "label_studio") == {"row_data": flat}
    assert canonical({"data": {"text": "x"}}, "labelbox")["row_data"] is None


def test_items_that_are_not_objects() -> None:
    assert canonical("s3://b/a.jpg") == {"row_data": "s3://b/a.jpg"}
    for value, name in ((3, "a number"), (None, "null"), ([1], "a list"), (True, "a boolean")):
        with pytest.raises(RowError) as info:
            manifests.row_of(value)
        assert info.value.code == "malformed_item"
        assert f"not {name}" in info.value.message


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"row_data": "s3://b/a.jpg", "imageUrl": "s3://b/b.jpg"}, "row_data"),
        ({"rowData": "s3://b/a.jpg", "row_data": "s3://b/b.jpg"}, "row_data"),
        ({"row_data": "s3://b/a.jpg", "global_key": "a", "globalKey": "b"}, "global_key"),
        ({"row_data": "s3://b/a.jpg", "external_id": "a", "externalId": "a"}, "external_id"),
        ({"row_data": "s3://b/a.jpg", "media_type": "IMAGE", "mediaType": "IMAGE"}, "media_type"),
        (
            {"row_data": "s3://b/a.jpg", "metadata_fields": [], "metadata": []},
            "metadata_fields",
        ),
    ],
)
def test_a_field_under_two_spellings_is_a_row_error(row: dict[str, Any], field: str) -> None:
    with pytest.raises(RowError) as info:
        canonical(row)
    assert info.value.code == "duplicate_field"
    assert info.value.message.startswith(f"{field} is given twice")


def test_camel_case_and_legacy_labelbox_keys() -> None:
    row = canonical(
        {
            "rowData": "s3://b/a.jpg",
            "globalKey": "g",
            "externalId": "e",
            "mediaType": "image",
            "mediaAttributes": {"width": 3},
            "metadataFields": [{"name": "tag", "value": "t"}],
            "id": 9,
            "created_at": "2020-01-01T00:00:00Z",
            "note 📝": "kept",
        }
    )
    assert row == {
        "row_data": "s3://b/a.jpg",
        "global_key": "g",
        "external_id": "e",
        "media_type": "image",
        "media_attributes": {"width": 3},
        "metadata_fields": [{"name": "tag", "value": "t"}],
        "attachments": None,
        "extra": {"note 📝": "kept"},
    }
    legacy = canonical({"externalId": "old", "imageUrl": "gs://b/Scan (1).TIF"})
    assert (legacy["row_data"], legacy["external_id"]) == ("gs://b/Scan (1).TIF", "old")
    assert norm(legacy, read=True).media_type == "IMAGE"


def test_legacy_conversational_row() -> None:
    messages = [
        {"messageId": "m0", "content": "Hallo 👋", "user": {"userId": "u"}, "canLabel": True}
    ]
    attachments = [{"type": "RAW_TEXT", "value": "Kontext"}]
    row = canonical(
        {
            "externalId": "c-1",
            "type": "application/vnd.labelbox.conversational",
            "version": 1,
            "conversationalData": messages,
            "attachments": attachments,
        }
    )
    assert row["row_data"] == {
        "conversationalData": messages,
        "type": "application/vnd.labelbox.conversational",
        "version": 1,
    }
    stored = norm(row, read=True)
    assert stored.media_type == "CONVERSATIONAL"
    assert stored.external_id == "c-1"
    assert orjson.loads(stored.row_data)["conversationalData"] == messages
    assert orjson.loads(stored.attachments or "[]") == attachments
    bad = canonical({"externalId": "c-2", "conversationalData": "not a list"})
    assert "list of message objects" in error_of(bad).message


# --- media types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row_data", "expected"),
    [
        ("gs://b/1 (1).JPG", "IMAGE"),
        ("s3://b/clip.Mp4?X-Amz-Signature=abc", "VIDEO"),
        ("s3://b/photo #1.jpg", "IMAGE"),  # the raw key of a cloud URI
        ("azure-blob://c/what?.png", "IMAGE"),
        ("gs://b/a#b/c.wav", "AUDIO"),
        ("https://x/a%20b.MP3#t=3", "AUDIO"),
        ("https://x/Bericht.PDF", "PDF"),
        ("azure-blob://c/page.HTML", "HTML"),
        ("images/Kirsche 01.jpeg", "IMAGE"),
        ("s3://b/scan.DCM", "DICOM"),
        ("https://t.example/{z}/{x}/{y}.png", "TMS_GEO"),
        ("Ein Satz, ganz ohne Link.", "TEXT"),
        ("/image1", "TEXT"),
    ],
)
def test_media_type_from_a_uri(row_data: str, expected: str) -> None:
    assert norm({"row_data": row_data}).media_type == expected
    assert orjson.loads(norm({"row_data": row_data}).row_data) == row_data


def test_unknown_extension_needs_a_media_type() -> None:
    err = error_of({"row_data": "gs://b/blob"})
    assert err.code == "invalid_media_type"
    assert "give media_type" in err.message
    assert norm({"row_data": "gs://b/blob", "media_type": "image"}).media_type == "IMAGE"
    assert norm({"row_data": "gs://b/blob"}, "VIDEO").media_type == "VIDEO"


@pytest.mark.parametrize("row_data", ["gs://b/videos/", "s3://b/x/?list=1", "images/"])
def test_a_folder_is_a_row_error(row_data: str) -> None:
    err = error_of({"row_data": row_data})
    assert err.code == "invalid_row_data"
    assert "is a folder" in err.message and repr(row_data) in err.message


def test_a_web_page_ending_in_slash_is_not_a_folder() -> None:
    assert norm({"row_data": "https://example.org/news/", "media_type": "HTML"}).media_type == (
        "HTML"
    )


@pytest.mark.parametrize(
    ("row_data", "given"),
    [
        ({"pdfUrl": "https://x/a.pdf"}, "TEXT"),
        ({"pdf_url": "https://x/a.pdf"}, "IMAGE"),
        ({"tileLayerUrl": "https://t/{z}/{x}/{y}.png"}, "IMAGE"),
        ({"conversationalData": []}, "TEXT"),
        ("s3://b/clip.mp4", "IMAGE"),
        ("s3://b/a.PDF", "TEXT"),
        ("s3://b/a.jpg", "PDF"),
        ("s3://b/notes.txt", "IMAGE"),
        ("https://t/{z}/{x}/{y}.png", "IMAGE"),
    ],
)
def test_a_media_type_contradicting_row_data_is_a_row_error(row_data: Any, given: str) -> None:
    for err in (
        error_of({"row_data": row_data, "media_type": given}),
        error_of({"row_data": row_data}, given),
    ):
        assert err.code == "media_type_mismatch"
        assert f"media_type {given} contradicts row_data" in err.message


@pytest.mark.parametrize(
    ("row_data", "given"),
    [
        ("s3://b/area.tif", "TMS_GEO"),
        ("s3://b/clip.mp4", "AUDIO"),
        ("s3://b/chat.json", "CONVERSATIONAL"),
        ("s3://b/page.html", "TEXT"),
        ("/image1", "IMAGE"),
        ({"image": "s3://b/a.jpg", "text": "t"}, "TEXT"),
        ({"pdf": "s3://b/a.pdf"}, "IMAGE"),
    ],
)
def test_media_types_that_fit(row_data: Any, given: str) -> None:
    assert norm({"row_data": row_data}, given).media_type == given


def test_unknown_media_type() -> None:
    err = error_of({"row_data": "s3://b/a.jpg", "media_type": "PICTURE"})
    assert err.code == "invalid_media_type" and "PICTURE" in err.message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"text": "t", "image": "s3://b/a.JPG", "audio": "s3://b/a.wav"}, "IMAGE"),
        ({"caption": "t", "clip": "https://x/v.webm?sig=1"}, "VIDEO"),
        ({"text": "t", "image": "/image1"}, "IMAGE"),
        ({"Audio": "/a1"}, "AUDIO"),
        ({"dialogue": [{"author": "a", "text": "b"}]}, "CONVERSATIONAL"),
        ({"html": "<b>x</b>"}, "HTML"),
        ({"pdf": "/docs/1"}, "PDF"),
        ({"text": "t", "lang": "de", "reviewer": None}, "TEXT"),
        ({"sentence": "Nur Text."}, "TEXT"),
        ({"uri": "spotify:work:1", "writers": [{"name": "x"}]}, "JSON"),
        ({"n": 3}, "JSON"),
        ({"link": "https://x/page"}, "JSON"),
    ],
)
def test_media_type_of_a_task(data: dict[str, Any], expected: str) -> None:
    assert infer_for_task(data) == expected
    assert norm({"row_data": data}).media_type == expected


# --- composite row_data in both spellings -----------------------------------------------------

PDF_CAMEL = {"pdfUrl": "https://x/a.pdf", "textLayerUrl": "https://x/a.json"}
PDF_SNAKE = {"pdf_url": "https://x/a.pdf", "text_layer_url": "https://x/a.json"}
TILES_CAMEL = {
    "tileLayerUrl": "https://t/{z}/{x}/{y}.png?key=1",
    "bounds": [[47.36, 8.53], [47.37, 8.55]],
    "minZoom": 12,
    "maxZoom": 20,
    "maxNativeZoom": 18,
    "tileSize": 256,
    "epsg": "EPSG4326",
    "alternativeLayers": [{"tileLayerUrl": "https://t/ir/{z}/{x}/{y}.jpg", "name": "IR"}],
}
TILES_SNAKE = {
    "tile_layer_url": "https://t/{z}/{x}/{y}.png?key=1",
    "bounds": [[47.36, 8.53], [47.37, 8.55]],
    "min_zoom": 12,
    "max_zoom": 20,
    "max_native_zoom": 18,
    "tile_size": 256,
    "epsg": "EPSG4326",
    "alternative_layers": [{"tile_layer_url": "https://t/ir/{z}/{x}/{y}.jpg", "name": "IR"}],
}


@pytest.mark.parametrize(
    ("row_data", "expected"),
    [(PDF_CAMEL, "PDF"), (PDF_SNAKE, "PDF"), (TILES_CAMEL, "TMS_GEO"), (TILES_SNAKE, "TMS_GEO")],
)
def test_composite_row_data_is_stored_as_given(row_data: dict[str, Any], expected: str) -> None:
    stored = norm({"row_data": row_data})
    assert stored.media_type == expected
    assert orjson.loads(stored.row_data) == row_data
    assert list(orjson.loads(stored.row_data)) == list(row_data)


BAD_COMPOSITES = [
    ({"pdf_url": ""}, "pdf_url must be a non-empty URL"),
    ({"pdf_url": "https://x/a.pdf", "text_layer_url": 3}, "text_layer_url must be a non-empty"),
    ({"tile_layer_url": "https://t/{z}/{x}/{y}.png", "min_zoom": 18, "max_zoom": 3}, "larger"),
    ({"tile_layer_url": "https://t/{z}/{x}/{y}.png", "max_zoom": 31}, "max_zoom must be"),
    ({"tile_layer_url": "https://t/{z}/{x}/{y}.png", "min_zoom": 2.5}, "min_zoom must be"),
    ({"tile_layer_url": "https://t/{z}/{x}/{y}.png", "bounds": [[1, 2]]}, "bounds must be"),
    ({"tile_layer_url": "https://t/{z}/{x}/{y}.png", "bounds": [[200, 300], [1, 2]]}, "degrees"),
    ({"tile_layer_url": "https://t/{z}/{x}/{y}.png", "bounds": [[1, 2], [1, 3]]}, "equal"),
    ({"tile_layer_url": "https://t/{z}/{x}/{y}.png", "epsg": "EPSG9999"}, "epsg"),
    ({"tile_layer_url": "https://t/{z}/{x}/{y}.png", "tile_size": 0}, "tile_size"),
    ({"tile_layer_url": "https://t/{z}/{x}/{y}.png", "alternative_layers": {}}, "must be a list"),
    (
        {"tile_layer_url": "https://t/{z}/{x}/{y}.png", "alternative_layers": [{"name": "x"}]},
        "alternative_layers[0].tile_layer_url must be a non-empty URL",
    ),
    (
        {
            "tile_layer_url": "https://t/{z}/{x}/{y}.png",
            "alternative_layers": [{"tile_layer_url": "https://t2/{z}/{x}/{y}.png", "name": 3}],
        },
        "name must be a string",
    ),
]
CAMEL = {
    "pdf_url": "pdfUrl",
    "text_layer_url": "textLayerUrl",
    "tile_layer_url": "tileLayerUrl",
    "min_zoom": "minZoom",
    "max_zoom": "maxZoom",
    "tile_size": "tileSize",
    "alternative_layers": "alternativeLayers",
}


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {CAMEL.get(k, k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


@pytest.mark.parametrize(("row_data", "message"), BAD_COMPOSITES)
def test_composites_are_checked_the_same_in_both_spellings(
    row_data: dict[str, Any], message: str
) -> None:
    snake = error_of({"row_data": row_data})
    camel = error_of({"row_data": _camel(row_data)})
    assert camel.code == snake.code == "invalid_row_data"
    assert message in snake.message
    assert message in camel.message  # the message names the snake_case field


def test_simple_pixel_bounds_are_not_degrees() -> None:
    row = {
        "tileLayerUrl": "https://t/{z}/{x}/{y}.png",
        "bounds": [[0, 0], [4000, 3000]],
        "epsg": "SIMPLEPIXEL",
    }
    assert norm({"row_data": row}).media_type == "TMS_GEO"
    lng_lat = {
        "tileLayerUrl": "https://t/{z}/{x}/{y}.png",
        "bounds": [[-99.2, 19.4], [-99.1, 19.5]],
    }
    assert norm({"row_data": lng_lat}).media_type == "TMS_GEO"


@pytest.mark.parametrize(
    "row_data",
    [
        {"pdf_url": "https://x/a.pdf", "pdfUrl": "https://x/b.pdf"},
        {"pdfUrl": "https://x/a.pdf", "textLayerUrl": "t", "text_layer_url": "t"},
        {"tile_layer_url": "https://t/{z}/{x}/{y}.png", "tileLayerUrl": "https://t/{z}/{x}/{y}"},
        {"tileLayerUrl": "https://t/{z}/{x}/{y}.png", "minZoom": 1, "min_zoom": 1},
        {
            "tileLayerUrl": "https://t/{z}/{x}/{y}.png",
            "alternativeLayers": [],
            "alternative_layers": [],
        },
    ],
)
def test_a_composite_key_in_both_spellings_is_a_row_error(row_data: dict[str, Any]) -> None:
    err = error_of({"row_data": row_data})
    assert err.code == "duplicate_field"
    assert "twice" in err.message


# --- metadata --------------------------------------------------------------------------------


def test_labelbox_reserved_schema_ids() -> None:
    embedding = [i / 128 for i in range(128)]
    stored = norm(
        {
            "row_data": "s3://b/a.jpg",
            "metadata_fields": [
                {"schema_id": TAG_ID, "value": "nacht"},
                {"schema_id": SPLIT_ID, "value": VALID_ID},
                {"schema_id": CAPTURE_ID, "value": "2024-05-01T14:30:00+02:00"},
                {"schema_id": EMBEDDING_ID, "value": embedding},
            ],
        }
    )
    assert orjson.loads(stored.metadata or "") == [
        {"schema_id": TAG_ID, "name": "tag", "value": "nacht"},
        {"schema_id": SPLIT_ID, "name": "split", "value": "valid"},
        {"schema_id": CAPTURE_ID, "name": "captureDateTime", "value": "2024-05-01T12:30:00Z"},
        {"schema_id": EMBEDDING_ID, "name": "embedding", "value": embedding},
    ]
    for option_id, name in ((TRAIN_ID, "train"), (VALID_ID, "valid"), (TEST_ID, "test")):
        one = norm(
            {"row_data": "s3://b/a.jpg", "metadata": [{"schema_id": SPLIT_ID, "value": option_id}]}
        )
        assert orjson.loads(one.metadata or "")[0]["value"] == name
    named = norm(
        {"row_data": "s3://b/a.jpg", "metadata": {"schema_name": "split", "value": "test"}}
    )
    assert orjson.loads(named.metadata or "")[0]["value"] == "test"


@pytest.mark.parametrize(
    "fields",
    [
        [{"name": "split", "value": "train"}, {"schema_id": SPLIT_ID, "value": TEST_ID}],
        [{"name": "tag", "value": "a"}, {"name": "tag", "value": "b"}],
        [
            {"schema_id": CAPTURE_ID, "value": "2024-01-01"},
            {"name": "captureDateTime", "value": "2024-01-01"},
        ],
    ],
)
def test_a_metadata_field_given_twice_is_a_row_error(fields: list[dict[str, Any]]) -> None:
    err = error_of({"row_data": "s3://b/a.jpg", "metadata_fields": fields})
    assert err.code == "invalid_metadata"
    assert err.message.endswith("is given twice")


@pytest.mark.parametrize("value", ["03/04/2024 10:00", "1. Mai 2024", "2024-13-01T00:00:00Z"])
def test_a_datetime_that_is_not_iso_8601(value: str) -> None:
    err = error_of(
        {"row_data": "s3://b/a.jpg", "metadata": [{"name": "captureDateTime", "value": value}]}
    )
    assert err.code == "invalid_metadata"
    assert "'captureDateTime'" in err.message
    assert f"{value!r} is not ISO 8601" in err.message
    assert "2024-05-01T12:30:00Z" in err.message  # the expected form


def test_a_datetime_that_is_a_number() -> None:
    err = error_of(
        {"row_data": "s3://b/a.jpg", "metadata": [{"schema_id": CAPTURE_ID, "value": 1714560000}]}
    )
    assert "'captureDateTime'" in err.message and "ISO 8601" in err.message


# --- values tether cannot store --------------------------------------------------------------


def test_values_tether_cannot_store_are_row_errors() -> None:
    assert error_of({"row_data": "s3://b/a.jpg", "global_key": "a\x00b"}).code == (
        "invalid_global_key"
    )
    err = error_of({"row_data": {"text": "broken \ud800 surrogate"}})
    assert err.code == "invalid_value" and "row_data" in err.message
    nul_tag = error_of({"row_data": "s3://b/a.jpg", "metadata": [{"name": "tag", "value": "\x00"}]})
    assert nul_tag.code == "invalid_metadata" and "NUL" in nul_tag.message


# --- the fixtures read as expected ------------------------------------------------------------


def test_fixture_files_have_their_awkward_traits() -> None:
    """The manifests under tests/fixtures/manifests keep the traits the tests rely on."""
    raw = {p.name: p.read_bytes() for p in MANIFESTS.iterdir() if p.is_file()}
    assert raw["ls_export.json"].startswith(BOM) and b"\r\n" in raw["ls_export.json"]
    assert raw["ls_tasks.csv"].startswith(BOM) and not raw["ls_tasks.csv"].endswith(b"\n")
    assert raw["ls_flat.ndjson"].startswith(BOM) and not raw["ls_flat.ndjson"].endswith(b"\n")
    assert raw["uris.txt"].startswith(BOM) and b"\r\n" in raw["uris.txt"]
    assert not raw["ls_single_task.json"].endswith(b"\n")
    assert not raw["lb_headerless.csv"].endswith(b"\n")
    assert "😀 mood".encode() in raw["ls_tasks.csv"]  # emoji in a key
    assert "ключ 🔑".encode() in raw["ls_export.json"]


def test_label_studio_export_fixture_reads_unchanged(tmp_path: Path) -> None:
    raw = (MANIFESTS / "ls_export.json").read_bytes()
    tasks = json.loads(raw.decode("utf-8-sig"))
    got = list(read(MANIFESTS / "ls_export.json", "json"))
    assert len(got) == len(tasks)
    for item, task in zip(got, tasks, strict=True):
        assert item.flavor == "label_studio"
        assert item.value is not None
        assert item.value["row_data"] == task["data"]
        assert orjson.loads(norm(item.value, read=True).row_data) == task["data"]
        extra = item.value["extra"]
        assert extra["source_id"] == task["id"]
        for key in ("annotations", "predictions", "drafts", "meta"):
            if key in task:
                assert extra[key] == task[key]


def test_metadata_checks_remembered_for_repeated_values_give_what_fresh_checks_give() -> None:
    """``Schema.check`` remembers scalar values: a value equal to one seen before but of
    another type (True == 1 == 1.0) or under another field must be checked afresh."""
    from tether.catalog.metadata_schema import Field

    score = Field("cmfscore", "score", "number", 101)
    schema = Schema([*RESERVED, score])

    def stored(value: Any, name: str = "score") -> Any:
        row = {"row_data": "s3://b/a.jpg", "metadata_fields": [{"name": name, "value": value}]}
        return normalize(row, schema)

    first = stored(1)
    assert stored(1).metadata == first.metadata
    assert orjson.loads(stored(1).metadata or "") == [
        {"schema_id": "cmfscore", "name": "score", "value": 1}
    ]
    assert stored(1.0).metadata_values == [(101, None, 1.0)]
    assert orjson.loads(stored(1.0).metadata or "")[0]["value"] == 1.0
    with pytest.raises(RowError, match="expected a number, got a boolean"):
        stored(True)
    assert stored(1, "tag").metadata_values == [(1, "1", None)]
    assert stored("1", "tag").metadata_values == [(1, "1", None)]
    with pytest.raises(RowError, match="'split': 'Train' is not one of"):
        stored("Train", "split")
    assert stored("train", "split").metadata_values == [(2, "train", None)]
    with pytest.raises(RowError, match="unknown metadata field 'nope'"):
        stored(1, "nope")
