"""A build, top to bottom: plan -> build missing units -> merge -> publish -> summary.

run(request, events)
  plan        inputs expanded and scanned into work units; the tokenizer; which units
              are kept from an earlier run (refresh, resume) and which must be built
  build       the missing units, by an executor (this process, worker processes, Beam)
  merge       every unit's kept records into balanced shards, in staging
  publish     the staged build replaces the published one (outdir's protocol)
  summary     what was done, for the log and `--json`
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pretrain_records.pipeline import executors, inputs, merge, planning, scanning, schema, tokenize
from pretrain_records.pipeline import manifest as manifest_lib
from pretrain_records.pipeline import runs as runs_lib
from pretrain_records.pipeline.config import BuildConfig, from_manifest, to_yaml
from pretrain_records.pipeline.errors import DataError, UsageError
from pretrain_records.pipeline.events import Events
from pretrain_records.pipeline.outdir import OutputDir
from pretrain_records.pipeline.pieces import ReadStats
from pretrain_records.pipeline.publication import Publication, build_dir_of
from pretrain_records.pipeline.tokenizer_source import load_given, obtain
from pretrain_records.pipeline.unit_job import RECORDS_VERSION, TokenCounts, UnitJob, UnitResult
from pretrain_records.pipeline.version import VERSION

# Keys that change no kept record: the merge's shard count and compression, and how many earlier
# builds are kept (not even the shards).
MERGE_ONLY_KEYS = ("num_shards", "compression")
NON_RECORD_KEYS = (*MERGE_ONLY_KEYS, "retained_builds")


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    """What the user asked for (the CLI turns flags into this)."""

    inputs: tuple[str, ...]
    out: str
    config: BuildConfig
    config_file: str | None = None
    force: bool = False
    dry_run: bool = False
    runner: str = "local"
    workers: int | None = None  # None: auto
    beam_options: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass
class Plan:
    """The units of a build, the tokenizer, and which units are kept from earlier runs."""

    files: list[scanning.ScannedFile]
    jobs: list[UnitJob]
    kept: dict[str, UnitResult]
    tokenizer: tokenize.Tokenizer
    vocab: bytes
    tokenizer_origin: str
    skipped: inputs.Skipped
    tokenizer_sample: dict[str, int] | None = None  # a trained tokenizer's training sample
    damaged: int = 0  # kept units found damaged, built again


def run(request: BuildRequest, events: Events) -> dict[str, Any]:
    """Builds or refreshes the records of `request.out`; returns the summary."""
    started = time.monotonic()
    out = OutputDir(request.out)
    found, skipped = inputs.expand(list(request.inputs), request.out)
    if request.config.input_format == "wikipedia":
        found = _without_dump_indexes(found, skipped)
    given = load_given(request.config.spm_model) if request.config.spm_model else None
    if request.dry_run:
        return _dry_run(request, out, found, skipped, events)
    with out.locked():
        out.check_inputs(_input_paths(request, found))
        builds = Publication(out)
        builds.reconcile(events.log)
        previous = out.published_manifest()
        _check_config(out, previous, request, given)
        plan = _plan(request, out, found, skipped, given, events)
        results = _build_missing(request, out, plan, events)
        manifest = _stage(request, out, builds, plan, results, events)
        if manifest is None:
            summary = _summary(request, previous, plan, started, "up-to-date")
        else:
            events.log(f"publishing {build_dir_of(manifest)}")
            builds.publish(manifest, events.log)
            summary = _summary(request, manifest, plan, started, "ok")
        out.collect_garbage({job.fingerprint for job in plan.jobs})
        retained = request.config.retained_builds
        builds.collect(retained, _input_paths(request, found), events.log)
        out.write_private_json(plan_cache(plan, request.config), "plan-cache.json")
    events.log(f"current build: {summary['input_path']} (a trainer's input_path)")
    return summary


def _without_dump_indexes(
    found: list[inputs.InputFile], skipped: inputs.Skipped
) -> list[inputs.InputFile]:
    """The inputs but multistream Wikipedia dumps' indexes, which are read with their dump."""
    from pretrain_records.pipeline.wikipedia_input import is_index

    kept = [f for f in found if not is_index(f.path)]
    skipped.index_files += len(found) - len(kept)
    if not kept:
        raise UsageError("the inputs are multistream indexes only: give the dump beside them")
    return kept


def _input_paths(request: BuildRequest, found: list[inputs.InputFile]) -> list[str]:
    """Every local file the build reads: inputs, the tokenizer, the config file."""
    given = [request.config.spm_model, request.config_file]
    return [f.path for f in found] + [p for p in given if p]


def config_identity(config: dict[str, Any], model_sha256: str | None) -> dict[str, Any]:
    """What a config means for the kept records: every key but the merge's (`num_shards`,
    `compression`: they change no kept record), and a given tokenizer by its bytes' sha256, not
    by how its path is spelled (`./spm/m.model` one night, an absolute path the next)."""
    identity = {k: v for k, v in config.items() if k not in NON_RECORD_KEYS}
    identity["spm_model"] = f"sha256:{model_sha256}" if model_sha256 else None
    return identity


def _published_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    tokenizer = manifest.get("tokenizer") or {}
    given = tokenizer.get("sha256") if tokenizer.get("origin") == "given" else None
    # An older manifest's config: old key names, keys added since at their defaults.
    return config_identity(from_manifest(manifest["config"]).to_dict(), given)


def _check_config(
    out: OutputDir,
    previous: dict[str, Any] | None,
    request: BuildRequest,
    given: tokenize.Tokenizer | None,
) -> None:
    """Output of another config needs --force, which drops the tool's kept units and trained
    tokenizer (never a published or foreign file). Only a published build is protected: units
    kept by a run that published nothing (a first build that failed) are dropped when the config
    changes, and a --force run of this config that was stopped before publishing is resumed."""
    model_sha = hashlib.sha256(given.model_proto).hexdigest() if given else None
    new = config_identity(request.config.to_dict(), model_sha)
    kept = out.read_private_json("config.json")  # the identity of the units kept in .mpr
    old = _published_identity(previous) if previous is not None else None
    changed = sorted(k for k in set(old or {}) | set(new) if (old or {}).get(k) != new.get(k))
    changed = ["spm_model (its bytes)" if k == "spm_model" else k for k in changed]
    confirmed = bool(changed) and kept == new
    if old is not None and changed and not (request.force or confirmed):
        raise UsageError(
            f"{out.path} was built with another config (changed: {', '.join(changed)}); "
            "rerun with --force to rebuild it"
        )
    if (request.force and not confirmed) or (kept is not None and kept != new):
        out.forget_kept()
    out.write_private_json(new, "config.json")


def _scan(
    found: list[inputs.InputFile], config: BuildConfig, out: OutputDir
) -> list[scanning.ScannedFile]:
    cache = out.read_private_json("plan-cache.json") or {}
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashing and inflating release the GIL
        return list(pool.map(lambda f: _scan_one(f, config, cache), found))


def _scan_one(
    file: inputs.InputFile, config: BuildConfig, cache: dict[str, Any]
) -> scanning.ScannedFile:
    from pretrain_records.pipeline import row_filters

    fields = tuple(row_filters.fields(row_filters.parse_all(config.filters)))
    return scanning.scan(
        file, config.input_format, config.unit_bytes, cache, config.text_field, fields
    )


def plan_cache(plan: Plan, config: BuildConfig) -> dict[str, Any]:
    """Cut points of the compressed inputs, so that a refresh need not inflate them again."""
    return {
        scanning.cache_key(f.sha256, config.input_format, config.unit_bytes): [
            dataclasses.astuple(p) for p in f.pieces
        ]
        for f in plan.files
        if f.compression != "none"
    }


def _plan(
    request: BuildRequest,
    out: OutputDir,
    found: list[inputs.InputFile],
    skipped: inputs.Skipped,
    given: tokenize.Tokenizer | None,
    events: Events,
) -> Plan:
    config = request.config
    files = _scan(found, config, out)
    units = planning.group(files, config.sentence_task, config.unit_bytes)
    documents = sum(u.documents for u in units)
    if documents == 0:
        raise DataError(
            f"no text to build from: the {len(files)} input files hold no documents; is the "
            "input empty or its input_format wrong?"
        )
    if config.sentence_task == "nsp" and documents < 2:
        raise DataError(
            f"sentence_task nsp needs at least two documents; the input has {documents} "
            "(use sentence_task: sop)"
        )
    # The tokenizer's sample reads each file once, whole: a piece of a compressed file read
    # on its own would inflate the file from its start again.
    pieces = [dataclasses.replace(f.piece(f.pieces[0]), start=0, end=None) for f in files]
    tokenizer, vocab, origin, sample = obtain(config, given, out, pieces, events.log)
    tokenizer_sha = hashlib.sha256(tokenizer.model_proto).hexdigest()
    jobs = [
        UnitJob(
            fingerprint=_fingerprint(config, tokenizer_sha, unit.key),
            key=unit.key,
            label=unit.label,
            pieces=unit.pieces,
            piece_bytes=unit.piece_bytes,
            config=config,
        )
        for unit in units
    ]
    kept, damaged = _kept_units(out, jobs, events)
    events.log(
        f"{len(found)} input files, {len(jobs)} work units "
        f"({len(kept)} kept from an earlier run, {len(jobs) - len(kept)} to build)"
    )
    return Plan(files, jobs, kept, tokenizer, vocab, origin, skipped, sample, damaged)


def _kept_units(
    out: OutputDir, jobs: list[UnitJob], events: Events
) -> tuple[dict[str, UnitResult], int]:
    """The complete kept units of the plan, each run checked against its recorded sha256 (a
    damaged one, a byte flipped on disk, is dropped to be built again: never merged); and how
    many were damaged."""
    records = [(job, out.kept_unit(job.fingerprint)) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashing releases the GIL
        problems = list(
            pool.map(lambda item: out.damaged_runs(item[1]) if item[1] else None, records)
        )
    kept, damaged = {}, 0
    for (job, record), problem in zip(records, problems, strict=True):
        if record is None:
            continue
        try:
            result = UnitResult.from_json(record)
        except (ValueError, TypeError, KeyError) as error:
            problem = problem or f"unit.json: {error}"
        if problem is not None:
            damaged += 1
            events.log(f"kept unit {job.label} is damaged ({problem}): building it again")
            out.drop_partial_unit(job.fingerprint)
            continue
        kept[job.fingerprint] = result
    return kept, damaged


def _fingerprint(config: BuildConfig, tokenizer_sha: str, key: str) -> str:
    settings = config_identity(config.to_dict(), None)  # the tokenizer joins by its sha256
    document = {
        "records": RECORDS_VERSION,
        "plan": planning.PLAN_VERSION,
        "config": settings,
        "tokenizer": tokenizer_sha,
        "unit": key,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]


def _build_missing(
    request: BuildRequest, out: OutputDir, plan: Plan, events: Events
) -> dict[str, UnitResult]:
    """Every unit's result: kept ones as they are, missing ones built now."""
    missing = [job for job in plan.jobs if job.fingerprint not in plan.kept]
    results = dict(plan.kept)
    if missing:
        missing = planning.spill_compressed(missing, plan.files, out)
        passes = missing[0].passes()
        events.start_units(sum(j.input_bytes for j in missing) * passes, len(missing))
        executor = executors.executor_for(
            request.runner, request.workers, dict(request.beam_options), missing
        )
        for result in executor.build(missing, plan.tokenizer.model_proto, out, events):
            results[result.fingerprint] = result
        events.finish_units()
    return results


def _stage(
    request: BuildRequest,
    out: OutputDir,
    builds: Publication,
    plan: Plan,
    results: dict[str, UnitResult],
    events: Events,
) -> dict[str, Any] | None:
    """The new build, complete in a folder of its own (merged now, or by a run stopped before
    it published it); None when the published build is already this one."""
    config = request.config
    ordered = [results[job.fingerprint] for job in plan.jobs]
    records = sum(r.records for r in ordered)
    stats = ReadStats()
    for result in ordered:
        stats.add(result.stats)
    if records == 0:
        raise DataError(
            f"no text to build from: {len(plan.files)} input files gave {stats.documents} "
            f"documents and no instances (empty files: {stats.empty_files}); is the input "
            "empty or its input_format wrong?"
        )
    runs = [
        merge.Run(out.unit_path(r.fingerprint, run.name), unit=i)
        for i, r in enumerate(ordered)
        for run in r.runs
    ]
    total_bytes = sum(
        run.bytes - runs_lib.HEADER_BYTES - runs_lib.INDEX_BYTES * run.records
        for r in ordered
        for run in r.runs
    )
    shards = merge.shard_count(config.num_shards, total_bytes)
    build_id = _build_id(plan, shards)
    published = out.published_manifest()
    if published is not None and published.get("build") == build_id and builds.intact(published):
        events.log("the published build is up to date")
        return None
    staged = builds.staged(build_id)
    if staged is not None:
        events.log(f"publishing {build_dir_of(staged)}, which an earlier run staged")
        return staged
    folder = builds.start(build_id)
    events.log(
        f"merging {records:,} records of {len(ordered)} units into {shards} shards in {folder}"
    )
    events.start_merge(shards)
    entries, provenance = merge.merge(
        runs, records, total_bytes, shards, config.compression, builds.path, events.shard_done
    )
    entries = [{**entry, "name": builds.name(str(entry["name"]))} for entry in entries]
    files = [
        builds.stage_bytes("spm.model", plan.tokenizer.model_proto),
        builds.stage_bytes("spm.vocab", plan.vocab),
        builds.stage_bytes("config.yaml", to_yaml(config).encode()),
        {**provenance, "name": builds.name(str(provenance["name"]))},
    ]
    manifest = _manifest(config, plan, ordered, entries, files, stats, build_id, folder)
    builds.stage_manifest(manifest)
    return manifest


def _build_id(plan: Plan, shards: int) -> str:
    config = plan.jobs[0].config.to_dict() if plan.jobs else {}
    document = {
        "config": config_identity(config, None),
        "merge": {k: config.get(k) for k in MERGE_ONLY_KEYS},
        "units": [job.fingerprint for job in plan.jobs],
        "shards": shards,
        "format": manifest_lib.FORMAT,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]


def _manifest(
    config: BuildConfig,
    plan: Plan,
    results: list[UnitResult],
    shards: list[dict[str, Any]],
    files: list[dict[str, Any]],
    stats: ReadStats,
    build_id: str,
    folder: str,
) -> dict[str, Any]:
    tokenizer = plan.tokenizer
    return {
        "format": manifest_lib.FORMAT,
        "tool": manifest_lib.TOOL,
        "version": VERSION,
        "build": build_id,
        "build_dir": folder,
        "config": config.to_dict(),
        "inputs": [
            {"path": f.relpath, "bytes": f.size, "sha256": f.sha256, "compression": f.compression}
            for f in plan.files
        ],
        "units": [
            {
                "key": job.key,
                "fingerprint": job.fingerprint,
                "label": job.label,
                "pieces": [[p.relpath, p.start, p.end] for p in job.pieces],
                "records": result.records,
                "stats": dataclasses.asdict(result.stats),
            }
            for job, result in zip(plan.jobs, results, strict=True)
        ],
        "tokenizer": {
            "file": f"{folder}/spm.model",
            "origin": plan.tokenizer_origin,
            "sample": plan.tokenizer_sample,
            "sha256": hashlib.sha256(tokenizer.model_proto).hexdigest(),
            "vocab_size": tokenizer.vocab_size,
            "cls_id": tokenizer.cls_id,
            "sep_id": tokenizer.sep_id,
            "mask_id": tokenizer.mask_id,
            "special_ids": list(tokenizer.special_ids),
        },
        "features": schema.feature_spec(config),
        "shards": shards,
        "files": files,
        "totals": {
            "records": sum(s["records"] for s in shards),
            "bytes": sum(s["bytes"] for s in shards),
            "documents": stats.documents,
            # Per pass: the input's tokens, those the records carry from their own documents
            # (over all passes / passes, rounded down), and the difference: dropped by
            # truncation (and SOP's one-token documents).
            "tokens": TokenCounts.total(r.tokens for r in results).per_pass(),
        },
        "skipped": _skipped(stats, plan.skipped),
        "reused_units": sorted(plan.kept),
        "rebuilt_units": sorted(j.fingerprint for j in plan.jobs if j.fingerprint not in plan.kept),
    }


def _skipped(stats: ReadStats, walks: inputs.Skipped) -> dict[str, int]:
    return {
        "empty_documents": stats.empty_documents,
        "empty_files": stats.empty_files,
        "bad_lines": stats.bad_lines,
        "split_long_lines": stats.split_long_lines,
        "filtered_rows": stats.filtered_rows,
        **walks.as_dict(),
    }


def input_path(out: str, manifest: dict[str, Any]) -> str:
    """The glob of the build's shards, for a trainer's `input_path` (Model Garden's
    `task.train_data.input_path`): the files of exactly that build."""
    shards = [str(s["name"]) for s in manifest.get("shards", [])]
    if not shards:
        return ""
    folder, _, first = shards[0].rpartition("/")
    suffix = first[first.index(".tfrecord") :]
    return "/".join(p for p in (out.rstrip("/"), folder, f"train-*-of-*{suffix}") if p)


def _summary(
    request: BuildRequest, manifest: dict[str, Any] | None, plan: Plan, started: float, status: str
) -> dict[str, Any]:
    manifest = manifest or {}
    rebuilt = sum(1 for j in plan.jobs if j.fingerprint not in plan.kept)
    return {
        "status": status,
        "output": request.out,
        "records": manifest.get("totals", {}).get("records", 0),
        "documents": manifest.get("totals", {}).get("documents", 0),
        "tokens": manifest.get("totals", {}).get("tokens", TokenCounts().per_pass()),
        "shards": len(manifest.get("shards", [])),
        "units": {
            "total": len(plan.jobs),
            "reused": len(plan.jobs) - rebuilt,
            "rebuilt": rebuilt,
            "damaged": plan.damaged,
        },
        "skipped": {**manifest.get("skipped", {}), **plan.skipped.as_dict()},
        "tokenizer": plan.tokenizer_origin,
        "tokenizer_sample": plan.tokenizer_sample,
        "build_dir": manifest.get("build_dir", ""),
        "input_path": input_path(request.out, manifest),
        "seconds": round(time.monotonic() - started, 3),
    }


def _dry_run(
    request: BuildRequest,
    out: OutputDir,
    found: list[inputs.InputFile],
    skipped: inputs.Skipped,
    events: Events,
) -> dict[str, Any]:
    """The plan (files, units, an estimate of the shards), written nowhere."""
    config = request.config
    files = [_scan_one(f, config, {}) for f in found]
    units = planning.group(files, config.sentence_task, config.unit_bytes)
    summary: dict[str, Any] = {
        "status": "dry-run",
        "output": request.out,
        "inputs": len(files),
        "units": len(units),
        "skipped": skipped.as_dict(),
        "input_bytes": sum(u.input_bytes for u in units),
    }
    if request.runner != "local":
        from pretrain_records.pipeline import beam

        workers = executors.beam_workers(request.workers)
        summary["beam"] = beam.describe(
            request.runner, workers, dict(request.beam_options), out, len(units)
        )
    events.log(f"{len(files)} input files, {len(units)} work units")
    return summary
