"""A build's plan: the config checked against the published build's, the inputs scanned into
work units, the tokenizer obtained, and which units are kept from an earlier run (each run of
theirs checked by its sha256) and which must be built."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pretrain_records.pipeline.config import BuildConfig, from_manifest
from pretrain_records.pipeline.ground.errors import DataError, UsageError
from pretrain_records.pipeline.ground.events import Events
from pretrain_records.pipeline.outdir.outdir import OutputDir
from pretrain_records.pipeline.reading import inputs, scanning
from pretrain_records.pipeline.records.unit_job import RECORDS_VERSION, UnitJob, UnitResult
from pretrain_records.pipeline.running import planning
from pretrain_records.pipeline.tokenizer import tokenize
from pretrain_records.pipeline.tokenizer.tokenizer_source import obtain

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


def check_config(
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
        return list(pool.map(lambda f: scan_one(f, config, cache), found))


def scan_one(
    file: inputs.InputFile, config: BuildConfig, cache: dict[str, Any]
) -> scanning.ScannedFile:
    from pretrain_records.pipeline.config import row_filters

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


def make_plan(
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
