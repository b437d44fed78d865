"""The build: input files -> work units -> tf.data -> masked, serialized, sharded records.

A work unit is a group of input files; its shards depend only on its files' bytes, the config
and the seed (every random draw is keyed by the unit's key, not by its position), which is what
lets a rerun reuse the shards of unchanged units.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from pretrain_records.pipeline import features, manifest, sources, state, tokenize
from pretrain_records.pipeline.config import BuildConfig, ConfigError, to_yaml
from pretrain_records.pipeline.instances import (
    InstanceSettings,
    RandomDocumentPool,
    document_rng,
    instances_from_document,
)
from pretrain_records.pipeline.writer import ShardWriter, shard_name

TARGET_SHARD_BYTES = 128 << 20
UNIT_INPUT_BYTES = 16 << 20  # `text` files are grouped into units of at most about this size
SHUFFLE_BUFFER = 10_000  # instances shuffled within a unit, in a bounded buffer

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
        boundary = zlib.crc32(os.path.basename(f.path).encode()) % 4 == 0
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
                _checkpoint("tokenizing")
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
) -> Iterator[Any]:
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
            yield from instances_from_document(document, pool, rng, settings)


def _shuffled(items: Iterator[Any], seed: int, buffer_size: int) -> Iterator[Any]:
    """A bounded, seeded shuffle buffer (as tf.data's shuffle, without its per-element cost)."""
    rng = np.random.Generator(np.random.Philox(key=[seed, 0]))
    buffer: list[Any] = []
    draws: list[int] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        if not draws:
            draws = rng.integers(0, buffer_size, size=4096).tolist()[::-1]
        j = draws.pop()
        buffer[j], item = item, buffer[j]
        yield item
    for j in rng.permutation(len(buffer)).tolist():
        yield buffer[j]


def _batches(items: Iterator[Any], length: int, size: int) -> Iterator[dict[str, np.ndarray]]:
    """Padded batches of up to `size` instances (the last one may be smaller)."""
    chunk: list[Any] = []
    for item in itertools.chain(items, [None]):
        if item is not None:
            chunk.append(item)
        if chunk and (len(chunk) == size or item is None):
            yield features.pad_batch(chunk, length)
            chunk = []


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
    signature = features.batch_signature(config.max_seq_length)
    shuffle_seed = _key("shuffle", config.seed, unit.key)

    def batches_of_unit() -> Iterator[dict[str, np.ndarray]]:
        instances = _instances(unit, config, tokenizer, documents)
        shuffled = _shuffled(instances, shuffle_seed, SHUFFLE_BUFFER)
        yield from _batches(shuffled, config.max_seq_length, features.MASK_BATCH)

    batches = tf.data.Dataset.from_generator(
        lambda: _capturing(batches_of_unit(), failures), output_signature=signature
    )
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

    stream = sentences()
    first = next(stream, None)
    if first is None:
        raise sources.DataError(
            f"no text to build from: the {len(paths)} input files hold no sentences "
            f"(empty files: {stats.empty_files}); is the input empty or its input_format wrong?"
        )
    return tokenize.train(itertools.chain([first], stream), config.vocab_size, config.seed)


_checkpoints: dict[str, int] = {}


def _checkpoint(name: str) -> None:
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


def _unit_fingerprint(unit: Unit, config: BuildConfig, tokenizer_sha: str) -> str:
    settings = {k: v for k, v in config.to_dict().items() if k != "bad_lines"}
    return hashlib.sha256(
        json.dumps(
            {
                "format": manifest.FORMAT,
                "config": settings,
                "tokenizer": tokenizer_sha,
                "unit": unit.key,
                "files": [[os.path.basename(f.path), f.sha256] for f in unit.files],
                "shards": unit.shards,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:32]


def _check_config(out: str, config: BuildConfig, force: bool) -> None:
    """Output of another config (published, or complete units staged by a killed run) needs
    --force, which removes only the tool's own files. `bad_lines` changes no record."""
    previous = state.old_manifest(out)
    units_dir = state.private_dir(out, "units")
    staged = os.path.isdir(units_dir) and any(n.endswith(".json") for n in os.listdir(units_dir))
    old = (previous or {}).get("config")
    if old is None and staged:
        old = state.read_json(state.private_dir(out, "config.json"))
    new = config.to_dict()
    changed = sorted(
        k
        for k in set(old or {}) | set(new)
        if k != "bad_lines" and (old or {}).get(k) != new.get(k)
    )
    if old is not None and changed and not force:
        raise ConfigError(
            f"{out} was built with another config (changed: {', '.join(changed)}); "
            "rerun with --force to rebuild it"
        )
    if force or old is None or changed:
        state.wipe(out)


def _tokenizer(
    out: str, config: BuildConfig, paths: list[str], log: Log
) -> tuple[tokenize.Tokenizer, bytes, str]:
    """The user's model; or the one trained here before (kept, so unchanged units stay valid);
    or a new one trained on the input."""
    if config.spm_model:
        tokenizer = tokenize.Tokenizer.load(config.spm_model)
        vocab = "".join(
            f"{tokenizer.processor.id_to_piece(i)}\t{tokenizer.processor.get_score(i):g}\n"
            for i in range(tokenizer.vocab_size)
        ).encode()
        return tokenizer, vocab, "given"
    trained = state.read_json(state.private_dir(out, "tokenizer.json")) or {}
    model_path = os.path.join(out, "spm.model")
    if os.path.exists(model_path) and trained.get("sha256"):
        with open(model_path, "rb") as stream:
            proto = stream.read()
        if hashlib.sha256(proto).hexdigest() == trained["sha256"]:
            with open(os.path.join(out, "spm.vocab"), "rb") as stream:
                vocab = stream.read()
            log("reusing the SentencePiece model trained by an earlier run")
            return tokenize.Tokenizer(proto, name=model_path), vocab, "reused"
    log(f"training a SentencePiece model (vocab_size {config.vocab_size}) on the input")
    proto, vocab = train_tokenizer_on(paths, config, sources.ReadStats())
    tokenizer = tokenize.Tokenizer(proto, name="trained model")
    if tokenizer.vocab_size < config.vocab_size:
        log(
            f"warning: the corpus supports only {tokenizer.vocab_size} pieces "
            f"(vocab_size {config.vocab_size} asked)"
        )
    _publish_bytes(out, "spm.model", proto)
    _publish_bytes(out, "spm.vocab", vocab)
    state.write_json(
        state.private_dir(out, "tokenizer.json"), {"sha256": hashlib.sha256(proto).hexdigest()}
    )
    return tokenizer, vocab, "trained"


def _build_unit(
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
    for name in os.listdir(cache_dir):  # a killed run's cache may be incomplete
        if name.startswith(f"unit-{unit.key:016x}"):
            os.remove(os.path.join(cache_dir, name))
    stats = sources.ReadStats()
    failures: list[BaseException] = []
    writers = [ShardWriter(units_dir, f"{fp}-{k}", config.compression) for k in range(unit.shards)]
    try:
        for j, record in enumerate(
            _unit_records(unit, config, tokenizer, stats, failures, cache_dir)
        ):
            writers[j % unit.shards].write(record)
            if on_record is not None:
                on_record(1)
            if j == 50:
                _checkpoint("shard")
            if _parent_pid is not None and j % 4096 == 0 and os.getppid() != _parent_pid:
                raise SystemExit("the build that started this worker is gone")
        infos = [w.close() for w in writers]
    except tf.errors.OpError as error:
        for w in writers:
            w.abort()
        _raise_first(failures, error)
        raise
    except BaseException:
        for w in writers:
            w.abort()
        raise
    for name in os.listdir(cache_dir):
        if name.startswith(f"unit-{unit.key:016x}"):
            os.remove(os.path.join(cache_dir, name))
    record = {
        "fingerprint": fp,
        "staged": [i.to_dict() for i in infos],
        "stats": dataclasses.asdict(stats),
    }
    state.write_json(os.path.join(units_dir, f"{fp}.json"), record)
    return record


def _intact(out: str, shards: list[dict[str, Any]]) -> bool:
    """Published shards still there with their recorded sizes (names checked to stay in OUT)."""
    return all(
        os.path.exists(manifest.safe_member(out, s["name"]))
        and os.path.getsize(os.path.join(out, s["name"])) == s["bytes"]
        for s in shards
    )


def _reusable_published(
    out: str, previous: dict[str, Any] | None
) -> dict[str, list[dict[str, Any]]]:
    """Published shards of the previous build, by unit fingerprint, that are still intact."""
    found: dict[str, list[dict[str, Any]]] = {}
    if previous is None:
        return found
    for unit in previous.get("units", []):
        shards = [s for s in previous["shards"] if s.get("unit") == unit.get("fingerprint")]
        if shards and _intact(out, shards):
            found[unit["fingerprint"]] = sorted(shards, key=lambda s: s["index_in_unit"])
    return found


def run(
    inputs: list[str],
    out: str,
    config: BuildConfig,
    *,
    force: bool = False,
    dry_run: bool = False,
    runner: Runner | None = None,
    log: Log = lambda message: None,
    on_record: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Builds (or refreshes) the records in `out`; returns the summary.

    Complete units of an earlier or killed run are reused; new shards are staged privately and
    published together (renames), then the manifest is written last.
    """
    started = time.monotonic()
    runner = runner or Runner()
    if runner.name != "local":
        from pretrain_records.pipeline import beam

        beam.pipeline_options(runner.name, runner.workers, runner.options)  # fails early
    paths = sources.expand_inputs(inputs)
    files = [sources.fingerprint(p) for p in paths]
    units = plan(files, config)
    total_shards = sum(u.shards for u in units)
    log(f"{len(files)} input files, {len(units)} work units, {total_shards} shards")
    if dry_run:
        summary: dict[str, Any] = {
            "status": "dry-run",
            "output": out,
            "inputs": len(files),
            "units": len(units),
            "shards": [
                shard_name(i, total_shards, config.compression) for i in range(total_shards)
            ],
        }
        if runner.name != "local":
            from pretrain_records.pipeline import beam

            pending = {f"{u.key:016x}": u for u in units}
            summary["beam"] = beam.describe(
                pending, out, config, runner.name, runner.workers, runner.options
            )
        return summary
    os.makedirs(out, exist_ok=True)
    with state.locked(out):
        return _run_locked(out, runner, config, files, units, force, log, on_record, started)


def _build_in_processes(
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
            pool.submit(_build_unit_in_worker, unit, fp, config, model, out, os.getpid())
            # Largest first: the long units start early, small ones fill the gaps.
            for fp, unit in sorted(
                pending.items(), key=lambda item: (-item[1].input_bytes, item[0])
            )
        ]
        for future in as_completed(futures):
            future.result()  # re-raises a worker's error here


def _build_unit_in_worker(
    unit: Unit, fp: str, config: BuildConfig, model: bytes, out: str, parent: int
) -> None:
    global _parent_pid
    _parent_pid = parent
    _build_unit(unit, fp, config, tokenize.Tokenizer(model, name="spm.model"), out, None)


_parent_pid: int | None = None


def _staged_record(out: str, fp: str) -> dict[str, Any] | None:
    """The record of a unit whose shards are complete in staging, else None."""
    done = state.read_json(state.private_dir(out, "units", f"{fp}.json")) or {}
    if "staged" in done and all(
        os.path.exists(state.private_dir(out, "units", s["name"])) for s in done["staged"]
    ):
        return done
    return None


@dataclasses.dataclass(frozen=True)
class Runner:
    """Where missing units are built: `local` (this process) or a Beam runner."""

    name: str = "local"
    workers: int = 1
    options: dict[str, str] = dataclasses.field(default_factory=dict)


def _run_locked(
    out: str,
    runner: Runner,
    config: BuildConfig,
    files: list[sources.InputFile],
    units: list[Unit],
    force: bool,
    log: Log,
    on_record: Callable[[int], None] | None,
    started: float,
) -> dict[str, Any]:
    from pretrain_records.cli.version import VERSION

    state.remove_stale_temps(out)
    _check_config(out, config, force)
    os.makedirs(state.private_dir(out, "units"), exist_ok=True)
    state.write_json(state.private_dir(out, "config.json"), config.to_dict())
    tokenizer, vocab, tokenizer_origin = _tokenizer(out, config, [f.path for f in files], log)
    tokenizer_sha = hashlib.sha256(tokenizer.model_proto).hexdigest()
    previous = state.old_manifest(out)
    published = _reusable_published(out, previous)
    unit_stats = {
        u.get("fingerprint"): u.get("stats", {}) for u in (previous or {}).get("units", [])
    }
    owned = state.owned_public_files(out)
    total_shards = sum(u.shards for u in units)

    records_by_unit: list[dict[str, Any]] = []
    reused, rebuilt = [], []
    for unit in units:
        fp = _unit_fingerprint(unit, config, tokenizer_sha)
        done = state.read_json(state.private_dir(out, "units", f"{fp}.json")) or {}
        if "staged" in done and all(
            os.path.exists(state.private_dir(out, "units", s["name"])) for s in done["staged"]
        ):
            records_by_unit.append(done)
            reused.append(fp)
            continue
        if "published" in done and _intact(out, done["published"]):
            records_by_unit.append(done)
            reused.append(fp)
            continue
        if fp in published:
            records_by_unit.append(
                {"fingerprint": fp, "published": published[fp], "stats": unit_stats.get(fp, {})}
            )
            reused.append(fp)
            continue
        records_by_unit.append({"fingerprint": fp, "pending": unit})
        rebuilt.append(fp)
    pending = {r["fingerprint"]: r.pop("pending") for r in records_by_unit if "pending" in r}
    if pending and runner.name != "local":
        from pretrain_records.pipeline import beam

        log(f"building {len(pending)} units on Beam ({runner.name}, {runner.workers} workers)")
        beam.build_units(
            pending,
            out,
            config,
            tokenizer.model_proto,
            runner.name,
            runner.workers,
            runner.options,
            lambda fp: _staged_record(out, fp) is not None,
            log,
        )
    if pending and runner.name == "local" and runner.workers > 1 and len(pending) > 1:
        _build_in_processes(pending, out, config, tokenizer.model_proto, runner.workers, log)
    for record in records_by_unit:
        fp = record["fingerprint"]
        if fp not in pending:
            continue
        built = _staged_record(out, fp) if runner.name != "local" or runner.workers > 1 else None
        if built is None:
            unit = pending[fp]
            log(f"building unit {unit.key:016x} ({len(unit.files)} files)")
            built = _build_unit(unit, fp, config, tokenizer, out, on_record)
        record.update(built)

    # Publication: every shard of the new build under its public name, in three steps, with a
    # journal so that a kill in between leaves files a rerun recognizes as its own.
    targets: list[tuple[str, dict[str, Any], str]] = []  # (public name, info, unit fp)
    first = 0
    for unit, record in zip(units, records_by_unit, strict=True):
        for k in range(unit.shards):
            targets.append(
                (
                    shard_name(first + k, total_shards, config.compression),
                    record,
                    record["fingerprint"],
                )
            )
        first += unit.shards
    target_names = {t[0] for t in targets}
    for name in target_names - owned:
        if os.path.exists(os.path.join(out, name)):
            raise sources.DataError(
                f"{os.path.join(out, name)}: exists and was not written by this tool; "
                "refusing to overwrite it"
            )
    state.write_json(
        state.private_dir(out, "journal.json"), {"names": sorted(target_names | owned)}
    )
    units_dir = state.private_dir(out, "units")
    # 1. Published shards to keep go back to staging (their public names may change).
    for record in records_by_unit:
        if "published" in record:
            staged = []
            for k, shard in enumerate(record["published"]):
                name = f"{record['fingerprint']}-{k}"
                os.replace(os.path.join(out, shard["name"]), os.path.join(units_dir, name))
                staged.append({**shard, "name": name})
            record["staged"] = staged
            state.write_json(
                os.path.join(units_dir, f"{record['fingerprint']}.json"),
                {k: v for k, v in record.items() if k != "published"},
            )
    # 2. Old shards of changed or removed units go.
    for name in owned - target_names:
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)
    # 3. Staged shards take their public names.
    shards: list[dict[str, Any]] = []
    stats = sources.ReadStats()
    counter = 0
    for record in records_by_unit:
        public = []
        for k, info in enumerate(record["staged"]):
            name = shard_name(counter, total_shards, config.compression)
            os.replace(os.path.join(units_dir, info["name"]), os.path.join(out, name))
            public.append(
                {
                    "name": name,
                    "records": info["records"],
                    "bytes": info["bytes"],
                    "sha256": info["sha256"],
                    "unit": record["fingerprint"],
                    "index_in_unit": k,
                }
            )
            counter += 1
        # A kill from here on finds this unit complete under its public names.
        state.write_json(
            os.path.join(units_dir, f"{record['fingerprint']}.json"),
            {
                "fingerprint": record["fingerprint"],
                "published": public,
                "stats": record.get("stats", {}),
            },
        )
        shards.extend(public)
        stats.add(sources.ReadStats(**record.get("stats", {})))
    _publish_bytes(out, "config.yaml", to_yaml(config).encode())
    if tokenizer_origin == "given":
        _publish_bytes(out, "spm.model", tokenizer.model_proto)
        _publish_bytes(out, "spm.vocab", vocab)

    records = sum(s["records"] for s in shards)
    if records == 0:
        raise sources.DataError(
            f"no text to build from: {len(files)} input files gave {stats.documents} documents "
            f"and no instances (empty files: {stats.empty_files}); "
            "is the input empty or its input_format wrong?"
        )
    skipped = {
        "empty_documents": stats.empty_documents,
        "empty_files": stats.empty_files,
        "bad_lines": stats.skipped_lines,
        "split_long_lines": stats.split_long_lines,
    }
    _checkpoint("manifest")
    manifest.write(
        out,
        {
            "format": manifest.FORMAT,
            "tool": "make-pretrain-records",
            "version": VERSION,
            "config": config.to_dict(),
            "inputs": [dataclasses.asdict(f) for f in files],
            "units": [
                {
                    "key": f"{u.key:016x}",
                    "fingerprint": r["fingerprint"],
                    "files": [f.path for f in u.files],
                    "shards": u.shards,
                    "stats": r.get("stats", {}),
                }
                for u, r in zip(units, records_by_unit, strict=True)
            ],
            "tokenizer": {
                "file": "spm.model",
                "origin": tokenizer_origin,
                "sha256": tokenizer_sha,
                "vocab_size": tokenizer.vocab_size,
                "cls_id": tokenizer.cls_id,
                "sep_id": tokenizer.sep_id,
                "mask_id": tokenizer.mask_id,
                "special_ids": list(tokenizer.special_ids),
            },
            "features": features.feature_spec(config),
            "shards": shards,
            "totals": {
                "records": records,
                "bytes": sum(s["bytes"] for s in shards),
                "documents": stats.documents,
            },
            "skipped": skipped,
            "reused_units": reused,
            "rebuilt_units": rebuilt,
        },
    )
    for name in os.listdir(units_dir):
        os.remove(os.path.join(units_dir, name))
    with contextlib.suppress(FileNotFoundError):
        os.remove(state.private_dir(out, "journal.json"))
    shutil.rmtree(state.private_dir(out, "cache"), ignore_errors=True)
    return {
        "status": "ok",
        "output": out,
        "records": records,
        "documents": stats.documents,
        "skipped": skipped,
        "shards": len(shards),
        "units": {"total": len(units), "reused": len(reused), "rebuilt": len(rebuilt)},
        "reused_shards": [s["name"] for s in shards if s["unit"] in reused],
        "rebuilt_shards": [s["name"] for s in shards if s["unit"] in rebuilt],
        "tokenizer": tokenizer_origin,
        "seconds": round(time.monotonic() - started, 3),
    }


def _publish_bytes(directory: str, name: str, data: bytes) -> None:
    temp = os.path.join(directory, f".{name}.partial-{os.getpid()}")
    with open(temp, "wb") as stream:
        stream.write(data)
    os.replace(temp, os.path.join(directory, name))
