"""Reading documents: formats, compression, BOM/CRLF, bad bytes with file and line, long lines."""

from __future__ import annotations

import bz2
import gzip
import random

import pytest
from pretrain_records.pipeline.reading import documents as sources
from pretrain_records.pipeline.reading import inputs
from pretrain_records.pipeline.reading import lines as lines_module
from pretrain_records.pipeline.reading.compression import compression_of
from pretrain_records.pipeline.reading.lines import MAX_LINE_BYTES
from pretrain_records.pipeline.reading.sentences import make_splitter

from tests.conftest import corpus


def piece(path):
    head = open(path, "rb").read(8)
    return sources.Piece(str(path), path.name, compression_of(head, str(path)), 0, None)


def documents(path, input_format="lines", bad_lines="error", language="en"):
    stats = sources.ReadStats()
    split = make_splitter(language)
    found = sources.read_documents(piece(path), input_format, split, stats, bad_lines=bad_lines)
    return list(found), stats


def lines_of(path, stats):
    return [text for _, text in sources.read_lines(piece(path), stats)]


def test_lines_format_with_bom_crlf_and_every_compression(tmp_path):
    raw = "\ufeffFirst sentence.\r\nSecond one.\r\n\r\n\r\nOther document.\r\n".encode()
    for name, data in [
        ("a.txt", raw),
        ("a.txt.gz", gzip.compress(raw)),
        ("a.txt.bz2", bz2.compress(raw)),
    ]:
        (tmp_path / name).write_bytes(data)
        docs, stats = documents(tmp_path / name)
        assert docs == [["First sentence.", "Second one."], ["Other document."]], name
        assert stats.documents == 2


def test_text_format_joins_wrapped_lines_and_splits_sentences(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("Mr. Smith went to\nWashington. He came back.\n\nA new paragraph!\n")
    docs, _ = documents(path, "text")
    assert docs == [["Mr. Smith went to Washington.", "He came back.", "A new paragraph!"]]


def test_jsonl_format_and_its_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "One. Two."}\n\n{"text": "   "}\n{"text": "Three."}\n')
    docs, stats = documents(path, "jsonl")
    assert docs == [["One.", "Two."], ["Three."]]
    assert stats.empty_documents == 1
    path.write_text('{"text": "ok"}\n{"text": broken}\n')
    with pytest.raises(sources.DataError, match=rf"{path}:2: invalid JSON"):
        documents(path, "jsonl")
    path.write_text('{"body": "ok"}\n')
    with pytest.raises(sources.DataError, match=rf"{path}:1: no string field 'text'"):
        documents(path, "jsonl")


def test_invalid_utf8_and_nul_name_file_and_line_or_are_skipped_and_counted(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nfine\nbad \xff\xfe here\nok\n")
    with pytest.raises(sources.DataError, match=rf"{path}:3: invalid UTF-8"):
        documents(path)
    docs, stats = documents(path, bad_lines="skip")
    assert docs == [["good line", "fine", "ok"]] and stats.bad_lines == 1
    path.write_bytes(b"a\n\nb\x00c\n")
    with pytest.raises(sources.DataError, match=rf"{path}:3: NUL byte"):
        documents(path)


def test_corrupt_gzip_is_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.txt.gz"
    text = "".join(f"line {i} {i * 7919 % 104729}\n" for i in range(20000)).encode()
    path.write_bytes(gzip.compress(text)[:5000])
    with pytest.raises(sources.DataError, match=rf"{path}: corrupt or unreadable"):
        documents(path)


def test_a_huge_line_is_cut_at_utf8_boundaries_and_counted(tmp_path):
    path = tmp_path / "long.txt"
    line = "한국어 " * (MAX_LINE_BYTES // 5)  # 7 bytes per repeat: > 1 MiB, multibyte
    path.write_text(line + "\nend\n", encoding="utf-8")
    docs, stats = documents(path)
    assert stats.split_long_lines >= 1
    assert "".join(docs[0][:-1]).replace(" ", "") == line.replace(" ", "")
    assert docs[0][-1] == "end"
    assert all(len(s.encode()) <= MAX_LINE_BYTES for s in docs[0])


def test_empty_files_are_counted(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n  \n\n")
    for name in ("empty.txt", "blank.txt"):
        docs, stats = documents(tmp_path / name)
        assert docs == [] and stats.empty_files == 1


def test_expand_inputs_globs_directories_and_missing(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.txt", "d/a.txt", "d/sub/c.txt.gz", "d/.hidden"):
        (tmp_path / name).write_text("x")
    found, skipped = inputs.expand([str(tmp_path / "d")])
    assert [f.path for f in found] == [
        str(tmp_path / n) for n in ("d/a.txt", "d/b.txt", "d/sub/c.txt.gz")
    ]
    assert [f.relpath for f in found] == ["a.txt", "b.txt", "sub/c.txt.gz"]
    assert skipped.hidden == 1
    found, _ = inputs.expand([str(tmp_path / "d" / "*.txt")])
    assert [f.path for f in found] == [str(tmp_path / "d/a.txt"), str(tmp_path / "d/b.txt")]
    with pytest.raises(inputs.UsageError, match="no file matches"):
        inputs.expand([str(tmp_path / "none*.txt")])


def test_korean_corpus_reads_with_crlf(tmp_path):
    docs, stats = documents(corpus("ko/konlpy_kolaw_constitution.txt"))
    assert stats.documents == len(docs) >= 1
    assert not any("\r" in s for d in docs for s in d)
    assert docs[0][0].startswith("대한민국헌법")


@pytest.mark.parametrize("seed", range(5))
def test_block_reader_agrees_with_splitting_the_whole_text(tmp_path, monkeypatch, seed):
    # Small blocks (64 bytes) put block ends everywhere: inside lines, CRLFs and UTF-8 sequences.
    monkeypatch.setattr(lines_module, "MAX_LINE_BYTES", 64)
    rng = random.Random(seed)
    alphabet = ["a", "b", " ", ".", "한", "국", "é", "\u3042"]
    lines = ["".join(rng.choices(alphabet, k=rng.randint(0, 20))) for _ in range(400)]
    ends = [rng.choice(["\n", "\r\n"]) for _ in lines]
    text = "\ufeff" + "".join(line + end for line, end in zip(lines, ends, strict=True))
    if seed % 2:
        text = text[: -len(ends[-1])]  # no final line end
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode())
    stats = sources.ReadStats()
    assert lines_of(path, stats) == lines
    assert stats.split_long_lines == 0
    # A NUL in a random line is reported with that line's number.
    k = rng.randrange(len(lines))
    bad = list(lines)
    bad[k] = bad[k] + "\x00"
    path.write_bytes("\n".join(bad).encode())
    with pytest.raises(sources.DataError, match=rf"in.txt:{k + 1}: NUL byte in the text"):
        lines_of(path, sources.ReadStats())


def test_block_reader_cuts_long_lines_at_character_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(lines_module, "MAX_LINE_BYTES", 64)
    long_line = "한국어 문장입니다. " * 40  # 27 bytes a repeat: about 17 pieces
    path = tmp_path / "in.txt"
    path.write_text(f"short\n{long_line}\nlast\n", encoding="utf-8")
    stats = sources.ReadStats()
    got = lines_of(path, stats)
    assert got[0] == "short" and got[-1] == "last"
    pieces = got[1:-1]
    assert "".join(pieces) == long_line
    assert all(len(p.encode()) <= 64 for p in pieces)
    assert len(pieces) == stats.split_long_lines + 1 >= len(long_line.encode()) // 64
