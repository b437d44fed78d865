"""The build: plan work units, reuse what is complete, build the rest, publish, manifest last.

Units are built by `records` (in this process, in worker processes, or on Beam); publication
renames every shard into place with a journal, so a kill at any point leaves a state the next
run finishes, byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

from pretrain_records.pipeline import features, manifest, sources, state, tokenize
from pretrain_records.pipeline.config import BuildConfig, ConfigError, to_yaml
from pretrain_records.pipeline.records import (
    build_in_processes,
    build_unit,
    checkpoint,
    staged_record,
    train_tokenizer_on,
)
from pretrain_records.pipeline.units import Unit, plan, unit_fingerprint
from pretrain_records.pipeline.writer import shard_name

Log = Callable[[str], None]


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
        vocab = tokenize.vocab_text(tokenizer.processor)
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
    owned = state.owned_public_files(out, previous)
    total_shards = sum(u.shards for u in units)

    records_by_unit: list[dict[str, Any]] = []
    reused, rebuilt = [], []
    for unit in units:
        fp = unit_fingerprint(unit, config, tokenizer_sha)
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
            lambda fp: staged_record(out, fp) is not None,
            log,
        )
    if pending and runner.name == "local" and runner.workers > 1 and len(pending) > 1:
        build_in_processes(pending, out, config, tokenizer.model_proto, runner.workers, log)
    for record in records_by_unit:
        fp = record["fingerprint"]
        if fp not in pending:
            continue
        built = staged_record(out, fp) if runner.name != "local" or runner.workers > 1 else None
        if built is None:
            unit = pending[fp]
            log(f"building unit {unit.key:016x} ({len(unit.files)} files)")
            built = build_unit(unit, fp, config, tokenizer, out, on_record)
        record.update(built)

    # Publication: every shard of the new build under its public name, in three steps, with a
    # journal so that a kill in between leaves files a rerun recognizes as its own.
    target_names = {shard_name(i, total_shards, config.compression) for i in range(total_shards)}
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
    checkpoint("manifest")
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
