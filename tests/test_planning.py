"""Planning: big files cut at document boundaries, small files grouped, unit identity."""

from __future__ import annotations

import bz2
import gzip
import json
import random

import pytest
from pretrain_records.pipeline.reading import documents, inputs, scanning
from pretrain_records.pipeline.reading.pieces import ReadStats
from pretrain_records.pipeline.running import planning

from tests.conftest import corpus


def jsonl_text(documents_count: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    lines = []
    for i in range(documents_count):
        words = " ".join(f"w{rng.randrange(1000)}" for _ in range(rng.randint(5, 200)))
        lines.append(json.dumps({"text": f"Document {i}. {words}."}))
    return ("\n".join(lines) + "\n").encode()


def lines_text(documents_count: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    out = []
    for i in range(documents_count):
        sentences = [
            f"doc {i} sentence {k} " + "x" * rng.randint(0, 120) for k in range(rng.randint(1, 8))
        ]
        out.append("\n".join(sentences))
        out.append("\n" + " " * rng.randint(0, 2) + "\n" if rng.random() < 0.3 else "\n\n")
    return "".join(out).encode()


UNIT = 1 << 14


def scanned(path, input_format, name=None, unit=UNIT):
    return scanning.scan(inputs.InputFile(str(path), name or path.name), input_format, unit, {})


def scan_all(found, input_format, unit=UNIT):
    return [scanning.scan(f, input_format, unit, {}) for f in found]


@pytest.fixture()
def small_units():
    """Units of 16 KiB (the config key unit_bytes), so small test files make several."""


@pytest.mark.parametrize("input_format, make", [("jsonl", jsonl_text), ("lines", lines_text)])
def test_big_files_are_cut_at_document_boundaries_and_no_document_is_lost(
    tmp_path, small_units, input_format, make
):
    data = make(600)
    path = tmp_path / "big.txt"
    path.write_bytes(data)
    f = scanned(path, input_format)
    assert len(f.pieces) > 10
    assert f.pieces[0].start == 0 and f.pieces[-1].end == len(data)
    for a, b in zip(f.pieces, f.pieces[1:], strict=False):
        assert a.end == b.start
        assert b.first_line == data[: b.start].count(b"\n") + 1
    # Reading the pieces one by one gives exactly the documents of the whole file.
    split = lambda s: [s]  # noqa: E731
    whole_file = documents.Piece(str(path), "big.txt", "none", 0, None)
    whole = list(documents.read_documents(whole_file, input_format, split, ReadStats()))
    parts = [
        d
        for info in f.pieces
        for d in documents.read_documents(f.piece(info), input_format, split, ReadStats())
    ]
    assert parts == whole and len(whole) == 600


def test_cut_points_do_not_depend_on_the_read_block_size(tmp_path, small_units, monkeypatch):
    data = lines_text(500, seed=3)
    path = tmp_path / "big.txt"
    path.write_bytes(data)
    seen = []
    for block in (97, 1 << 10, 1 << 20):
        monkeypatch.setattr(scanning, "BLOCK_BYTES", block)
        seen.append([(p.start, p.end, p.sha256) for p in scanned(path, "lines").pieces])
    assert seen[0] == seen[1] == seen[2]


def test_appending_to_a_big_file_changes_only_its_last_pieces(tmp_path, small_units):
    data = jsonl_text(400)
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)
    before = scanned(path, "jsonl").pieces
    path.write_bytes(data + jsonl_text(30, seed=9))
    after = scanned(path, "jsonl").pieces
    assert [p.sha256 for p in after[: len(before) - 1]] == [p.sha256 for p in before[:-1]]
    assert after[len(before) - 1].sha256 != before[-1].sha256


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_a_compressed_file_is_cut_as_its_content_would_be(tmp_path, small_units, compress):
    data = jsonl_text(400)
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "a.jsonl.gz").write_bytes(compress(data))
    plain = scanned(tmp_path / "a.jsonl", "jsonl")
    packed = scanned(tmp_path / "a.jsonl.gz", "jsonl")
    assert packed.compression in ("gzip", "bz2")
    assert [(p.start, p.end, p.sha256) for p in packed.pieces] == [
        (p.start, p.end, p.sha256) for p in plain.pieces
    ]


def test_text_files_are_never_cut(tmp_path, small_units):
    path = tmp_path / "book.txt"
    path.write_bytes(lines_text(300))
    assert len(scanned(path, "text").pieces) == 1


def test_same_bytes_under_other_names_make_the_same_unit(tmp_path):
    data = corpus("en/bert_sample_text.txt").read_bytes()
    keys = []
    for name in ("c.txt", "star*.txt", "-dash.txt"):
        (tmp_path / name).write_bytes(data)
        keys.append(planning.group([scanned(tmp_path / name, "lines")], "sop", UNIT)[0].key)
    assert len(set(keys)) == 1


def test_two_copies_of_one_file_are_two_units_with_their_own_keys(tmp_path):
    data = corpus("en/bert_sample_text.txt").read_bytes()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "part-0.txt").write_bytes(data * 5)  # over a quarter unit each
    found, _ = inputs.expand([str(tmp_path)])
    units = planning.group(scan_all(found, "lines"), "sop", UNIT)
    assert [f.relpath for f in found] == ["a/part-0.txt", "b/part-0.txt"]
    # Each copy is cut alike into units of its own; no two units share a key (their draws).
    assert len(units) == 4 and len({u.key for u in units}) == 4
    assert [p.relpath for u in units for p in u.pieces] == ["a/part-0.txt"] * 2 + [
        "b/part-0.txt"
    ] * 2


def test_small_files_are_grouped_and_a_new_file_changes_one_unit(tmp_path, small_units):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(40):
        (folder / f"f{i:02d}.txt").write_bytes(lines_text(8, seed=i))
    found, _ = inputs.expand([str(folder)])
    units = planning.group(scan_all(found, "lines"), "sop", UNIT)
    assert 3 <= len(units) < 40
    assert sorted(p.relpath for u in units for p in u.pieces) == [f.relpath for f in found]
    (folder / "f10b.txt").write_bytes(lines_text(8, seed=99))
    found, _ = inputs.expand([str(folder)])
    again = planning.group(scan_all(found, "lines"), "sop", UNIT)
    assert len({u.key for u in units} - {u.key for u in again}) <= 2


def test_nsp_units_hold_two_documents_and_a_one_document_input_is_refused(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jsonl").write_text(json.dumps({"text": f"Only document {i}. Two."}) + "\n")
    found, _ = inputs.expand([str(folder)])
    files = scan_all(found, "jsonl")
    units = planning.group(files, "nsp", UNIT)
    assert all(u.documents >= 2 for u in units)
    assert sum(len(u.pieces) for u in units) == 3
    one = planning.group(files[:1], "nsp", UNIT)
    assert one[0].documents == 1


def test_a_document_longer_than_a_unit_stays_whole(tmp_path, small_units):
    huge = json.dumps({"text": "word " * 20000})  # 100 kB, larger than a unit
    data = jsonl_text(5) + huge.encode() + b"\n" + jsonl_text(5, seed=2)
    path = tmp_path / "books.jsonl"
    path.write_bytes(data)
    f = scanned(path, "jsonl")
    texts = [
        d
        for info in f.pieces
        for d in documents.read_documents(f.piece(info), "jsonl", lambda s: [s], ReadStats())
    ]
    assert len(texts) == 11 and any(len(d[0]) > 90000 for d in texts)


def test_a_corrupt_gzip_is_named(tmp_path):
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl_text(2000))[:3000])
    with pytest.raises(scanning.DataError, match=f"{path}: corrupt or unreadable"):
        scanned(path, "jsonl")


def test_a_line_longer_than_two_blocks_past_a_cut_keeps_the_offsets(tmp_path):
    # A cut falls inside a line of 3 MiB with no line end in a whole block after it: the scan
    # must move on, not back (it once kept "-1" bytes and shifted every later piece by one).
    data = b"a\n\n" + b"x" * (3 << 20) + b"\n\nb\n\nc\n\n"
    path = tmp_path / "long.txt"
    path.write_bytes(data)
    scanned = scanning.scan(inputs.InputFile(str(path), "long.txt"), "lines", 1 << 20, {})
    ends = [info.end for info in scanned.pieces]
    assert ends[-1] == len(data)
    for info in scanned.pieces:
        assert info.start == 0 or data[info.start - 2 : info.start] == b"\n\n"
    assert [info.start for info in scanned.pieces[1:]] == ends[:-1]
