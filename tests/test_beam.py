"""The Beam runner: the same bytes as the local runner, on 1 or 2 workers, after a retry."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import ARGS, run_cli
from tests.test_build_cli import one_error_line, shard_hashes


@pytest.fixture()
def local_build(tmp_path, three_files):
    out = tmp_path / "local"
    run_cli("build", three_files, "-o", out, *ARGS)
    return out


def test_direct_runner_and_local_worker_processes_give_the_local_bytes(
    tmp_path,
    three_files,
    local_build,
):
    model = local_build / "spm.model"
    expected = shard_hashes(local_build)
    assert len(expected) == 3
    for runner, workers in (("direct", 1), ("direct", 2), ("local", 2)):
        out = tmp_path / f"{runner}-{workers}"
        summary = json.loads(
            run_cli(
                "build",
                three_files,
                "-o",
                out,
                *ARGS,
                "--runner",
                runner,
                "--workers",
                workers,
                "--json",
            ).stdout
        )
        assert summary["units"]["rebuilt"] == 3
        assert shard_hashes(out) == expected, workers
        assert (out / "spm.model").read_bytes() == model.read_bytes()
        run_cli("verify", out)


def test_a_worker_failing_once_is_retried_and_the_bytes_are_unchanged(
    tmp_path,
    three_files,
    local_build,
):
    marker = tmp_path / "failed-once"
    env = {"MPR_FAULT_WORKER_ONCE": str(marker)}
    out = tmp_path / "retried"
    result = run_cli(
        "build", three_files, "-o", out, *ARGS, "--runner", "direct", "--workers", 2, env=env
    )
    assert marker.exists(), "the fault was injected"
    assert "injected worker fault" in result.stderr and "retrying" in result.stderr
    assert shard_hashes(out) == shard_hashes(local_build)


def test_without_beam_the_error_names_the_extra(tmp_path, three_files):
    fake = tmp_path / "nobeam" / "apache_beam"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no beam here')\n")
    env = {"PYTHONPATH": str(fake.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = run_cli(
        "build", three_files, "-o", tmp_path / "out", *ARGS, "--runner", "direct", env=env, check=2
    )
    assert "pip install 'make-pretrain-records[beam]'" in one_error_line(result.stderr)
    # The local runner never imports Beam.
    run_cli("build", three_files, "-o", tmp_path / "out", *ARGS, env=env)


def test_a_dataflow_job_graph_builds_offline_in_a_dry_run(tmp_path, three_files):
    result = run_cli(
        "build",
        three_files,
        "-o",
        tmp_path / "out",
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
    assert summary["status"] == "dry-run" and summary["units"] == 3
    assert summary["beam"]["runner"] == "dataflow"
    assert {"Units", "Spread", "Build"} <= set(summary["beam"]["transforms"])
    assert summary["beam"]["graph_bytes"] > 1000
    assert not (tmp_path / "out").exists()
    bad = run_cli(
        "build",
        three_files,
        "-o",
        tmp_path / "out",
        "--runner",
        "dataflow",
        "--beam-option",
        "temp_location=gs://b/tmp",
        "--dry-run",
        check=2,
    )
    assert "--beam-option: Invalid GCS bucket (gs://b/tmp)" in one_error_line(bad.stderr)
