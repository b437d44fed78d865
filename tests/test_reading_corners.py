"""Input that used to give silently wrong records: JSONL read as lines, classic-Mac line ends,
UTF-16, lone surrogate escapes, file names that are not UTF-8. Each gives the right records or
one clear line with the right exit code."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import pytest
from pretrain_records.pipeline.reading import documents as sources
from pretrain_records.pipeline.reading import inputs, scanning
from pretrain_records.pipeline.reading.lines import MAX_LINE_BYTES
from pretrain_records.pipeline.reading.sentences import make_splitter

from tests.conftest import corpus, invoke, one_error_line, run_cli, shard_hashes, summary_of

BOTCHAN = corpus("en/botchan.txt")  # CRLF line ends, a UTF-8 BOM, no blank line
SAMPLE = corpus("en/bert_sample_text.txt")


def read_all(path, input_format, unit_bytes=1 << 30):
    """Every document of a file, read piece by piece as a build cuts it, and the pieces."""
    scanned = scanning.scan(inputs.InputFile(str(path), path.name), input_format, unit_bytes, {})
    stats, split = sources.ReadStats(), make_splitter("en")
    found = []
    for info in scanned.pieces:
        found += sources.read_documents(scanned.piece(info), input_format, split, stats)
    return found, scanned.pieces


def jsonl_of(path) -> bytes:
    """The paragraphs of a text as JSONL records with an id, as corpus dumps have them."""
    text = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    lines = [json.dumps({"id": i, "text": p}) for i, p in enumerate(text.split("\n\n"))]
    return ("\n".join(lines) + "\n").encode()


def test_jsonl_read_as_lines_or_text_is_refused_naming_the_file(tmp_path, model_args):
    path = tmp_path / "wiki.jsonl"
    path.write_bytes(jsonl_of(SAMPLE))
    long_first = tmp_path / "books.txt"  # a first document longer than what is checked
    long_first.write_text(json.dumps({"text": "A sentence. " * 20000}) + "\n")
    packed = tmp_path / "packed.txt.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    cases = [(path, "lines"), (path, "text"), (long_first, "lines"), (packed, "lines")]
    for file, input_format in cases:
        args = [*model_args, "--input-format", input_format]
        result = invoke("build", file, "-o", tmp_path / "out", *args, check=2)
        line = one_error_line(result.stderr)
        assert f"{file}: its first lines are JSON objects" in line, line
        assert "--input-format jsonl" in line
    assert not (tmp_path / "out" / "manifest.json").exists()
    report = summary_of(
        invoke("build", path, "-o", tmp_path / "out", *model_args, "--json", check=2)
    )
    assert report["file"] == str(path) and report["exit_code"] == 2
    args = [*model_args, "--input-format", "jsonl", "--json"]
    summary = summary_of(invoke("build", path, "-o", tmp_path / "jsonl", *args))
    assert summary["documents"] == 3
    # Prose that starts with a brace, or JSON among prose, is text.
    prose = tmp_path / "prose.txt"
    prose.write_text('{Editor\'s note: kept as written.}\n{"a": 1}\nThe story begins here.\n')
    summary = summary_of(invoke("build", prose, "-o", tmp_path / "prose", *model_args, "--json"))
    assert summary["documents"] == 1 and summary["status"] == "ok"


def line_end_variants(tmp_path, raw: bytes) -> dict:
    """`raw` (CRLF) as it is, with classic-Mac CR line ends and with LF ones."""
    variants = {"crlf": raw, "cr": raw.replace(b"\r\n", b"\r"), "lf": raw.replace(b"\r\n", b"\n")}
    paths = {}
    for name, data in variants.items():
        paths[name] = tmp_path / f"{name}.txt"
        paths[name].write_bytes(data)
    return paths


def test_classic_mac_line_ends_read_as_crlf_and_lf_do(tmp_path, model_args):
    paths = line_end_variants(tmp_path, BOTCHAN.read_bytes())
    for input_format in ("lines", "text"):
        found = {name: read_all(path, input_format)[0] for name, path in paths.items()}
        assert found["cr"] == found["lf"] == found["crlf"], input_format
    assert len(found["cr"]) == 1 and len(found["cr"][0]) > 1000  # text: the book's sentences
    lines, _ = read_all(paths["cr"], "lines")
    assert len(lines) == 1 and len(lines[0]) == 4288  # a sentence a line, as in the book
    # Records: a CR file gives those of its LF twin (the same content as the readers see it).
    out = {}
    for name, path in paths.items():
        out[name] = tmp_path / f"out-{name}"
        summary = summary_of(invoke("build", path, "-o", out[name], *model_args, "--json"))
        assert summary["documents"] == 1
    assert shard_hashes(out["cr"]) and shard_hashes(out["cr"]) == shard_hashes(out["lf"])


def test_cr_files_are_cut_where_their_lf_twins_are(tmp_path, model_args):
    """Documents of 25 lines: a CR file is cut into the pieces of its LF twin (offsets, line
    numbers, hashes), piece by piece read into the same documents, built into the same
    records; CRLF (a CR before an LF, also at a 1 MiB block's end) is one line end."""
    book = BOTCHAN.read_bytes().split(b"\r\n")
    grouped = [b"\r\n".join(book[i : i + 25]) for i in range(0, len(book), 25)]
    paths = line_end_variants(tmp_path, b"\r\n\r\n".join(grouped) + b"\r\n")
    found = {name: read_all(path, "lines", 1 << 14) for name, path in paths.items()}
    assert len(found["cr"][0]) == len(grouped) == 172
    assert found["cr"][0] == found["lf"][0] == found["crlf"][0]
    assert found["cr"][1] == found["lf"][1] and len(found["cr"][1]) == 17
    lf = paths["lf"].read_bytes()
    assert [p.first_line for p in found["cr"][1]] == [
        lf[: p.start].count(b"\n") + 1 for p in found["lf"][1]
    ]
    args = [*model_args, "--unit-bytes", 1 << 14, "--json"]
    out = {}
    for name in ("cr", "lf"):
        out[name] = tmp_path / f"out-{name}"
        summary = summary_of(invoke("build", paths[name], "-o", out[name], *args))
        assert summary["documents"] == 172 and summary["units"]["total"] == 17
    assert shard_hashes(out["cr"]) == shard_hashes(out["lf"])
    # A CRLF whose CR ends a block of the reader and whose LF starts the next.
    line = b"x" * 99 + b"\r\n"
    head = b"y" * (MAX_LINE_BYTES - 1 - len(line) * 1000) + b"\r\n"
    crlf = tmp_path / "blocks.txt"
    crlf.write_bytes(head + line * 1000 + b"\r\r\nlast\r")
    assert len(head) + len(line) * 1000 == MAX_LINE_BYTES + 1
    whole = sources.Piece(str(crlf), crlf.name, "none", 0, None)
    texts = [text for _, text in sources.read_lines(whole, sources.ReadStats())]
    assert texts == ["y" * (len(head) - 2)] + ["x" * 99] * 1000 + ["\r", "last"]


@pytest.mark.parametrize(
    "encoding, named",
    [
        ("utf-16", "UTF-16 LE"),  # with a byte order mark, as Windows tools write it
        ("utf-16-be", "UTF-16 BE"),  # without one
        ("utf-32", "UTF-32 LE"),
    ],
)
def test_utf16_and_utf32_input_is_an_error_naming_the_encoding(
    tmp_path, model_args, encoding, named
):
    """Whatever bad_lines says: skipping its lines would drop the whole file silently."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "a.txt")
    wide = folder / "b.txt"
    wide.write_bytes(SAMPLE.read_text().encode(encoding))
    (folder / "c.txt.gz").write_bytes(gzip.compress(wide.read_bytes()))
    family = named.split()[0]
    for bad_lines in ("error", "skip"):
        args = [*model_args, "--bad-lines", bad_lines]
        result = invoke("build", folder, "-o", tmp_path / "out", *args, check=1)
        assert one_error_line(result.stderr).endswith(
            f"{wide}: {named} text, not UTF-8: convert it first (iconv -f {family} -t UTF-8)"
        )
    wide.unlink()
    result = invoke("build", folder, "-o", tmp_path / "out", *model_args, check=1)
    assert f"{folder / 'c.txt.gz'}: {named} text" in one_error_line(result.stderr)
    (folder / "c.txt.gz").unlink()
    summary = summary_of(invoke("build", folder, "-o", tmp_path / "out", *model_args, "--json"))
    assert summary["documents"] == 3


def test_a_lone_surrogate_escape_is_named_or_skipped(tmp_path, model_args):
    lines = [json.dumps({"text": p}) for p in SAMPLE.read_text().split("\n\n")]
    lines.insert(1, '{"text": "A smile \\ud83d\\ude00 is fine."}')
    lines.insert(2, '{"text": "Half a smile \\ud83d is not.", "id": 7}')
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    args = [*model_args, "--input-format", "jsonl", "--json"]
    result = invoke("build", path, "-o", tmp_path / "out", *args, check=1)
    assert one_error_line(result.stderr).endswith(
        f"{path}:3: invalid Unicode escape: lone surrogate"
    )
    summary = summary_of(
        invoke("build", path, "-o", tmp_path / "out", *args, "--bad-lines", "skip", "--force")
    )
    assert summary["documents"] == 4 and summary["skipped"]["bad_lines"] == 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["skipped"]["bad_lines"] == 1 and manifest["totals"]["documents"] == 4


def test_a_file_name_that_is_not_utf8_builds_refreshes_verifies_and_inspects(tmp_path, model_args):
    folder = tmp_path / "in"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.txt")
    shutil.copy(SAMPLE, folder / name)
    shutil.copy(SAMPLE, folder / "z.txt")  # the same content: its unit mixes in the name
    out = tmp_path / "out"
    args = [*model_args, "--unit-bytes", 4096, "--json"]  # a unit per file at least
    first = summary_of(run_cli("build", folder, "-o", out, *args))
    assert first["status"] == "ok" and first["documents"] == 6
    manifest = json.loads((out / "manifest.json").read_bytes())
    assert [os.fsencode(i["path"]) for i in manifest["inputs"]] == [b"caf\xe9.txt", b"z.txt"]
    assert b"caf\\udce9.txt" in (out / "manifest.json").read_bytes()
    again = summary_of(run_cli("build", folder, "-o", out, *args))
    assert again["status"] == "up-to-date" and again["units"]["rebuilt"] == 0
    (folder / "z.txt").write_text(SAMPLE.read_text() + "\nOne more line.\n")
    third = summary_of(run_cli("build", folder, "-o", out, *args))
    assert third["status"] == "ok" and third["units"]["reused"] >= 1
    run_cli("verify", out)
    assert "masked share" in run_cli("inspect", out, "-n", 1, "--stats").stdout
