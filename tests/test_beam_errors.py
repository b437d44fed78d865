"""A unit's bad input on Beam is the build's one-line error naming the file and line, on any
number of workers (no worker tracebacks, no 'unexpected RuntimeError')."""

from __future__ import annotations

import json

import pytest

from tests.conftest import invoke, one_error_line, run_cli


@pytest.fixture(scope="module")
def broken_jsonl(tmp_path_factory):
    folder = tmp_path_factory.mktemp("beam-errors")
    good = [json.dumps({"text": f"Line {i} says a thing. It goes on. " * 20}) for i in range(60)]
    bad = list(good)
    bad[37] = '{"text": broken'
    (folder / "a.jsonl").write_text("\n".join(bad) + "\n")
    (folder / "b.jsonl").write_text("\n".join(good) + "\n")
    invoke(
        "train-tokenizer", folder / "b.jsonl", "-o", folder / "m", "--input-format", "jsonl",
        "--vocab-size", 300,
    )  # fmt: skip
    return folder


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_json_line_on_beam_is_one_line_naming_file_and_line(broken_jsonl, workers):
    result = run_cli(
        "build", broken_jsonl / "a.jsonl", broken_jsonl / "b.jsonl",
        "-o", broken_jsonl / f"out-{workers}", "--input-format", "jsonl",
        "--spm-model", broken_jsonl / "m.model", "--unit-bytes", 4096,
        "--runner", "direct", "--workers", workers,
        check=1,
    )  # fmt: skip
    line = one_error_line(result.stderr)
    assert line.endswith(f"{broken_jsonl / 'a.jsonl'}:38: invalid JSON (Expecting value)"), line
    assert "unexpected" not in line
    assert "sdk_worker" not in result.stderr
