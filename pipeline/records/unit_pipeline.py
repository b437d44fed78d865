"""Work units' records as one tf.data pipeline (per process).

  slots ─interleave(2 units at a time)─┐
     a slot: claim the next unit, read its pieces, split and tokenize them in chunks (a Python
     generator, the one crossing) ─cache(memory)─repeat(dupe passes)─scan(each chunk with its
     neighbours: NSP's pool)─enumerate
  ─map(MakeInstances, NgramMask, EncodeExamples)─prefetch─> framed records, by unit

Units are claimed from a queue (`claim`) as the pipeline needs them, so worker processes share
the units dynamically, largest first, and one pipeline (its functions instantiated once) serves
every unit of a process. Every draw is stateless and keyed: instances by (unit, chunk number in
the unit's repeated stream), masks by (unit, chunk number, row), so a unit's records depend only
on its pieces' bytes, the config and the seed, never on which process built it nor on what it
was interleaved with. Errors raised while reading (a DataError naming file and line) come out
of the pipeline re-wrapped by TensorFlow; `errors.from_tf_error` gives them back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.ground import testhooks
from pretrain_records.pipeline.ground.machine import available_cores
from pretrain_records.pipeline.reading import documents, sentences
from pretrain_records.pipeline.reading.pieces import STATS_FIELDS, ReadStats
from pretrain_records.pipeline.records import chunks, features
from pretrain_records.pipeline.records.unit_job import UnitJob
from pretrain_records.pipeline.tokenizer.tokenize import Tokenizer

UNITS_AT_ONCE = 2  # units read at once (interleaved): one's Python work beside the other's ops
ROWS_PER_CHUNK_BITS = 24  # mask seeds: row i of chunk c draws (seed, c << 24 | i)

_ARRAYS = (
    tf.TensorSpec([None], tf.int32),  # token ids
    tf.TensorSpec([None], tf.int8),  # word starts
    tf.TensorSpec([None], tf.int32),  # sentence lengths
    tf.TensorSpec([None], tf.int32),  # sentences per document
)
_META = (
    tf.TensorSpec([], tf.int64),  # input bytes
    tf.TensorSpec([STATS_FIELDS], tf.int64),  # reading statistics (ReadStats, in field order)
    tf.TensorSpec([None], tf.int32),  # the piece (of the unit) of each document of the chunk
    # Read: the end of a pass over the unit (its closing chunk). Out of `_with_neighbours`:
    # the unit's last element.
    tf.TensorSpec([], tf.bool),
)
_CHUNK = (tf.TensorSpec([], tf.int64), *_ARRAYS, *_META)  # the unit's index first

Claim = Callable[[], int | None]  # the next unit to build (its index in the jobs), or None


def _unit_chunks(jobs: list[UnitJob], unit: int, tokenizer: Tokenizer) -> Iterator[tuple]:
    """Chunks of one unit's documents, whatever piece they come from, then an empty chunk
    closing the unit (the end of a pass over it) with the last reading statistics (see
    `chunks.unit_chunks`)."""
    job = jobs[unit]
    config = job.config
    split = sentences.make_splitter(config.language)
    stats = ReadStats()

    def documents_of_pieces() -> Iterator[chunks.Document]:
        for index, piece in enumerate(job.pieces):
            for document in documents.documents_of(piece, config, split, stats):
                yield document, index

    made = chunks.unit_chunks(documents_of_pieces(), tokenizer, stats, job.input_bytes)
    for chunk, closing in made:  # the closing chunk ends a pass over the unit
        testhooks.point("chunk")
        yield (np.int64(unit), *chunk, np.bool_(closing))


def claimed_chunks(jobs: list[UnitJob], claim: Claim, tokenizer: Tokenizer) -> tf.data.Dataset:
    """A slot's chunks: the unit it claims, read and tokenized; nothing when none is left."""

    def generate() -> Iterator[tuple]:
        unit = claim()
        if unit is not None:
            yield from _unit_chunks(jobs, unit, tokenizer)

    return tf.data.Dataset.from_generator(generate, output_signature=_CHUNK)


_STATE = (
    _ARRAYS,
    _ARRAYS,
    _CHUNK,
    tf.TensorSpec([], tf.bool),
    tf.TensorSpec([], tf.int64),
    tf.TensorSpec([], tf.bool),
)


@tf.function(input_signature=[_STATE, (_CHUNK, tf.TensorSpec([], tf.bool))], autograph=False)
def _neighbour_step(state: Any, element: Any) -> Any:
    """One step of the scan that gives each chunk its neighbours (see `_with_neighbours`);
    traced once per process. State: the previous chunk's arrays, the held chunk's arrays and
    element, whether one is held, the unit (-1 before the first element), and whether a pass
    over the unit ended after the held chunk."""
    previous, current, held, has_held, unit, pass_ended = state
    chunk, is_end = element
    arrays = chunk[1:5]
    empty = tuple(tf.zeros([0], spec.dtype) for spec in _ARRAYS)
    # Neighbours are taken within one pass: the next pass repeats the unit's chunks, so a
    # neighbour across the pass boundary could be a copy of the held chunk's own documents.
    following = tf.cond(pass_ended, lambda: empty, lambda: arrays)
    context = tuple(
        tf.concat([a, b, c], 0) for a, b, c in zip(previous, current, following, strict=True)
    )
    first = tf.shape(previous[3], out_type=tf.int64)[0]
    span = tf.stack([first, first + tf.shape(current[3], out_type=tf.int64)[0]])
    no_span = tf.zeros([2], tf.int64)
    last = (tf.constant(True),)
    not_last = (tf.constant(False),)
    # At the end: the held chunk, flagged as the unit's last; or, for a unit without documents,
    # an empty last element; or nothing, for a slot that claimed no unit.
    ending = tf.cond(
        has_held,
        lambda: (tf.constant(True), (*held[:-1], *last), context, span),
        lambda: (unit >= 0, (unit, *chunk[1:-1], *last), empty, no_span),
    )
    # A chunk without documents (a piece's closing statistics, an empty file) is passed on at
    # once and takes no neighbour's place; the last piece's one ends a pass.
    alone = (tf.constant(True), (*chunk[:-1], *not_last), empty, no_span)
    waiting = (previous, current, held, has_held, chunk[0], tf.logical_or(pass_ended, chunk[-1]))
    out = (has_held, held, context, span)
    before = tf.cond(pass_ended, lambda: empty, lambda: current)
    advanced = (before, arrays, chunk, tf.constant(True), chunk[0], tf.constant(False))
    return tf.case(
        [
            (is_end, lambda: (state, ending)),
            (tf.equal(tf.size(arrays[3]), 0), lambda: (waiting, alone)),
        ],
        default=lambda: (advanced, out),
    )


def _with_neighbours(chunked: tf.data.Dataset) -> tf.data.Dataset:
    """Each chunk (as it came) with the documents of [previous, chunk, next] of the same pass
    over the unit and the chunk's document range in them: NSP draws random segments from the
    neighbours too, so a chunk of one document still has others to draw from, and never a copy
    of its own documents made by another dupe pass. The unit's last element is flagged."""
    empty = tuple(tf.zeros([0], spec.dtype) for spec in _ARRAYS)
    nothing = tuple(tf.zeros([d or 0 for d in spec.shape], spec.dtype) for spec in _CHUNK)
    marked = chunked.map(_mark(False)).concatenate(
        tf.data.Dataset.from_tensors(nothing).map(_mark(True))
    )
    initial = (
        empty,
        empty,
        nothing,
        tf.constant(False),
        tf.constant(-1, tf.int64),
        tf.constant(False),
    )
    neighboured = marked.scan(
        initial,
        tf.autograph.experimental.do_not_convert(lambda s, e: _neighbour_step(s, e)),
    )
    return neighboured.filter(lambda has, *_: has).map(lambda has, *rest: tuple(rest))


def _mark(is_end: bool) -> Any:
    return tf.autograph.experimental.do_not_convert(lambda *t: (t, tf.constant(is_end)))


def units_records(
    jobs: list[UnitJob], claim: Claim, tokenizer: Tokenizer, threads: int | None = None
) -> tf.data.Dataset:
    """Records of the units this process claims: elements (unit index, framed records [n],
    input bytes, statistics [STATS_FIELDS], piece, the unit's last, tokens [2]: see
    `records_function`), units interleaved two at a time.

    A unit's chunks are cached in memory (its tokens: about 1.5 times its text) and every dupe
    pass re-reads them; element k of a unit's repeated stream draws its instances from (the
    unit's instance seed, k) and its masks from (its mask seed, k << 24 | row). `threads`
    bounds tf.data's threads (a worker process's share of the cores); None: all cores.

    Parallelism is fixed, so tf.data's autotuning is off: it would change nothing, and its
    model thread, asleep between optimization rounds, held up the iterator's destruction at the
    end of a worker's units by seconds (measured: 4-5 s of two idle workers in a 16 s build)."""
    threads = threads or available_cores()
    config = jobs[0].config
    passes = jobs[0].passes()
    seeds = tf.constant([job.seeds() for job in jobs], tf.int64)
    to_records = records_function(
        config,
        tokenizer.special_ids,
        tokenizer.mask_id,
        tokenizer.vocab_size,
        tokenizer.cls_id,
        tokenizer.sep_id,
    )

    def one_slot(_: tf.Tensor) -> tf.data.Dataset:
        chunked = claimed_chunks(jobs, claim, tokenizer).cache().repeat(passes)
        return _with_neighbours(chunked).enumerate()

    def convert(index: tf.Tensor, neighboured: Any) -> Any:
        chunk, context, span = neighboured
        unit, size, stats, document_pieces, last = chunk[0], chunk[5], chunk[6], chunk[7], chunk[8]
        records, tokens, row_documents = to_records(*context, span, seeds[unit], index)
        # Each record's piece of the unit: its document's, a document of the chunk's own range.
        pieces = tf.gather(document_pieces, row_documents - tf.cast(span[0], tf.int32))
        return unit, records, size, stats, pieces, last, tokens

    slots = tf.data.Dataset.range(len(jobs)).interleave(
        tf.autograph.experimental.do_not_convert(one_slot),
        cycle_length=UNITS_AT_ONCE,
        num_parallel_calls=UNITS_AT_ONCE,
        deterministic=True,
    )
    records = slots.map(
        tf.autograph.experimental.do_not_convert(convert),
        num_parallel_calls=threads,
        deterministic=True,
    ).prefetch(2)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads + UNITS_AT_ONCE
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    return records.with_options(options)


@functools.lru_cache(maxsize=8)
def records_function(
    config: BuildConfig,
    special_ids: tuple[int, ...],
    mask_id: int,
    vocab_size: int,
    cls_id: int,
    sep_id: int,
) -> Any:
    """Chunk -> (framed records, tokens [2]): MakeInstances, NgramMask (static masking),
    EncodeExamples. Tokens, int64, for the build's token accounting: (input: the tokens of the
    chunk's own documents, `span` of the context, never its NSP neighbours'; own: the tokens
    its records carry from those documents, the op's `own_tokens`). Every dupe pass sees the
    chunk again: the same input each time, own as that pass's draws (truncation) give it.
    Traced once per setting and process."""
    from pretrain_records.ops import make_instances

    vector = functools.partial(tf.TensorSpec, [None])
    signature = [
        vector(tf.int32),
        vector(tf.int8),
        vector(tf.int32),
        vector(tf.int32),
        tf.TensorSpec([2], tf.int64),  # the chunk's documents in the context
        tf.TensorSpec([2], tf.int64),  # the unit's seeds: instances, masks
        tf.TensorSpec([], tf.int64),  # the chunk's number in the unit's stream
    ]

    @tf.function(input_signature=signature, autograph=False)
    def to_records(ids, starts, lengths, sentences, span, unit_seeds, index):  # type: ignore[no-untyped-def]
        instance_seed = tf.stack([unit_seeds[0], index])
        mask_seed = tf.stack([unit_seeds[1], index * (1 << ROWS_PER_CHUNK_BITS)])
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
        tokens = tf.stack([_span_tokens(lengths, sentences, span), _own_tokens(batch)])
        records = features.encode_batch(batch, config, tfrecord_frame=True)
        return records, tokens, batch["document"]

    return to_records


def _span_tokens(lengths: tf.Tensor, sentences: tf.Tensor, span: tf.Tensor) -> tf.Tensor:
    """Tokens of documents [span[0], span[1]) of a context (its sentence lengths, sentences per
    document), int64: the input the chunk's instances were made of."""
    zero = tf.zeros([1], tf.int64)
    sentence_starts = tf.concat([zero, tf.cumsum(tf.cast(sentences, tf.int64))], 0)
    token_starts = tf.concat([zero, tf.cumsum(tf.cast(lengths, tf.int64))], 0)
    bounds = tf.gather(token_starts, tf.gather(sentence_starts, span))
    return bounds[1] - bounds[0]


def _own_tokens(batch: dict[str, tf.Tensor]) -> tf.Tensor:
    """The tokens a chunk's rows carry from their own documents, int64."""
    return tf.reduce_sum(tf.cast(batch["own_tokens"], tf.int64))
