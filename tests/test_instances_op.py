"""The MakeInstances op through its Python face: exact rows, BERT's layout on a real corpus,
labels, determinism, tf.data, errors."""

from __future__ import annotations

import doctest
import math
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
from pretrain_records.ops import instances, make_instances
from pretrain_records.pipeline.tokenizer import tokenize

from tests.conftest import corpus

CLS, SEP = 2, 3
PIECES = ["<pad>", "<unk>", "[CLS]", "[SEP]", "▁the", "▁cat", "▁sat", "▁on", "▁mat", "s"]
PIECES += ["▁a", "▁dog", "▁ran", "▁far", "way", "▁un", "like", "ly"]
PIECE_ID = {piece: i for i, piece in enumerate(PIECES)}

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def handmade(documents: list[list[str]]) -> Chunk:
    """A chunk from documents written as sentences of word pieces ("▁" starts a word)."""
    sentences = [sentence.split() for document in documents for sentence in document]
    ids = np.array([PIECE_ID[p] for s in sentences for p in s], np.int32)
    starts = np.array([p.startswith("▁") for s in sentences for p in s], np.int8)
    lengths = np.array([len(s) for s in sentences], np.int32)
    counts = np.array([len(d) for d in documents], np.int32)
    return ids, starts, lengths, counts


def render(ids: np.ndarray) -> str:
    return " ".join(PIECES[i] for i in ids)


def settings(task: str, length: int, short_seq_prob: float = 0.1) -> dict:
    return dict(
        max_seq_length=length,
        short_seq_prob=short_seq_prob,
        sentence_task=task,
        cls_id=CLS,
        sep_id=SEP,
    )


def numpy_rows(rows: dict[str, tf.Tensor]) -> dict[str, np.ndarray]:
    return {name: value.numpy() for name, value in rows.items()}


def within_binomial_bound(ones: int, n: int) -> bool:
    """Binomial(n, 1/2): within 5 standard deviations of n / 2 (a false alarm ~ 6e-7)."""
    return abs(ones - n / 2) <= 5 * math.sqrt(n / 4)


def test_none_rows_are_exact():
    chunk = handmade(
        [
            ["▁the ▁cat ▁sat", "▁on ▁the ▁mat"],
            ["▁un like ly ▁dog s ▁ran ▁far", "▁a ▁dog"],
        ]
    )
    for seed in ([0, 0], [5, 9]):
        rows = numpy_rows(make_instances(*chunk, seed, **settings("none", 8, 0.0)))
        # 6 tokens fit: sentences gather up to 6, a longer run loses its tail.
        assert [render(r) for r in rows["input_ids"]] == [
            "[CLS] ▁the ▁cat ▁sat ▁on ▁the ▁mat [SEP]",
            "[CLS] ▁un like ly ▁dog s ▁ran [SEP]",
            "[CLS] ▁a ▁dog [SEP] <pad> <pad> <pad> <pad>",
        ]
        np.testing.assert_array_equal(
            rows["token_boundary"],
            [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 1, 0, 1, 1], [1, 1, 1, 1, 0, 0, 0, 0]],
        )
        np.testing.assert_array_equal(rows["segment_ids"], np.zeros((3, 8)))
        np.testing.assert_array_equal(rows["length"], [8, 8, 4])
        np.testing.assert_array_equal(rows["label"], [0, 0, 0])


def test_sop_rows_are_exact_up_to_the_coin():
    chunk = handmade([["▁the ▁cat ▁sat", "▁on ▁the ▁mat s"]])
    expected = {
        0: "[CLS] ▁the ▁cat ▁sat [SEP] ▁on ▁the ▁mat s [SEP] <pad> <pad>",
        1: "[CLS] ▁on ▁the ▁mat s [SEP] ▁the ▁cat ▁sat [SEP] <pad> <pad>",
    }
    segments = {0: [0] * 5 + [1] * 5 + [0, 0], 1: [0] * 6 + [1] * 4 + [0, 0]}
    labels = set()
    for seed in range(16):
        rows = numpy_rows(make_instances(*chunk, [seed, 1], **settings("sop", 12, 0.0)))
        label = int(rows["label"][0])
        labels.add(label)
        assert render(rows["input_ids"][0]) == expected[label]
        assert rows["segment_ids"][0].tolist() == segments[label]
        assert rows["length"].tolist() == [10]
    assert labels == {0, 1}


def test_nsp_random_b_is_the_other_document():
    chunk = handmade([["▁the ▁cat ▁sat", "▁on ▁the ▁mat"], ["▁a ▁dog ▁ran", "▁far ▁a way"]])
    allowed_b = {"▁on ▁the ▁mat", "▁a ▁dog ▁ran ▁far ▁a way", "▁far ▁a way"}
    for seed in range(16):
        rows = numpy_rows(make_instances(*chunk, [seed, 2], **settings("nsp", 16, 0.0)))
        for ids, label in zip(rows["input_ids"], rows["label"], strict=True):
            text = render(ids).replace(" <pad>", "")
            a, b = text.removeprefix("[CLS] ").removesuffix(" [SEP]").split(" [SEP] ")
            if a in ("▁the ▁cat ▁sat", "▁on ▁the ▁mat"):  # document 0
                assert b in allowed_b
                assert (b == "▁on ▁the ▁mat") == (label == 0)


def test_own_tokens_count_what_rows_carry_of_their_own_document():
    # none at L = 8: the 7-token sentence loses its last token to truncation.
    chunk = handmade([["▁the ▁cat ▁sat", "▁on ▁the ▁mat"], ["▁un like ly ▁dog s ▁ran ▁far"]])
    rows = numpy_rows(make_instances(*chunk, [1, 1], **settings("none", 8, 0.0)))
    assert rows["own_tokens"].tolist() == [6, 6]
    assert rows["own_tokens"].dtype == np.int32
    # sop: both segments are the document's; L = 7 leaves 4 of its 6 tokens.
    chunk = handmade([["▁the ▁cat ▁sat", "▁on ▁the ▁mat"]])
    for seed in range(8):
        assert make_instances(*chunk, [seed, 1], **settings("sop", 16, 0.0))["own_tokens"] == [6]
        assert make_instances(*chunk, [seed, 1], **settings("sop", 7, 0.0))["own_tokens"] == [4]
    # nsp: a random B (label 1) is another document's; the sentence put back makes the next
    # row, so every document's 6 tokens are carried once.
    chunk = handmade([["▁the ▁cat ▁sat", "▁on ▁the ▁mat"], ["▁a ▁dog ▁ran", "▁far ▁a way"]])
    labels = set()
    for seed in range(16):
        rows = numpy_rows(make_instances(*chunk, [seed, 2], **settings("nsp", 16, 0.0)))
        assert rows["own_tokens"].tolist() == [3 if label else 6 for label in rows["label"]]
        assert rows["own_tokens"].sum() == 12
        labels.update(rows["label"].tolist())
    assert labels == {0, 1}


@dataclass(frozen=True)
class RealChunk:
    """The Korean review sample as one chunk: one document per review block, a sentence per
    line, tokenized by a small SentencePiece model trained here."""

    ids: np.ndarray
    word_starts: np.ndarray
    sentence_lengths: np.ndarray
    document_sentences: np.ndarray
    tokenizer: tokenize.Tokenizer

    def arrays(self, ids: np.ndarray | None = None) -> Chunk:
        ids = self.ids if ids is None else ids
        return ids, self.word_starts, self.sentence_lengths, self.document_sentences

    def positions(self) -> np.ndarray:
        """Ids that say where a token comes from: 1000 + its index in the chunk."""
        return (1000 + np.arange(len(self.ids))).astype(np.int32)

    def document_of(self, positions: np.ndarray) -> np.ndarray:
        sentence_ends = np.cumsum(self.sentence_lengths)
        document_ends = sentence_ends[np.cumsum(self.document_sentences) - 1]
        return np.searchsorted(document_ends, positions - 1000, side="right")


@pytest.fixture(scope="module")
def korean() -> RealChunk:
    text = corpus("ko/nsmc_reviews_sample.txt").read_text(encoding="utf-8")
    documents = [block.splitlines() for block in text.split("\n\n") if block.strip()]
    sentences = [s for d in documents for s in d]
    proto, _ = tokenize.train(iter(sentences), vocab_size=1000, seed=1)
    tokenizer = tokenize.Tokenizer(proto)
    encoded = tokenizer.encode(sentences)
    ids = np.array([i for s in encoded for i in s], np.int32)
    assert len(documents) > 30 and len(ids) > 50_000
    return RealChunk(
        ids=ids,
        word_starts=tokenizer.word_start[ids],
        sentence_lengths=np.array([len(s) for s in encoded], np.int32),
        document_sentences=np.array([len(d) for d in documents], np.int32),
        tokenizer=tokenizer,
    )


def real_settings(chunk: RealChunk, task: str, length: int = 64) -> dict:
    tok = chunk.tokenizer
    return dict(
        max_seq_length=length,
        short_seq_prob=0.1,
        sentence_task=task,
        cls_id=tok.cls_id,
        sep_id=tok.sep_id,
    )


def split_row(ids: np.ndarray, length: int, sep: int) -> tuple[np.ndarray, np.ndarray]:
    """A and B (B empty for a single segment) of a row's first `length` ids."""
    seps = np.flatnonzero(ids[:length] == sep)
    return ids[1 : seps[0]], ids[seps[0] + 1 : length - 1]


@pytest.mark.parametrize("task", ["nsp", "sop", "none"])
def test_rows_have_bert_layout_on_a_real_chunk(korean: RealChunk, task: str):
    tok = korean.tokenizer
    length = 64
    rows = numpy_rows(make_instances(*korean.arrays(), [3, 4], **real_settings(korean, task)))
    assert len(rows["length"]) > 500
    assert rows["input_ids"].shape == (len(rows["length"]), length)
    for name in ("input_ids", "segment_ids", "token_boundary"):
        assert rows[name].dtype == np.int32
    for ids, segments, boundary, n in zip(
        rows["input_ids"], rows["segment_ids"], rows["token_boundary"], rows["length"], strict=True
    ):
        assert 4 <= n <= length
        assert not ids[n:].any() and not segments[n:].any() and not boundary[n:].any()
        assert ids[0] == tok.cls_id and ids[n - 1] == tok.sep_id
        seps = np.flatnonzero(ids[:n] == tok.sep_id)
        assert len(seps) == (1 if task == "none" else 2)
        assert seps[0] >= 2 and (task == "none" or seps[1] >= seps[0] + 2)
        assert not segments[: seps[0] + 1].any() and segments[seps[0] + 1 : n].all()
        assert tok.cls_id not in ids[1:n]
        # Word starts are the tokenizer's, the specials' and each segment's first token's.
        expected = tok.word_start[ids[:n]].astype(np.int32)
        expected[[0, 1, *seps, *(seps[:-1] + 1)]] = 1
        np.testing.assert_array_equal(boundary[:n], expected)


@pytest.mark.parametrize("task", ["nsp", "sop"])
def test_segments_are_runs_and_nsp_b_never_comes_from_the_same_document(
    korean: RealChunk, task: str
):
    sep = korean.tokenizer.sep_id
    rows = numpy_rows(
        make_instances(*korean.arrays(korean.positions()), [5, 6], **real_settings(korean, task))
    )
    for ids, n, label in zip(rows["input_ids"], rows["length"], rows["label"], strict=True):
        a, b = split_row(ids, n, sep)
        for segment in (a, b):  # consecutive tokens of one document
            assert (np.diff(segment) == 1).all()
            assert len(set(korean.document_of(segment))) == 1
        same_document = korean.document_of(a[:1])[0] == korean.document_of(b[:1])[0]
        if task == "nsp":
            assert same_document == (label == 0)
            if label == 0:
                assert b[0] > a[-1]  # B follows A (truncation may cut between them)
        else:
            assert same_document
            assert (b[0] < a[0]) == (label == 1)


@pytest.mark.parametrize("task", ["nsp", "sop", "none"])
def test_own_tokens_are_the_tokens_of_the_rows_document_on_a_real_chunk(
    korean: RealChunk, task: str
):
    """Per row: the tokens from A's document; over a document range: at most its tokens."""
    sep = korean.tokenizer.sep_id
    documents = len(korean.document_sentences)
    first, end = documents // 4, documents // 2
    rows = numpy_rows(
        make_instances(
            *korean.arrays(korean.positions()),
            [8, 9],
            documents=[first, end],
            **real_settings(korean, task, 32),
        )
    )
    for ids, n, own in zip(rows["input_ids"], rows["length"], rows["own_tokens"], strict=True):
        a, b = split_row(ids, n, sep)
        of_a = korean.document_of(a[:1])[0]
        assert first <= of_a < end
        tokens = np.concatenate([a, b])
        assert own == (korean.document_of(tokens) == of_a).sum()
        assert own == n - (2 if task == "none" else 3) or task == "nsp"
    in_range = np.isin(korean.document_of(korean.positions()), np.arange(first, end)).sum()
    assert 0 < rows["own_tokens"].sum() < in_range  # L = 32: truncation drops some


def test_labels_are_balanced(korean: RealChunk):
    sop = [
        make_instances(*korean.arrays(), [7, s], **real_settings(korean, "sop"))["label"]
        for s in range(3)
    ]
    labels = np.concatenate([s.numpy() for s in sop])
    assert len(labels) > 2000 and within_binomial_bound(int(labels.sum()), len(labels))
    # NSP: a fair coin, except that a lone last sentence always gets a random B.
    labels = make_instances(*korean.arrays(), [7, 0], **real_settings(korean, "nsp"))["label"]
    n, ones = len(labels), int(labels.numpy().sum())
    assert n > 500 and ones >= n / 2 - 5 * math.sqrt(n / 4)


def test_same_seed_same_bytes_other_seed_other_rows(korean: RealChunk):
    setting = real_settings(korean, "nsp")

    def rows_bytes(seed: list[int]) -> list[bytes]:
        rows = make_instances(*korean.arrays(), seed, **setting)
        return [rows[name].numpy().tobytes() for name in sorted(rows)]

    first = rows_bytes([11, 12])
    assert rows_bytes([11, 12]) == first
    assert rows_bytes([11, 13]) != first
    assert rows_bytes([12, 12]) != first


def test_tf_data_map_and_tf_function_match_eager(korean: RealChunk):
    """Several chunks mapped in parallel give each chunk's eager rows, whatever the threads."""
    setting = real_settings(korean, "nsp")
    token_ends = np.cumsum(korean.sentence_lengths)
    sentence_ends = np.cumsum(korean.document_sentences)
    chunks = []
    for first_doc in range(0, len(korean.document_sentences), 6):  # chunks of 6 documents
        s0 = sentence_ends[first_doc - 1] if first_doc else 0
        s1 = sentence_ends[min(first_doc + 6, len(sentence_ends)) - 1]
        t0 = token_ends[s0 - 1] if s0 else 0
        t1 = token_ends[s1 - 1]
        chunks.append(
            (
                korean.ids[t0:t1],
                korean.word_starts[t0:t1],
                korean.sentence_lengths[s0:s1],
                korean.document_sentences[first_doc : first_doc + 6],
                np.array([21, len(chunks)], np.int64),
            )
        )
    assert len(chunks) >= 5
    eager = [numpy_rows(make_instances(*chunk, **setting)) for chunk in chunks]

    signature = (
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int8),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([2], tf.int64),
    )
    dataset = tf.data.Dataset.from_generator(lambda: iter(chunks), output_signature=signature)
    mapped = dataset.map(
        lambda *chunk: make_instances(*chunk, **setting),
        num_parallel_calls=4,
        deterministic=True,
    )
    assert mapped.element_spec["input_ids"].shape.as_list() == [None, 64]
    for got, want in zip(mapped.as_numpy_iterator(), eager, strict=True):
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)

    traced = tf.function(
        lambda *chunk: make_instances(*chunk, **setting), input_signature=signature
    )
    for chunk, want in zip(chunks, eager, strict=True):
        got = numpy_rows(traced(*chunk))
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_nsp_with_one_document_fails_clearly():
    one = handmade([["▁the ▁cat ▁sat", "▁on ▁the ▁mat"], []])
    message = "sentence_task nsp needs at least two documents.*this chunk holds one document"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        make_instances(*one, [1, 2], **settings("nsp", 16))
    dataset = tf.data.Dataset.from_tensors(one).map(
        lambda *chunk: make_instances(*chunk, [1, 2], **settings("nsp", 16))
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        list(dataset)
    # SOP and none make instances from one document.
    assert len(make_instances(*one, [1, 2], **settings("sop", 16))["label"]) == 1
    assert len(make_instances(*one, [1, 2], **settings("none", 16))["label"]) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(word_starts=[1, 0]), "word_starts has 2 entries for 3 token ids"),
        (dict(sentence_lengths=[2]), "sentence_lengths add up to 2 tokens, token_ids has 3"),
        (dict(sentence_lengths=[4, -1]), r"sentence_lengths\[1\] is negative \(-1\)"),
        (
            dict(document_sentences=[2]),
            "document_sentences add up to 2 sentences, sentence_lengths has 1",
        ),
        (dict(seed=[1, 2, 3]), r"seed must have shape \[2\], got \[3\]"),
        (dict(token_ids=[[10, 11, 12]]), r"token_ids must be a vector, got shape \[1,3\]"),
        (
            dict(max_seq_length=4),
            r"max_seq_length must be in \[5, 2147483647\] for sentence_task sop",
        ),
        (dict(short_seq_prob=2.0), r"short_seq_prob must be in \[0, 1\], got 2"),
        (dict(cls_id=2**31), r"cls_id must be an int32 token id in \[0, 2147483647\]"),
        (dict(sentence_task="xyz"), "sentence_task"),
    ],
)
def test_invalid_inputs_are_named(change: dict, message: str):
    arguments = dict(
        token_ids=[10, 11, 12],
        word_starts=[1, 0, 1],
        sentence_lengths=[3],
        document_sentences=[1],
        seed=[1, 2],
        **settings("sop", 8),
    )
    arguments.update(change)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        make_instances(**arguments)


def test_docstring_example_runs():
    result = doctest.testmod(instances, extraglobs={"make_instances": make_instances})
    assert result.attempted > 0 and result.failed == 0
