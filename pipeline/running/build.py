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
import os
import time
from typing import Any

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.config import BuildConfig, to_yaml
from pretrain_records.pipeline.ground.errors import DataError, UsageError
from pretrain_records.pipeline.ground.events import Events
from pretrain_records.pipeline.ground.version import VERSION
from pretrain_records.pipeline.outdir.outdir import OutputDir
from pretrain_records.pipeline.outdir.publication import Publication, build_dir_of
from pretrain_records.pipeline.reading import inputs
from pretrain_records.pipeline.reading.pieces import ReadStats
from pretrain_records.pipeline.records import manifest as manifest_lib
from pretrain_records.pipeline.records import merge, schema
from pretrain_records.pipeline.records import runs as runs_lib
from pretrain_records.pipeline.records.unit_job import (
    TokenCounts,
    UnitResult,
)
from pretrain_records.pipeline.running import executors, planning
from pretrain_records.pipeline.running.build_plan import (
    MERGE_ONLY_KEYS,
    BuildRequest,
    Plan,
    check_config,
    config_identity,
    make_plan,
    plan_cache,
    scan_one,
)
from pretrain_records.pipeline.tokenizer.tokenize import load_given


def run(request: BuildRequest, events: Events) -> dict[str, Any]:
    """Builds or refreshes the records of `request.out`; returns the summary."""
    started = time.monotonic()
    _check_output_path(request.out)
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
        check_config(out, previous, request, given)
        plan = make_plan(request, out, found, skipped, given, events)
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


def _check_output_path(path: str) -> None:
    """UsageError (exit 2) for an output that cannot be one: a file that is not a folder, or
    a folder inside another output's private `.mpr`. Asks nothing of an object store."""
    local = not storage.is_remote(path)  # on an object store a "file" and a folder may share a name
    if local and os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"-o {path}: not a directory (the output is a folder of builds)")
    if ".mpr" in path.replace("\\", "/").split("/"):
        raise UsageError(f"-o {path}: inside an output directory's private .mpr folder")


def _without_dump_indexes(
    found: list[inputs.InputFile], skipped: inputs.Skipped
) -> list[inputs.InputFile]:
    """The inputs but multistream Wikipedia dumps' indexes, which are read with their dump."""
    from pretrain_records.pipeline.reading.wikipedia_input import is_index

    kept = [f for f in found if not is_index(f.path)]
    skipped.index_files += len(found) - len(kept)
    if not kept:
        raise UsageError("the inputs are multistream indexes only: give the dump beside them")
    return kept


def _input_paths(request: BuildRequest, found: list[inputs.InputFile]) -> list[str]:
    """Every local file the build reads: inputs, the tokenizer, the config file."""
    given = [request.config.spm_model, request.config_file]
    return [f.path for f in found] + [p for p in given if p]


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
    files = [scan_one(f, config, {}) for f in found]
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
        from pretrain_records.pipeline.running import beam

        workers = executors.beam_workers(request.workers)
        summary["beam"] = beam.describe(
            request.runner, workers, dict(request.beam_options), out, len(units)
        )
    events.log(f"{len(files)} input files, {len(units)} work units")
    return summary
