"""The build: input files -> work units -> tf.data -> masked, serialized, sharded records.

A work unit is a group of input files; its shards depend only on its files' bytes, the config
and the seed (every random draw is keyed by the unit's key, not by its position), which is what
lets a rerun reuse the shards of unchanged units.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from pretrain_records.pipeline import features, manifest, sources, tokenize
from pretrain_records.pipeline.config import BuildConfig, to_yaml
from pretrain_records.pipeline.instances import (
    InstanceSettings,
    RandomDocumentPool,
    document_rng,
    instances_from_document,
)
from pretrain_records.pipeline.writer import ShardInfo, ShardWriter, shard_name

TARGET_SHARD_BYTES = 128 << 20
UNIT_INPUT_BYTES = 64 << 20  # `text` files are grouped into units of about this size
SHUFFLE_BUFFER = 10_000  # instances shuffled within a unit, in a bounded buffer
WORK_DIR = ".work"

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Unit:
    key: int  # 63-bit, from the unit's file names: stable when other files come and go
    files: tuple[sources.InputFile, ...]
    shards: int

    @property
    def input_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _key(*parts: Any) -> int:
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def group_units(
    files: list[sources.InputFile], config: BuildConfig
) -> list[list[sources.InputFile]]:
    """One unit per file, except `text` (one document per file): files grouped by a
    content-defined rule on their names, so adding or removing a file changes one unit."""
    if config.input_format != "text":
        return [[f] for f in files]
    units: list[list[sources.InputFile]] = []
    current: list[sources.InputFile] = []
    size = 0
    for f in files:
        boundary = zlib.crc32(os.path.basename(f.path).encode()) % 8 == 0
        if current and len(current) >= 2 and (boundary or size >= UNIT_INPUT_BYTES):
            units.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        units.append(current)
    return units


def _estimated_record_bytes(f: sources.InputFile, config: BuildConfig) -> float:
    compressed = f.path.endswith((".gz", ".bz2"))
    expansion = 2.0 * (3.0 if compressed else 1.0)
    passes = config.dupe_factor if config.masking == "static" else 1
    return f.size * expansion * passes


def plan(files: list[sources.InputFile], config: BuildConfig) -> list[Unit]:
    """Work units and their shard counts (`num_shards` auto, or a total split by size)."""
    groups = group_units(files, config)
    estimates = [sum(_estimated_record_bytes(f, config) for f in g) for g in groups]
    if config.num_shards == "auto":
        counts = [max(1, math.ceil(e / TARGET_SHARD_BYTES)) for e in estimates]
    else:
        total = int(config.num_shards)
        if total < len(groups):
            raise sources.SourceError(
                f"num_shards {total} is fewer than the {len(groups)} work units of these inputs "
                "(one per file, `text` files grouped): use num_shards auto or a larger number"
            )
        counts = _largest_remainder([max(e, 1.0) for e in estimates], total)
    return [
        Unit(key=_key(*(os.path.basename(f.path) for f in g), len(g)), files=tuple(g), shards=c)
        for g, c in zip(groups, counts, strict=True)
    ]


def _largest_remainder(weights: list[float], total: int) -> list[int]:
    """`total` split proportionally to `weights`, at least 1 each."""
    spare = total - len(weights)
    exact = [w / sum(weights) * spare for w in weights]
    counts = [1 + int(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - int(exact[i])), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _document_dataset(
    unit: Unit,
    config: BuildConfig,
    tokenizer: tokenize.Tokenizer,
    stats: sources.ReadStats,
    failures: list[BaseException],
    cache_path: str,
) -> Any:
    """tf.data: files interleaved -> documents read and tokenized (batched per document) ->
    cached on disk, so every dupe pass reuses the tokenized text."""
    import tensorflow as tf

    splitter = sources.make_splitter(config.language)
    word_start = tokenizer.word_start

    def generate(path: bytes) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        try:
            for document in sources.read_documents(
                path.decode(),
                config.input_format,
                splitter,
                stats,
                config.jsonl_field,
                config.bad_lines,
            ):
                encoded = [ids for ids in tokenizer.encode(document) if ids]
                if not encoded:
                    continue
                ids = np.fromiter((i for s in encoded for i in s), np.int32)
                yield ids, word_start[ids], np.array([len(s) for s in encoded], np.int32)
        except BaseException as error:  # re-raised by the caller, with its own message
            failures.append(error)
            raise

    signature = (
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int8),
        tf.TensorSpec([None], tf.int32),
    )
    paths = tf.data.Dataset.from_tensor_slices([f.path for f in unit.files])
    documents = paths.interleave(
        lambda p: tf.data.Dataset.from_generator(generate, args=(p,), output_signature=signature),
        cycle_length=min(2, len(unit.files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return documents.cache(cache_path).prefetch(4)


def _documents(dataset: Any) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
    for ids, flags, lengths in dataset.as_numpy_iterator():
        cuts = np.cumsum(lengths)[:-1]
        yield list(zip(np.split(ids, cuts), np.split(flags, cuts), strict=True))


def _instances(
    unit: Unit, config: BuildConfig, tokenizer: tokenize.Tokenizer, documents: Any
) -> Iterator[dict[str, np.ndarray]]:
    settings = InstanceSettings(
        max_seq_length=config.max_seq_length,
        short_seq_prob=config.short_seq_prob,
        sentence_task=config.sentence_task,
        cls_id=tokenizer.cls_id,
        sep_id=tokenizer.sep_id,
    )
    passes = config.dupe_factor if config.masking == "static" else 1
    for dupe_pass in range(passes):
        stream = _documents(documents)
        pool = RandomDocumentPool(stream) if config.sentence_task == "nsp" else None
        for index, document in enumerate(pool if pool is not None else stream):
            rng = document_rng(config.seed, unit.key, dupe_pass, index)
            for instance in instances_from_document(document, pool, rng, settings):
                yield features.pad_instance(instance, config.max_seq_length)


def _unit_records(
    unit: Unit,
    config: BuildConfig,
    tokenizer: tokenize.Tokenizer,
    stats: sources.ReadStats,
    failures: list[BaseException],
    work_dir: str,
) -> Iterator[bytes]:
    """Serialized records of one unit, in their deterministic order."""
    import tensorflow as tf

    cache = os.path.join(work_dir, f"unit-{unit.key:016x}")
    documents = _document_dataset(unit, config, tokenizer, stats, failures, cache)
    signature = features.padded_signature(config.max_seq_length)
    instances = tf.data.Dataset.from_generator(
        lambda: _capturing(_instances(unit, config, tokenizer, documents), failures),
        output_signature=signature,
    )
    shuffle_seed = _key("shuffle", config.seed, unit.key)
    batches = instances.shuffle(
        SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=False
    ).batch(features.MASK_BATCH)
    if config.masking == "static":
        batches = features.mask_batches(
            batches.enumerate(),
            config,
            tokenizer.special_ids,
            tokenizer.mask_id,
            tokenizer.vocab_size,
            seed0=_key("mask", config.seed, unit.key),
        )
    for batch in batches.prefetch(2).as_numpy_iterator():
        yield from features.serialize(batch, config)


def _capturing(items: Iterator[Any], failures: list[BaseException]) -> Iterator[Any]:
    """Records an exception raised inside a tf.data generator, which TF would re-wrap."""
    try:
        yield from items
    except BaseException as error:
        failures.append(error)
        raise


def _raise_first(failures: list[BaseException], error: BaseException) -> None:
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

    return tokenize.train(sentences(), config.vocab_size, config.seed)


def run(
    inputs: list[str],
    out: str,
    config: BuildConfig,
    *,
    dry_run: bool = False,
    log: Log = lambda message: None,
    on_record: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Builds the records; returns the summary (also the manifest's core)."""
    from pretrain_records.cli.version import VERSION

    started = time.monotonic()
    paths = sources.expand_inputs(inputs)
    files = [sources.fingerprint(p) for p in paths]
    units = plan(files, config)
    total_shards = sum(u.shards for u in units)
    log(f"{len(files)} input files, {len(units)} work units, {total_shards} shards")
    if dry_run:
        return {
            "status": "dry-run",
            "output": out,
            "inputs": len(files),
            "units": len(units),
            "shards": [
                shard_name(i, total_shards, config.compression) for i in range(total_shards)
            ],
        }

    os.makedirs(out, exist_ok=True)
    work_dir = os.path.join(out, WORK_DIR)
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    stats = sources.ReadStats()
    if config.spm_model:
        tokenizer = tokenize.Tokenizer.load(config.spm_model)
        vocab = "".join(
            f"{tokenizer.processor.id_to_piece(i)}\t{tokenizer.processor.get_score(i):g}\n"
            for i in range(tokenizer.vocab_size)
        ).encode()
    else:
        log(f"training a SentencePiece model (vocab_size {config.vocab_size}) on the input")
        proto, vocab = train_tokenizer_on(paths, config, sources.ReadStats())
        tokenizer = tokenize.Tokenizer(proto, name="trained model")
        if tokenizer.vocab_size < config.vocab_size:
            log(
                f"warning: the corpus supports only {tokenizer.vocab_size} pieces "
                f"(vocab_size {config.vocab_size} asked)"
            )
    _publish_bytes(out, "spm.model", tokenizer.model_proto)
    _publish_bytes(out, "spm.vocab", vocab)
    _publish_bytes(out, "config.yaml", to_yaml(config).encode())

    shards: list[ShardInfo] = []
    failures: list[BaseException] = []
    first = 0
    import tensorflow as tf

    for unit in units:
        writers = [
            ShardWriter(
                out, shard_name(first + k, total_shards, config.compression), config.compression
            )
            for k in range(unit.shards)
        ]
        try:
            for j, record in enumerate(
                _unit_records(unit, config, tokenizer, stats, failures, work_dir)
            ):
                writers[j % unit.shards].write(record)
                if on_record is not None:
                    on_record(1)
            shards.extend(w.close() for w in writers)
        except tf.errors.OpError as error:
            for w in writers:
                w.abort()
            _raise_first(failures, error)
        except BaseException:
            for w in writers:
                w.abort()
            raise
        first += unit.shards
        log(f"unit {unit.key:016x}: {sum(w.records for w in writers)} records")
    shutil.rmtree(work_dir, ignore_errors=True)

    records = sum(s.records for s in shards)
    if records == 0:
        raise sources.DataError(
            f"no instances could be made from {len(files)} input files "
            f"({stats.documents} documents): is the input empty or the wrong input_format?"
        )
    summary: dict[str, Any] = {
        "status": "ok",
        "output": out,
        "records": records,
        "documents": stats.documents,
        "skipped": {
            "empty_documents": stats.empty_documents,
            "empty_files": stats.empty_files,
            "bad_lines": stats.skipped_lines,
            "split_long_lines": stats.split_long_lines,
        },
        "shards": len(shards),
        "seconds": round(time.monotonic() - started, 3),
    }
    manifest.write(
        out,
        {
            "format": manifest.FORMAT,
            "tool": "make-pretrain-records",
            "version": VERSION,
            "config": config.to_dict(),
            "inputs": [dataclasses.asdict(f) for f in files],
            "units": [
                {"key": f"{u.key:016x}", "files": [f.path for f in u.files], "shards": u.shards}
                for u in units
            ],
            "tokenizer": {
                "file": "spm.model",
                "sha256": hashlib.sha256(tokenizer.model_proto).hexdigest(),
                "vocab_size": tokenizer.vocab_size,
                "cls_id": tokenizer.cls_id,
                "sep_id": tokenizer.sep_id,
                "mask_id": tokenizer.mask_id,
                "special_ids": list(tokenizer.special_ids),
            },
            "features": features.feature_spec(config),
            "shards": [s.to_dict() for s in shards],
            "totals": {
                "records": records,
                "bytes": sum(s.bytes for s in shards),
                "documents": stats.documents,
            },
            "skipped": summary["skipped"],
        },
    )
    return summary


def _publish_bytes(directory: str, name: str, data: bytes) -> None:
    temp = os.path.join(directory, f".{name}.partial-{os.getpid()}")
    with open(temp, "wb") as stream:
        stream.write(data)
    os.replace(temp, os.path.join(directory, name))
