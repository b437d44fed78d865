"""Corpora as they are published, built end to end through the CLI: zstd JSONL (several
frames), parquet with FineWeb's columns and filters, Wikipedia dumps (pages-articles XML, bz2,
multistream with its index); bad input in each is exit 1 naming the file, the last good build
untouched."""

from __future__ import annotations

import bz2
import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm
import tensorflow as tf
import zstandard

from tests.conftest import (
    corpus,
    current_build,
    invoke,
    one_error_line,
    run_cli,
    shard_hashes,
    summary_of,
)
from tests.test_wikipedia import MARKUP, NOT_ARTICLE_TEXT, SAMPLE
from tests.test_wikipedia_multistream import write_multistream

BASE = ["--max-seq-length", 64, "--max-predictions-per-seq", 8, "--dupe-factor", 1]


@pytest.fixture(scope="module")
def movies(tmp_path_factory) -> list[dict]:
    """The NSMC sample's 40 movies (CC0 Korean reviews) as JSONL rows."""
    with gzip.open(corpus("jsonl/nsmc_movies_sample.jsonl.gz"), "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def korean_model(tmp_path_factory, movies) -> Path:
    folder = tmp_path_factory.mktemp("model")
    (folder / "movies.jsonl").write_text("".join(json.dumps(m) + "\n" for m in movies))
    invoke(
        "train-tokenizer", folder / "movies.jsonl", "-o", folder / "ko", "--input-format",
        "jsonl", "--language", "ko", "--vocab-size", 1200,
    )  # fmt: skip
    return folder / "ko.model"


def records_text(out: Path) -> list[str]:
    """Every record decoded to text (masks undone)."""
    manifest = json.loads((out / "manifest.json").read_text())
    sp = spm.SentencePieceProcessor(model_file=str(current_build(out) / "spm.model"))
    length = manifest["config"]["max_seq_length"]
    spec = {"input_ids": tf.io.FixedLenFeature([length], tf.int64)}
    shards = [str(out / s["name"]) for s in manifest["shards"]]
    rows = tf.data.TFRecordDataset(shards).map(lambda r: tf.io.parse_single_example(r, spec))
    return [sp.decode([int(i) for i in row["input_ids"] if i > 0]) for row in rows]


# -- zstd ---------------------------------------------------------------------------------------


def two_frames(data: bytes) -> bytes:
    middle = data.index(b"\n", len(data) // 2) + 1
    compressor = zstandard.ZstdCompressor(level=3)
    return compressor.compress(data[:middle]) + compressor.compress(data[middle:])


def test_zstd_jsonl_of_several_frames_builds_as_its_gzip_twin(tmp_path, movies, korean_model):
    text = "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in movies).encode()
    (tmp_path / "gz").mkdir()
    (tmp_path / "zst").mkdir()
    (tmp_path / "gz" / "movies.jsonl.gz").write_bytes(gzip.compress(text))
    (tmp_path / "zst" / "movies.jsonl.zst").write_bytes(two_frames(text))
    args = [*BASE, "--input-format", "jsonl", "--language", "ko", "--spm-model", korean_model]
    args += ["--unit-bytes", 60000, "--json"]
    zst = summary_of(invoke("build", tmp_path / "zst", "-o", tmp_path / "out-zst", *args))
    gz = summary_of(invoke("build", tmp_path / "gz", "-o", tmp_path / "out-gz", *args))
    assert zst["documents"] == gz["documents"] == len(movies)
    assert zst["units"]["total"] > 3  # split into units like a gzip file
    assert shard_hashes(tmp_path / "out-zst") == shard_hashes(tmp_path / "out-gz")
    manifest = json.loads((tmp_path / "out-zst" / "manifest.json").read_text())
    assert manifest["inputs"][0]["compression"] == "zstd"


def test_a_truncated_zstd_frame_is_exit_1_naming_the_file(tmp_path, movies, korean_model):
    text = "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in movies).encode()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "movies.jsonl.zst").write_bytes(two_frames(text))
    out = tmp_path / "out"
    args = [*BASE, "--input-format", "jsonl", "--language", "ko", "--spm-model", korean_model]
    invoke("build", folder, "-o", out, *args)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    (folder / "movies.jsonl.zst").write_bytes(two_frames(text)[:-40])
    result = run_cli("build", folder, "-o", out, *args, check=1)
    line = one_error_line(result.stderr)
    assert f"{folder / 'movies.jsonl.zst'}: corrupt or unreadable" in line
    assert "zstd stream ended inside a frame" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    run_cli("verify", out)


# -- parquet and filters ------------------------------------------------------------------------


def fineweb_rows(movies: list[dict], copies: int = 3) -> list[dict]:
    """FineWeb-Edu's columns, the text from the NSMC movies; language and scores drawn."""
    rng = random.Random(4)
    rows = []
    for copy in range(copies):
        for i, movie in enumerate(movies):
            score = round(rng.uniform(0.5, 4.5), 3)
            rows.append(
                {
                    "text": movie["text"],
                    "id": f"<urn:uuid:{copy:02d}-{i:04d}>",
                    "dump": "CC-MAIN-2024-10",
                    "url": f"https://example.org/{copy}/{i}",
                    "date": "2024-02-21T10:00:00Z",
                    "file_path": f"s3://commoncrawl/{copy}/{i}.warc.gz",
                    "language": rng.choice(["en", "en", "ko", "ja"]),
                    "language_score": round(rng.uniform(0.6, 1.0), 4),
                    "token_count": len(movie["text"]) // 3,
                    "score": score,
                    "int_score": int(round(score)),
                }
            )
    return rows


@pytest.fixture()
def fineweb(tmp_path, movies) -> tuple[Path, list[dict]]:
    rows = fineweb_rows(movies)
    folder = tmp_path / "fineweb"
    folder.mkdir()
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, folder / "000_00000.parquet", row_group_size=16)
    assert pq.ParquetFile(folder / "000_00000.parquet").metadata.num_row_groups == 8
    return folder, rows


def test_parquet_rows_are_documents_and_row_groups_units(tmp_path, fineweb, korean_model):
    folder, rows = fineweb
    args = [*BASE, "--input-format", "parquet", "--language", "ko", "--spm-model", korean_model]
    summary = summary_of(
        invoke("build", folder, "-o", tmp_path / "out", *args, "--unit-bytes", 40000, "--json")
    )
    assert summary["documents"] == len(rows)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    groups = [piece[1:] for unit in manifest["units"] for piece in unit["pieces"]]
    assert len(groups) > 2 and groups[0][0] == 0 and groups[-1][1] == 8  # whole row groups
    run_cli("verify", tmp_path / "out")


def test_filters_keep_exactly_the_rows_that_meet_them(tmp_path, fineweb, korean_model):
    folder, rows = fineweb
    kept = [r for r in rows if r["language"] == "en" and r["int_score"] >= 3]
    assert 0 < len(kept) < len(rows)
    args = [*BASE, "--language", "ko", "--spm-model", korean_model, "--json"]
    config = tmp_path / "edu.yaml"
    config.write_text("input_format: parquet\nfilters: [language == en, int_score >= 3]\n")
    summary = summary_of(invoke("build", folder, "-o", tmp_path / "out", "--config", config, *args))
    assert summary["documents"] == len(kept)
    assert summary["skipped"]["filtered_rows"] == len(rows) - len(kept)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["filters"] == ["language == en", "int_score >= 3"]
    # The same rows as JSONL, nested fields reached by a dotted name, `in` with a list.
    nested = [
        {"text": r["text"], "meta": {"lang": r["language"], "int": r["int_score"]}} for r in rows
    ]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in nested))
    conditions = "meta.lang in [en]; meta.int >= 3"
    summary = summary_of(
        invoke(
            "build", tmp_path / "rows.jsonl", "-o", tmp_path / "jsonl-out", *args,
            "--input-format", "jsonl", "--filters", conditions,
        )
    )  # fmt: skip
    assert summary["documents"] == len(kept)
    # Filters are part of the config: another filter is another config.
    result = invoke(
        "build", folder, "-o", tmp_path / "out", "--config", config, *args,
        "--filters", "int_score >= 4", check=2,
    )  # fmt: skip
    assert "changed: filters" in result.stderr


def test_a_filter_field_a_row_lacks_and_a_missing_column_are_named(tmp_path, fineweb, korean_model):
    folder, rows = fineweb
    args = [*BASE, "--language", "ko", "--spm-model", korean_model]
    result = run_cli(
        "build", folder, "-o", tmp_path / "a", *args, "--input-format", "parquet",
        "--text-field", "body", check=2,
    )  # fmt: skip
    line = one_error_line(result.stderr)
    assert f"{folder / '000_00000.parquet'}: no column 'body' (it has text, id, dump" in line
    (tmp_path / "rows.jsonl").write_text(
        json.dumps({"text": "하나", "lang": "ko"}) + "\n" + json.dumps({"text": "둘"}) + "\n"
    )
    result = run_cli(
        "build", tmp_path / "rows.jsonl", "-o", tmp_path / "b", *args, "--input-format", "jsonl",
        "--filters", "lang == ko", check=1,
    )  # fmt: skip
    assert f"{tmp_path / 'rows.jsonl'}:2: no field 'lang' (filter: lang == ko)" in one_error_line(
        result.stderr
    )
    result = run_cli("build", folder, "-o", tmp_path / "c", *args, "--filters", "x ~ 3", check=2)
    assert "config key filters: 'x ~ 3' is not FIELD OP VALUE" in one_error_line(result.stderr)


# -- Wikipedia ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def english_wiki_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wiki-model")
    invoke(
        "train-tokenizer", corpus("en/botchan.txt"), "-o", folder / "en", "--input-format",
        "text", "--vocab-size", 1500,
    )  # fmt: skip
    return folder / "en.model"


def wiki_args(model: Path) -> list:
    return [*BASE, "--input-format", "wikipedia", "--spm-model", model, "--json"]


@pytest.mark.parametrize("layout", ["xml", "xml.bz2", "multistream"])
def test_a_wikipedia_dump_gives_its_articles_as_plain_prose(tmp_path, english_wiki_model, layout):
    folder = tmp_path / "dump"
    folder.mkdir()
    xml = corpus(SAMPLE).read_bytes()
    if layout == "xml":
        (folder / "enwiki-20240501-pages-articles.xml").write_bytes(xml)
    elif layout == "xml.bz2":
        (folder / "enwiki-20240501-pages-articles.xml.bz2").write_bytes(bz2.compress(xml))
    else:
        write_multistream(folder, per_stream=2)
    args = wiki_args(english_wiki_model)
    if layout == "multistream":
        args += ["--unit-bytes", 4096]  # a unit every ~1 kB of bz2 streams
    summary = summary_of(invoke("build", folder, "-o", tmp_path / "out", *args))
    assert summary["documents"] == 5  # the articles: no redirect, talk, template... page
    if layout == "multistream":
        assert summary["units"]["total"] >= 3
        assert summary["skipped"]["index_files"] == 1
    texts = records_text(tmp_path / "out")
    assert len(texts) == summary["records"] >= 10
    joined = "\n".join(texts)
    for markup in MARKUP:
        assert markup not in joined, markup
    for text in NOT_ARTICLE_TEXT:
        assert text not in joined, text
    assert "Botchan" in joined or "botchan" in joined.lower()


def test_the_multistream_build_is_the_same_on_any_worker_count(tmp_path, english_wiki_model):
    folder = tmp_path / "dump"
    folder.mkdir()
    write_multistream(folder, per_stream=1)
    args = [*wiki_args(english_wiki_model), "--unit-bytes", 4096]
    invoke("build", folder, "-o", tmp_path / "one", *args, "--workers", 1)
    run_cli("build", folder, "-o", tmp_path / "two", *args, "--workers", 2)
    assert shard_hashes(tmp_path / "one") == shard_hashes(tmp_path / "two")


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE mediawiki [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<mediawiki><page><title>Bomb</title><ns>0</ns><id>1</id>
<revision><text>&d;&d;&d;&d;&d;&d;&d;&d;</text></revision></page></mediawiki>
"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE mediawiki [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<mediawiki><page><title>Leak</title><ns>0</ns><id>1</id>
<revision><text>&secret;</text></revision></page></mediawiki>
"""


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("cut", None, "the XML ends in the middle of a page: the file is cut short"),
        ("bomb", BOMB, "XML entity declarations are not allowed"),
        ("external", EXTERNAL, "XML entity declarations are not allowed"),
    ],
)
def test_bad_wikipedia_input_is_exit_1_naming_it_and_the_last_build_stays(
    tmp_path, english_wiki_model, name, data, message
):
    folder = tmp_path / "dump"
    folder.mkdir()
    dump = folder / "enwiki-pages-articles.xml"
    xml = corpus(SAMPLE).read_bytes()
    dump.write_bytes(xml)
    out = tmp_path / "out"
    invoke("build", folder, "-o", out, *wiki_args(english_wiki_model))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    dump.write_bytes(xml[: xml.index(b"<page>", len(xml) // 2) + 100] if data is None else data)
    result = run_cli("build", folder, "-o", out, *wiki_args(english_wiki_model), check=1)
    line = one_error_line(result.stderr)
    assert str(dump) in line and message in line, line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    run_cli("verify", out)


# -- the formats read before: as C4 / Dolma and CC-100 publish them ------------------------------


def test_c4_json_gz_and_cc100_txt_xz_build_with_exact_document_counts(
    tmp_path, movies, korean_model
):
    import lzma

    c4 = tmp_path / "c4"
    c4.mkdir()
    rows = [{"text": m["text"], "timestamp": "2019-04-25T12:57:54Z", "url": "x"} for m in movies]
    (c4 / "c4-train.00000-of-01024.json.gz").write_bytes(
        gzip.compress("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    )
    args = [*BASE, "--language", "ko", "--spm-model", korean_model, "--json"]
    summary = summary_of(
        invoke("build", c4, "-o", tmp_path / "c4-out", *args, "--input-format", "jsonl")
    )
    assert summary["documents"] == len(movies)
    cc100 = tmp_path / "cc100"
    cc100.mkdir()  # a line per paragraph, a blank line between documents
    text = "\n\n".join(m["text"] for m in movies) + "\n"
    (cc100 / "ko.txt.xz").write_bytes(lzma.compress(text.encode()))
    summary = summary_of(invoke("build", cc100, "-o", tmp_path / "cc-out", *args))
    assert summary["documents"] == len(movies)
