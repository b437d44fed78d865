"""The records of one work unit: the tf.data pipeline from its files to staged shards.

files interleaved -> documents read and tokenized -> cache on disk (reused by every dupe pass)
-> instances, shuffled and batched (C++) -> NgramMask -> EncodeExamples -> shards
staged in OUT/.mpr/units (temp file + rename; a units/<fingerprint>.json marks a complete unit).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import numpy as np
from pretrain_records.pipeline import chunks, features, sources, state, tokenize
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.instances import Documents, instance_batches
from pretrain_records.pipeline.units import Unit, key_of
from pretrain_records.pipeline.writer import ShardWriter

Log = Callable[[str], None]


def _document_dataset(
    unit: Unit,
    config: BuildConfig,
    tokenizer: tokenize.Tokenizer,
    stats: sources.ReadStats,
    failures: list[BaseException],
    cache_path: str,
) -> Any:
    """tf.data: files interleaved -> documents read and tokenized in chunks -> cached on disk,
    so every dupe pass reuses the tokenized text. An element is a chunk of documents (see
    `chunks`): per-element costs are paid per chunk, not per document."""
    import tensorflow as tf

    splitter = sources.make_splitter(config.language)

    def generate(path: bytes) -> Iterator[Documents]:
        try:
            documents = sources.read_documents(
                path.decode(),
                config.input_format,
                splitter,
                stats,
                config.jsonl_field,
                config.bad_lines,
            )
            for chunk in chunks.chunked(documents, on_document=lambda: checkpoint("tokenizing")):
                yield chunks.tokenize_chunk(chunk, tokenizer)
        except BaseException as error:  # re-raised by the caller, with its own message
            failures.append(error)
            raise

    signature = (
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int8),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int32),
    )
    paths = tf.data.Dataset.from_tensor_slices([f.path for f in unit.files])
    # Not converted by AutoGraph: tracing these plain functions then costs milliseconds, not
    # a large share of a small build.
    documents = paths.interleave(
        tf.autograph.experimental.do_not_convert(
            lambda p: tf.data.Dataset.from_generator(
                generate, args=(p,), output_signature=signature
            )
        ),
        cycle_length=min(2, len(unit.files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return documents.cache(cache_path).prefetch(4)


def _unit_records(
    unit: Unit,
    config: BuildConfig,
    tokenizer: tokenize.Tokenizer,
    stats: sources.ReadStats,
    failures: list[BaseException],
    work_dir: str,
) -> Iterator[np.ndarray]:
    """Batches of one unit's records (TFRecord frames), in their deterministic order."""
    import tensorflow as tf

    cache = os.path.join(work_dir, f"unit-{unit.key:016x}")
    documents = _document_dataset(unit, config, tokenizer, stats, failures, cache)
    signature = features.batch_signature(config.max_seq_length)

    def batches_of_unit() -> Iterator[dict[str, np.ndarray]]:
        yield from instance_batches(
            documents.as_numpy_iterator,
            config,
            tokenizer.cls_id,
            tokenizer.sep_id,
            seed=key_of("instances", config.seed, unit.key),
            shuffle_seed=key_of("shuffle", config.seed, unit.key),
            batch_size=features.MASK_BATCH,
        )

    batches = tf.data.Dataset.from_generator(
        lambda: _capturing(batches_of_unit(), failures), output_signature=signature
    )
    records = features.record_batches(
        batches.enumerate(),
        config,
        tokenizer.special_ids,
        tokenizer.mask_id,
        tokenizer.vocab_size,
        seed0=key_of("mask", config.seed, unit.key),
    )
    yield from records.prefetch(2).as_numpy_iterator()


def _capturing(items: Iterator[Any], failures: list[BaseException]) -> Iterator[Any]:
    """Records an exception raised inside a tf.data generator, which TF would re-wrap."""
    try:
        yield from items
    except BaseException as error:
        failures.append(error)
        raise


def _raise_first(failures: list[BaseException], error: BaseException) -> NoReturn:
    if failures:
        raise failures[0] from None
    raise error


def train_tokenizer_on(
    paths: list[str], config: BuildConfig, stats: sources.ReadStats
) -> tuple[bytes, bytes]:
    """Trains a SentencePiece model on the sentences of `paths`."""
    splitter = sources.make_splitter(config.language)

    def sentences() -> Iterator[str]:
        for path in paths:
            for document in sources.read_documents(
                path, config.input_format, splitter, stats, config.jsonl_field, config.bad_lines
            ):
                yield from document

    stream = sentences()
    first = next(stream, None)
    if first is None:
        raise sources.DataError(
            f"no text to build from: the {len(paths)} input files hold no sentences "
            f"(empty files: {stats.empty_files}); is the input empty or its input_format wrong?"
        )
    return tokenize.train(itertools.chain([first], stream), config.vocab_size, config.seed)


_checkpoints: dict[str, int] = {}


def checkpoint(name: str) -> None:
    """Test hook: with MPR_PAUSE_AT=name (or name#n, the n-th time), announce the point on
    stderr and wait there to be killed."""
    wanted = os.environ.get("MPR_PAUSE_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition("#")
    if point != name:
        return
    _checkpoints[name] = _checkpoints.get(name, 0) + 1
    if _checkpoints[name] == int(nth or 1):
        import sys

        print(f"MPR-PAUSED {name}", file=sys.stderr, flush=True)
        time.sleep(3600)


def _drop_cache(cache_dir: str, unit: Unit) -> None:
    """Removes the unit's tf.data cache files."""
    for name in os.listdir(cache_dir):
        if name.startswith(f"unit-{unit.key:016x}"):
            os.remove(os.path.join(cache_dir, name))


def build_unit(
    unit: Unit,
    fp: str,
    config: BuildConfig,
    tokenizer: tokenize.Tokenizer,
    out: str,
    on_record: Callable[[int], None] | None,
) -> dict[str, Any]:
    """Writes a unit's shards into staging; returns its record (also saved as units/<fp>.json)."""
    import tensorflow as tf

    units_dir = state.private_dir(out, "units")
    cache_dir = state.private_dir(out, "cache")
    os.makedirs(cache_dir, exist_ok=True)
    _drop_cache(cache_dir, unit)  # a killed run's cache may be incomplete
    stats = sources.ReadStats()
    failures: list[BaseException] = []
    writers = [ShardWriter(units_dir, f"{fp}-{k}", config.compression) for k in range(unit.shards)]
    try:
        written = 0
        for batch in _unit_records(unit, config, tokenizer, stats, failures, cache_dir):
            # Records go round-robin over the unit's shards: record j to shard j % shards.
            for k, writer in enumerate(writers):
                rows = batch[(k - written) % unit.shards :: unit.shards]
                writer.write(b"".join(rows), len(rows))
            if written <= 50 < written + len(batch):
                checkpoint("shard")
            written += len(batch)
            if on_record is not None:
                on_record(len(batch))
            if _parent_pid is not None and os.getppid() != _parent_pid:
                raise SystemExit("the build that started this worker is gone")
        infos = [w.close() for w in writers]
    except BaseException as error:
        for w in writers:
            w.abort()
        if isinstance(error, tf.errors.OpError):  # TF re-wraps errors of our generators
            _raise_first(failures, error)
        raise
    _drop_cache(cache_dir, unit)
    record = {
        "fingerprint": fp,
        "staged": [i.to_dict() for i in infos],
        "stats": dataclasses.asdict(stats),
    }
    state.write_json(os.path.join(units_dir, f"{fp}.json"), record)
    return record


def build_in_processes(
    pending: dict[str, Unit],
    out: str,
    config: BuildConfig,
    model: bytes,
    workers: int,
    log: Log,
) -> None:
    """Builds units in parallel worker processes (spawned: TensorFlow does not survive fork)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    count = min(workers, len(pending))
    log(f"building {len(pending)} units in {count} worker processes")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(count, mp_context=context) as pool:
        futures = [
            pool.submit(build_unit_in_worker, unit, fp, config, model, out, os.getpid())
            # Largest first: the long units start early, small ones fill the gaps.
            for fp, unit in sorted(
                pending.items(), key=lambda item: (-item[1].input_bytes, item[0])
            )
        ]
        for future in as_completed(futures):
            future.result()  # re-raises a worker's error here


def build_unit_in_worker(
    unit: Unit, fp: str, config: BuildConfig, model: bytes, out: str, parent: int
) -> None:
    global _parent_pid
    _parent_pid = parent
    build_unit(unit, fp, config, tokenize.Tokenizer(model, name="spm.model"), out, None)


_parent_pid: int | None = None


def staged_record(out: str, fp: str) -> dict[str, Any] | None:
    """The record of a unit whose shards are complete in staging, else None."""
    done = state.read_json(state.private_dir(out, "units", f"{fp}.json")) or {}
    if "staged" in done and all(
        os.path.exists(state.private_dir(out, "units", s["name"])) for s in done["staged"]
    ):
        return done
    return None
