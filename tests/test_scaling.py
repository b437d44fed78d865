"""Big files split into units; the same bytes on any number of workers and on Beam."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import signal

import pytest

from tests.conftest import (
    corpus,
    current_build,
    invoke,
    is_alive,
    one_error_line,
    run_cli,
    shard_hashes,
    start_paused,
    worker_pids,
)

ARGS = ["--input-format", "jsonl", "--language", "ko", "--max-seq-length", 64, "--dupe-factor", 2]
ARGS += ["--max-predictions-per-seq", 10, "--unit-bytes", 60000, "--sentence-task", "nsp"]


@pytest.fixture(scope="module")
def big_jsonl(tmp_path_factory):
    """The 40 NSMC movies (340 kB of JSONL): one file, several units."""
    path = tmp_path_factory.mktemp("big") / "movies.jsonl"
    path.write_bytes(gzip.decompress(corpus("jsonl/nsmc_movies_sample.jsonl.gz").read_bytes()))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, big_jsonl):
    """A build on one worker, and its tokenizer (given to every other build)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    summary = json.loads(
        invoke("build", big_jsonl, "-o", out, *ARGS, "--vocab-size", 1500, "--json").stdout
    )
    assert summary["units"]["total"] >= 5 and summary["documents"] == 40
    return out


def with_model(reference):
    return [*ARGS, "--spm-model", current_build(reference) / "spm.model"]


def test_the_same_bytes_on_any_number_of_workers_and_on_beam(tmp_path, big_jsonl, reference):
    invoke("build", big_jsonl, "-o", tmp_path / "base", *with_model(reference), "--workers", 1)
    expected = shard_hashes(tmp_path / "base")
    for runner, workers in (("local", "2"), ("local", "auto"), ("direct", "1"), ("direct", "2")):
        out = tmp_path / f"{runner}-{workers}"
        args = [*with_model(reference), "--runner", runner, "--workers", workers, "--json"]
        summary = json.loads(run_cli("build", big_jsonl, "-o", out, *args).stdout)
        assert summary["documents"] == 40
        assert shard_hashes(out) == expected, (runner, workers)
        run_cli("verify", out)


def test_a_gzip_file_is_split_the_same_way(tmp_path, big_jsonl, reference):
    packed = tmp_path / "movies.jsonl.gz"
    packed.write_bytes(gzip.compress(big_jsonl.read_bytes()))
    invoke("build", big_jsonl, "-o", tmp_path / "plain", *with_model(reference))
    summary = json.loads(
        invoke("build", packed, "-o", tmp_path / "packed", *with_model(reference), "--json").stdout
    )
    assert summary["units"]["total"] >= 5
    assert list(shard_hashes(tmp_path / "packed").values()) == list(
        shard_hashes(tmp_path / "plain").values()
    )


def test_appending_documents_rebuilds_only_the_last_units(tmp_path, big_jsonl, reference):
    path = tmp_path / "movies.jsonl"
    path.write_bytes(big_jsonl.read_bytes())
    out = tmp_path / "out"
    first = json.loads(invoke("build", path, "-o", out, *with_model(reference), "--json").stdout)
    with open(path, "a", encoding="utf-8") as stream:
        for i in range(3):
            stream.write(json.dumps({"text": f"새 영화 {i}. 정말 재미있다.\n최고의 영화."}) + "\n")
    second = json.loads(invoke("build", path, "-o", out, *with_model(reference), "--json").stdout)
    assert second["documents"] == 43
    assert second["units"]["rebuilt"] <= 2
    assert second["units"]["reused"] >= first["units"]["total"] - 1


def test_a_beam_worker_failing_once_is_retried_and_the_bytes_are_unchanged(
    tmp_path, big_jsonl, reference
):
    marker = tmp_path / "failed-once"
    out = tmp_path / "retried"
    args = [*with_model(reference), "--runner", "direct", "--workers", 2]
    result = run_cli(
        "build", big_jsonl, "-o", out, *args, env={"MPR_TEST_HOOKS": f"fail_worker_once={marker}"}
    )
    assert marker.exists(), "the fault was injected"
    assert "injected worker fault" in result.stderr and "retrying" in result.stderr
    invoke("build", big_jsonl, "-o", tmp_path / "local", *with_model(reference))
    assert shard_hashes(out) == shard_hashes(tmp_path / "local")


def test_without_beam_the_error_names_the_extra(tmp_path, big_jsonl, reference):
    fake = tmp_path / "nobeam" / "apache_beam"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no beam here')\n")
    env = {"PYTHONPATH": str(fake.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = [*with_model(reference), "--runner", "direct"]
    result = run_cli("build", big_jsonl, "-o", tmp_path / "out", *args, env=env, check=2)
    assert "pip install 'make-pretrain-records[beam]'" in one_error_line(result.stderr)


def test_a_dataflow_job_graph_builds_offline_in_a_dry_run(tmp_path, big_jsonl, monkeypatch):
    # The CLI runs in this process: a gs:// path taken for a local one would be a `gs:` folder
    # in the working directory.
    from pretrain_records.pipeline.storage import gcs

    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    gcs.reset_requests()
    result = invoke(
        "build",
        big_jsonl,
        "-o",
        "gs://example-bucket/records",
        *ARGS,
        "--runner",
        "dataflow",
        "--workers",
        4,
        "--beam-option",
        "project=example-project",
        "--beam-option",
        "region=us-central1",
        "--beam-option",
        "temp_location=gs://example-bucket/tmp",
        "--dry-run",
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["status"] == "dry-run" and summary["units"] >= 5
    assert summary["beam"]["runner"] == "dataflow"
    assert {"Units", "Spread", "Build"} <= set(summary["beam"]["transforms"])
    assert summary["beam"]["graph_bytes"] > 1000
    assert summary["beam"]["kept_records"] == "gs://example-bucket/records/.mpr/units"
    assert not (work / "gs:").exists() and not (tmp_path / "gs:").exists()
    assert sum(gcs.requests().values()) == 0  # nothing asked of the bucket: written nowhere
    bad = invoke(
        "build",
        big_jsonl,
        "-o",
        tmp_path / "out",
        "--input-format",
        "jsonl",
        "--runner",
        "dataflow",
        "--beam-option",
        "temp_location=gs://b/tmp",
        "--dry-run",
        check=2,
    )
    assert "--beam-option: Invalid GCS bucket (gs://b/tmp)" in one_error_line(bad.stderr)


def test_a_worker_killed_mid_build_fails_the_build_at_once_and_a_rerun_builds_it(
    tmp_path, big_jsonl, reference
):
    """The OOM killer's kill -9 of a worker: exit 1 naming it, no wait for a result that never
    comes, no worker left behind; a rerun over what the killed build left gives the bytes of an
    uninterrupted build."""
    out = tmp_path / "out"
    args = [*with_model(reference), "--workers", 2]
    build = start_paused("chunk", "build", big_jsonl, "-o", out, *args)
    workers = sorted(worker_pids(build.pid))
    try:
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = build.communicate(timeout=120)
        left_behind = [pid for pid in workers if is_alive(pid)]  # before the clean-up below
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        build.kill()
    assert build.returncode == 1
    assert f"worker process {workers[0]} died (killed by SIGKILL" in one_error_line(stderr)
    assert left_behind == []
    invoke("build", big_jsonl, "-o", out, *args)
    invoke("build", big_jsonl, "-o", tmp_path / "whole", *with_model(reference), "--workers", 1)
    assert shard_hashes(out) == shard_hashes(tmp_path / "whole")


def test_a_workers_data_error_is_the_builds_one_line_error(tmp_path, big_jsonl, reference):
    """Bad JSON deep in the file, found by whichever worker builds that unit: exit 1 naming
    the file and its line, as on one worker; no unit of the failed build is left half-written."""
    lines = big_jsonl.read_bytes().splitlines(keepends=True)
    lines[33] = b'{"text": "cut short\n'
    broken = tmp_path / "movies.jsonl"
    broken.write_bytes(b"".join(lines))
    out = tmp_path / "out"
    result = run_cli("build", broken, "-o", out, *with_model(reference), "--workers", 2, check=1)
    assert f"error: {broken}:34: invalid JSON (" in one_error_line(result.stderr)
    assert [p.name for p in out.iterdir()] == [".mpr"]  # nothing published
    # The broken unit is the largest, claimed first; how many units the other worker completed
    # before the error stopped it depends on timing: none (no units folder at all, when it had
    # no records yet) up to all the others. Each one kept is complete: its runs and unit.json.
    kept = out / ".mpr" / "units"
    units = sorted(kept.iterdir()) if kept.exists() else []
    for unit in units:
        runs = json.loads((unit / "unit.json").read_text())["runs"]
        assert sorted(p.name for p in unit.iterdir()) == sorted(
            ["unit.json", *(run["name"] for run in runs)]
        ), unit
        assert all((unit / run["name"]).stat().st_size == run["bytes"] for run in runs), unit
    # The next run finds exactly those complete, and the broken unit not among them.
    again = run_cli("build", broken, "-o", out, *with_model(reference), "--workers", 1, check=1)
    planned = re.search(r"(\d+) work units \((\d+) kept from an earlier run", again.stderr)
    assert planned and int(planned[1]) >= 5 and int(planned[2]) == len(units), again.stderr
    assert f"error: {broken}:34: invalid JSON (" in one_error_line(again.stderr)
