"""One work unit's records as a tf.data pipeline.

  pieces ─interleave(read, split, tokenize: a Python generator, the one crossing)─> chunks
    ─cache(disk)─> every dupe pass: chunks with their neighbours (NSP's pool) ─enumerate─>
    ─map(MakeInstances, NgramMask, EncodeExamples)─> framed records ─prefetch─> the writer

Every draw is stateless and keyed: instances by (unit, pass, chunk), masks by (unit, pass,
chunk, row), so a unit's records depend only on its pieces' bytes, the config and the seed,
whatever the parallelism. Errors raised while reading (a DataError naming file and line) come
out of the pipeline re-wrapped by TensorFlow; `errors.from_tf_error` gives them back.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
from pretrain_records.pipeline import chunks, documents, features, sentences, testhooks
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.documents import Piece, ReadStats
from pretrain_records.pipeline.tokenize import Tokenizer

CYCLE_LENGTH = 2  # pieces read at once (their documents interleave, deterministically)
ROWS_PER_CHUNK_BITS = 24  # mask seeds: row i of chunk c draws (seed, c << 24 | i)

_CHUNK_SIGNATURE = (
    tf.TensorSpec([None], tf.int32),  # token ids
    tf.TensorSpec([None], tf.int8),  # word starts
    tf.TensorSpec([None], tf.int32),  # sentence lengths
    tf.TensorSpec([None], tf.int32),  # sentences per document
    tf.TensorSpec([], tf.int64),  # input bytes
    tf.TensorSpec([5], tf.int64),  # reading statistics (ReadStats, in field order)
    tf.TensorSpec([], tf.int32),  # the piece (of the unit) the chunk comes from
)


@dataclasses.dataclass(frozen=True)
class UnitSeeds:
    """Per dupe pass: the seed of its instance draws and of its mask draws."""

    instances: tuple[int, ...]
    masks: tuple[int, ...]


def document_chunks(
    pieces: tuple[Piece, ...],
    piece_bytes: tuple[int, ...],
    config: BuildConfig,
    tokenizer: Tokenizer,
) -> tf.data.Dataset:
    """Pieces read (interleaved), split into sentences and tokenized in chunks."""
    split = sentences.make_splitter(config.language)

    def generate(index: Any) -> Iterator[chunks.Chunk]:
        piece = pieces[int(index)]
        stats = ReadStats()
        read = documents.read_documents(
            piece, config.input_format, split, stats, config.jsonl_field, config.bad_lines
        )
        for chunk in chunks.piece_chunks(read, tokenizer, stats, piece_bytes[int(index)]):
            testhooks.point("chunk")
            yield (*chunk, np.int32(index))

    read_piece = tf.autograph.experimental.do_not_convert(
        lambda i: tf.data.Dataset.from_generator(
            generate, args=(i,), output_signature=_CHUNK_SIGNATURE
        )
    )
    return tf.data.Dataset.range(len(pieces)).interleave(
        read_piece,
        cycle_length=min(CYCLE_LENGTH, len(pieces)),
        num_parallel_calls=min(CYCLE_LENGTH, len(pieces)),
        deterministic=True,
    )


def _with_neighbours(chunked: tf.data.Dataset) -> tf.data.Dataset:
    """Each chunk with its neighbours' documents around it: (ids, starts, sentence lengths,
    sentences per document) of [previous, chunk, next], the chunk's document range in them, and
    its (input bytes, statistics, piece). The neighbours are the pool NSP draws random segments
    from, so a chunk of one document still has others to draw from."""
    empty = (
        tf.zeros([0], tf.int32),
        tf.zeros([0], tf.int8),
        tf.zeros([0], tf.int32),
        tf.zeros([0], tf.int32),
    )
    no_meta = (tf.constant(0, tf.int64), tf.zeros([5], tf.int64), tf.constant(0, tf.int32))
    end = tf.data.Dataset.from_tensors((*empty, *no_meta))
    marked = chunked.map(_mark(False)).concatenate(end.map(_mark(True)))
    initial = (empty, empty, no_meta, tf.constant(False))

    def step(state: Any, element: Any) -> Any:
        previous, current, meta, has_current = state
        chunk, chunk_meta, is_end = element[:4], element[4:7], element[7]
        context = tuple(
            tf.concat([a, b, c], 0) for a, b, c in zip(previous, current, chunk, strict=True)
        )
        first = tf.shape(previous[3], out_type=tf.int64)[0]
        span = tf.stack([first, first + tf.shape(current[3], out_type=tf.int64)[0]])
        out = (has_current, context, span, meta)
        # A chunk without documents (a piece's closing statistics, an empty file) is passed on
        # at once and takes no neighbour's place.
        alone = (tf.constant(True), empty, tf.zeros([2], tf.int64), chunk_meta)
        advanced = (current, chunk, chunk_meta, tf.constant(True))
        return tf.case(
            [
                (is_end, lambda: (state, out)),
                (tf.equal(tf.size(chunk[3]), 0), lambda: (state, alone)),
            ],
            default=lambda: (advanced, out),
        )

    neighboured = marked.scan(initial, tf.autograph.experimental.do_not_convert(step))
    return neighboured.filter(lambda has, *_: has).map(lambda has, *rest: tuple(rest))


def _mark(is_end: bool) -> Any:
    return tf.autograph.experimental.do_not_convert(lambda *t: (*t, tf.constant(is_end)))


def unit_records(
    pieces: tuple[Piece, ...],
    piece_bytes: tuple[int, ...],
    config: BuildConfig,
    tokenizer: Tokenizer,
    seeds: UnitSeeds,
    cache_path: str,
) -> tf.data.Dataset:
    """The unit's records: elements (framed records [n], input bytes, statistics [5], piece);
    the statistics are those of the first pass only (later passes re-read the cache)."""
    cached = document_chunks(pieces, piece_bytes, config, tokenizer).cache(cache_path)
    instance_seeds = tf.constant(seeds.instances, tf.int64)
    mask_seeds = tf.constant(seeds.masks, tf.int64)
    to_records = records_function(
        config,
        tokenizer.special_ids,
        tokenizer.mask_id,
        tokenizer.vocab_size,
        tokenizer.cls_id,
        tokenizer.sep_id,
    )

    def one_pass(dupe_pass: tf.Tensor) -> tf.data.Dataset:
        return (
            _with_neighbours(cached).enumerate().map(lambda index, chunk: (dupe_pass, index, chunk))
        )

    def convert(dupe_pass: tf.Tensor, index: tf.Tensor, chunk: Any) -> Any:
        context, span, (size, stats, piece) = chunk
        instance_seed = tf.stack([instance_seeds[dupe_pass], index])
        mask_seed = tf.stack([mask_seeds[dupe_pass], index * (1 << ROWS_PER_CHUNK_BITS)])
        records = to_records(*context, span, instance_seed, mask_seed)
        return records, size, stats * tf.cast(dupe_pass == 0, tf.int64), piece

    passes = tf.data.Dataset.range(len(seeds.instances))
    numbered = passes.flat_map(tf.autograph.experimental.do_not_convert(one_pass))
    records = numbered.map(
        tf.autograph.experimental.do_not_convert(convert),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return records.prefetch(2)


@functools.lru_cache(maxsize=8)
def records_function(
    config: BuildConfig,
    special_ids: tuple[int, ...],
    mask_id: int,
    vocab_size: int,
    cls_id: int,
    sep_id: int,
) -> Any:
    """Chunk -> framed records: MakeInstances, NgramMask (static masking), EncodeExamples.
    Traced once per setting and shared by every unit of a build."""
    from pretrain_records.ops import make_instances

    vector = functools.partial(tf.TensorSpec, [None])
    signature = [
        vector(tf.int32),
        vector(tf.int8),
        vector(tf.int32),
        vector(tf.int32),
        tf.TensorSpec([2], tf.int64),
        tf.TensorSpec([2], tf.int64),
        tf.TensorSpec([2], tf.int64),
    ]

    @tf.function(input_signature=signature, autograph=False)
    def to_records(ids, starts, lengths, sentences, span, instance_seed, mask_seed):  # type: ignore[no-untyped-def]
        batch = make_instances(
            ids,
            starts,
            lengths,
            sentences,
            instance_seed,
            documents=span,
            max_seq_length=config.max_seq_length,
            short_seq_prob=config.short_seq_prob,
            sentence_task=config.sentence_task,
            cls_id=cls_id,
            sep_id=sep_id,
        )
        if config.masking == "static":
            batch = {
                **batch,
                **features.mask_padded(
                    batch["input_ids"],
                    batch["token_boundary"],
                    batch["length"],
                    mask_seed,
                    config,
                    special_ids,
                    mask_id,
                    vocab_size,
                ),
            }
        return features.encode_batch(batch, config, tfrecord_frame=True)

    return to_records
