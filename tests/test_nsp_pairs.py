"""NSP's random next segment always comes from another document, whatever the unit layout and
the dupe factor (DESIGN section 1): each label-1 record's B is traced back to its document."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from tests.conftest import invoke

DOCUMENTS = 6


def write_corpus(path: Path, documents: int = DOCUMENTS) -> list[str]:
    """`lines` documents whose words are each document's own (disjoint random vocabularies),
    so that any few characters of a segment tell which document they come from. Returns each
    document's text without spaces."""
    rng = random.Random(7)
    texts, blocks = [], []
    for _ in range(documents):
        words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=7)) for _ in range(40)]
        sentences = [" ".join(rng.choices(words, k=8)) + "." for _ in range(30)]
        blocks.append("\n".join(sentences))
        texts.append("".join(sentences).replace(" ", ""))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return texts


def segments(out: Path) -> list[tuple[int, str, str]]:
    """(label, A text, B text) of every record, spaces removed."""
    manifest = json.loads((out / "manifest.json").read_text())
    sp = spm.SentencePieceProcessor(model_file=str(out / manifest["tokenizer"]["file"]))
    spec = {
        "input_ids": tf.io.FixedLenFeature([64], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([64], tf.int64),
        "input_mask": tf.io.FixedLenFeature([64], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([10], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([10], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([10], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }
    shards = [str(out / s["name"]) for s in manifest["shards"]]
    found = []
    for row in (
        tf.data.TFRecordDataset(shards)
        .map(lambda r: tf.io.parse_single_example(r, spec))
        .as_numpy_iterator()
    ):
        ids = row["input_ids"].copy()
        for position, original, weight in zip(
            row["masked_lm_positions"], row["masked_lm_ids"], row["masked_lm_weights"], strict=True
        ):
            if weight > 0:
                ids[position] = original
        length = int(row["input_mask"].sum())
        segment = row["segment_ids"][:length]
        a = ids[1 : int(np.argmax(segment)) - 1]
        b = ids[int(np.argmax(segment)) : length - 1]
        text = [sp.decode(x.tolist()).replace(" ", "") for x in (a, b)]
        found.append((int(row["next_sentence_labels"][0]), *text))
    return found


def document_of(text: str, documents: list[str]) -> set[int]:
    return {d for d, whole in enumerate(documents) if text in whole}


@pytest.mark.parametrize(
    "dupe, unit_bytes",
    [(5, 4 << 20), (3, 4096)],
    ids=["one unit, one chunk", "small units"],
)
def test_a_random_next_segment_never_comes_from_the_same_document(tmp_path, dupe, unit_bytes):
    documents = write_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "out"
    invoke(
        "build",
        tmp_path / "corpus.txt",
        "-o",
        out,
        "--sentence-task",
        "nsp",
        "--dupe-factor",
        dupe,
        "--vocab-size",
        400,
        "--max-seq-length",
        64,
        "--max-predictions-per-seq",
        10,
        "--unit-bytes",
        unit_bytes,
    )
    random_pairs = same_document = traced = 0
    for label, a, b in segments(out):
        if label != 1:
            continue
        random_pairs += 1
        home, source = document_of(a, documents), document_of(b, documents)
        assert len(home) == 1, a  # A always comes whole from one document
        if len(source) == 1:
            traced += 1
            same_document += source == home
    assert random_pairs > 100
    assert traced > 0.9 * random_pairs
    assert same_document == 0
