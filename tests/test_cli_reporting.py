"""What the command reports: `build --json` failures as one JSON object, error lines that stay
one line whatever a file name holds, a train-tokenizer prefix that names a folder refused, and
inspect --stats (integer length bins, the manifest's token totals)."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import threading

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import CLI, corpus, invoke, one_error_line, run_cli

SAMPLE = corpus("en/bert_sample_text.txt")


def model_args(model) -> list:
    return ["--spm-model", model, "--dupe-factor", 1, "--max-seq-length", 64,
            "--max-predictions-per-seq", 10]  # fmt: skip


def json_failure(result) -> dict:
    """The one JSON object a failed `--json` run printed on stdout."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


# -- build --json on failure --------------------------------------------------------------------


def test_json_reports_a_command_line_mistake_that_click_finds(tmp_path):
    result = run_cli("build", SAMPLE, "--json", check=2)
    assert "Missing option '-o'" in result.stderr
    assert json_failure(result) == {
        "status": "error",
        "exit_code": 2,
        "message": "Missing option '-o' / '--output'.",
        "file": None,
        "line": None,
    }


def test_json_reports_a_config_error_with_its_file_and_line(tmp_path):
    config = tmp_path / "corpus.yaml"
    config.write_text("max_n: 3\nmax_nn: 4\n")
    result = run_cli("build", SAMPLE, "-o", tmp_path / "out", "--config", config, "--json", check=2)
    report = json_failure(result)
    assert report.pop("message").startswith(f"{config}:2: unknown config key 'max_nn'")
    assert report == {"status": "error", "exit_code": 2, "file": str(config), "line": 2}
    result = run_cli("build", SAMPLE, "-o", tmp_path / "out", "--max-n", 99, "--json", check=2)
    assert json_failure(result) == {
        "status": "error",
        "exit_code": 2,
        "message": "config key max_n: must be >= 1 and <= 16, got 99",
        "file": None,
        "line": None,
    }


def bad_file_with_a_newline(tmp_path):
    """A `lines` input named with a newline, whose 4th line is not UTF-8."""
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "bad\nname.txt"
    path.write_bytes(b"A first sentence.\nAnother one.\n\nThen \xff\xfe here.\nMore.\n")
    return path


def test_a_file_name_with_a_newline_stays_on_the_one_error_line(tmp_path, english_model):
    path = bad_file_with_a_newline(tmp_path)
    result = run_cli("build", path, "-o", tmp_path / "out", *model_args(english_model), check=1)
    escaped = str(path).replace("\n", "\\n")
    assert one_error_line(result.stderr) == (
        f"make-pretrain-records: error: {escaped}:4: invalid UTF-8 at byte 5 of the line"
    )
    assert result.stderr.splitlines()[-1] == one_error_line(result.stderr)
    # With --json: the same line on stderr, and the raw name (JSON escapes it) on stdout.
    args = ["build", path, "-o", tmp_path / "out", *model_args(english_model), "-q", "--json"]
    result = run_cli(*args, check=1)
    assert result.stderr == (
        f"make-pretrain-records: error: {escaped}:4: invalid UTF-8 at byte 5 of the line\n"
    )
    assert json_failure(result) == {
        "status": "error",
        "exit_code": 1,
        "message": f"{path}:4: invalid UTF-8 at byte 5 of the line",
        "file": str(path),
        "line": 4,
    }


def test_control_characters_of_a_message_are_shown_escaped():
    from pretrain_records.cli.main import one_line

    assert one_line("a\nb\rc\td\x1b[0me\x7f\x85f\u2028g\x00") == (
        "a\\nb\\rc\\td\\x1b[0me\\x7f\\x85f\\u2028g\\x00"
    )
    assert one_line("naïve ünïcode, 한국어") == "naïve ünïcode, 한국어"


def test_the_file_and_line_of_a_message_are_those_of_an_existing_path(tmp_path):
    from pretrain_records.cli.main import error_location

    odd = tmp_path / "a: b.txt"
    odd.write_text("")
    assert error_location(f"{odd}:12: invalid JSON (x: y)") == (str(odd), 12)
    assert error_location(f"{odd}: corrupt (Error -3: bad)") == (str(odd), None)
    assert error_location(f"{tmp_path}: cannot create the output directory") == (
        str(tmp_path),
        None,
    )
    assert error_location(f"{tmp_path}/missing.txt: no such file") == (None, None)
    assert error_location("config key max_n: must be >= 1") == (None, None)


def start_paused(point: str, *args: object, hooks: str = "") -> subprocess.Popen:
    """A build stopped at a test hook's pause point, its stdout captured (conftest's helper
    discards it)."""
    env = dict(os.environ, MPR_TEST_HOOKS=";".join(filter(None, [f"pause={point}", hooks])))
    process = subprocess.Popen(
        [str(CLI), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = threading.Timer(300, process.kill)
    deadline.start()
    try:
        for line in process.stderr:
            if line.startswith("MPR-PAUSED"):
                return process
    finally:
        deadline.cancel()
    process.wait()
    raise AssertionError(f"the run ended before {point}")


def test_json_reports_a_locked_output_directory(tmp_path, english_model):
    out = tmp_path / "out"
    args = ["build", SAMPLE, "-o", out, *model_args(english_model), "--workers", 1]
    holder = start_paused("chunk", *args)
    try:
        result = run_cli(*args, "--json", check=75)
    finally:
        holder.kill()
        holder.communicate()
    assert json_failure(result) == {
        "status": "error",
        "exit_code": 75,
        "message": f"{out} is being built by another run (pid {holder.pid}); wait for it or "
        "stop it",
        "file": None,
        "line": None,
    }


@pytest.mark.parametrize(
    ("sent", "code", "message"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")],
)
def test_json_reports_a_stopped_run(tmp_path, english_model, sent, code, message):
    args = ["build", SAMPLE, "-o", tmp_path / "out", *model_args(english_model), "--json"]
    victim = start_paused("merge#1", *args, "--workers", 1)  # the main thread, in Python
    victim.send_signal(sent)
    stdout, stderr = victim.communicate(timeout=120)
    assert victim.returncode == code, stderr
    assert stderr.splitlines() == [f"make-pretrain-records: error: {message}"]
    assert [json.loads(line) for line in stdout.splitlines()] == [
        {"status": "error", "exit_code": code, "message": message, "file": None, "line": None}
    ]


def test_json_reports_a_run_the_stop_watcher_ends(tmp_path, english_model):
    args = ["build", SAMPLE, "-o", tmp_path / "out", *model_args(english_model), "--json"]
    # Paused in a tf.data thread: the main thread waits inside TensorFlow, the watcher ends it.
    victim = start_paused("chunk#1", *args, "--workers", 1, hooks="stop_grace=2")
    victim.send_signal(signal.SIGTERM)
    stdout, stderr = victim.communicate(timeout=120)
    message = "stopped at once (still running 2 s after SIGTERM); a rerun resumes"
    assert victim.returncode == 143, stderr
    assert one_error_line(stderr) == f"make-pretrain-records: error: {message}"
    assert [json.loads(line) for line in stdout.splitlines()] == [
        {"status": "error", "exit_code": 143, "message": message, "file": None, "line": None}
    ]


# -- train-tokenizer ------------------------------------------------------------------------


def test_train_tokenizer_refuses_a_prefix_that_names_a_folder(tmp_path):
    folder = tmp_path / "spm"
    result = invoke("train-tokenizer", SAMPLE, "-o", f"{folder}/", check=2)
    assert one_error_line(result.stderr) == (
        f"make-pretrain-records: error: -o {folder}/: names a folder, not a file name prefix; "
        f"give a prefix such as {folder}/en (writes {folder}/en.model and {folder}/en.vocab)"
    )
    assert not folder.exists()  # refused before anything was made or read
    folder.mkdir()
    result = invoke("train-tokenizer", SAMPLE, "-o", folder, "--language", "ko", check=2)
    assert one_error_line(result.stderr) == (
        f"make-pretrain-records: error: -o {folder}: names a folder, not a file name prefix; "
        f"give a prefix such as {folder}/ko (writes {folder}/ko.model and {folder}/ko.vocab)"
    )
    assert list(folder.iterdir()) == []


# -- inspect --stats --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "bins"),
    [
        (4, [(1, 1), (2, 2), (3, 3), (4, 4)]),
        (5, [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]),
        (8, [(i, i) for i in range(1, 9)]),
        (12, [(1, 1), (2, 3), (4, 4), (5, 6), (7, 7), (8, 9), (10, 10), (11, 12)]),
        (128, [(1 + 16 * i, 16 * (i + 1)) for i in range(8)]),
    ],
)
def test_length_bins_are_distinct_integer_ranges(length, bins):
    from pretrain_records.pipeline.readback.stats import length_bins

    assert length_bins(length) == bins


def test_length_bins_cover_every_length_once_for_any_max_seq_length():
    from pretrain_records.pipeline.readback.stats import length_bins

    for length in [*range(4, 70), 100, 500, 511, 4095, 8191, 8192]:
        bins = length_bins(length)
        covered = [n for lo, hi in bins for n in range(lo, hi + 1)]
        assert covered == list(range(1, length + 1)), length
        widths = {hi - lo + 1 for lo, hi in bins}
        assert len(bins) == min(8, length) and max(widths) - min(widths) <= 1, length


@pytest.fixture(scope="module")
def short_records(tmp_path_factory, english_model):
    """Records of at most 8 tokens, of several lengths (short targets half of the time)."""
    out = tmp_path_factory.mktemp("short") / "out"
    invoke("build", corpus("en/botchan.txt"), "-o", out, "--spm-model", english_model,
           "--dupe-factor", 1, "--max-seq-length", 8, "--max-predictions-per-seq", 2,
           "--short-seq-prob", 0.5)  # fmt: skip
    return out


def stored_lengths(out) -> collections.Counter:
    manifest = json.loads((out / "manifest.json").read_text())
    files = [str(out / s["name"]) for s in manifest["shards"]]
    spec = {"input_mask": tf.io.FixedLenFeature([8], tf.int64)}
    raw = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, spec))
    return collections.Counter(int(np.sum(r["input_mask"])) for r in raw.as_numpy_iterator())


def test_stats_bin_short_records_one_length_each(short_records):
    from pretrain_records.pipeline.readback.stats import collect_stats

    lengths = stored_lengths(short_records)
    stats = collect_stats(str(short_records))
    assert stats["length_bins"] == [[n, n] for n in range(1, 9)]
    assert stats["length_histogram"] == [lengths[n] for n in range(1, 9)]
    assert sum(stats["length_histogram"]) == stats["records"] == sum(lengths.values()) > 50
    assert len(lengths) >= 3  # several bins hold records
    shown = invoke("inspect", short_records, "-n", 0, "--stats").stdout.splitlines()
    start = shown.index("length histogram (tokens, both ends included):") + 1
    rows = [line.split()[:2] for line in shown[start : start + 8]]
    assert rows == [[str(n), str(lengths[n])] for n in range(1, 9)]
    assert shown[start + 8].startswith("masked share")


def test_stats_show_the_manifests_token_totals_when_it_has_them(short_records, tmp_path):
    from pretrain_records.pipeline.readback.stats import collect_stats, format_stats

    out = tmp_path / "out"
    shutil.copytree(short_records, out)
    manifest = json.loads((short_records / "manifest.json").read_text())
    manifest["totals"]["tokens"] = {"input": 123456, "in_records": 89876, "dropped": 33580}
    (out / "manifest.json").write_text(json.dumps(manifest))
    stats = collect_stats(str(out))
    assert stats["tokens"] == {"input": 123456, "in_records": 89876, "dropped": 33580}
    lines = format_stats(stats).splitlines()
    assert lines[1] == (
        "input tokens: 123,456 per pass; in records 72.8% (89,876), dropped by truncation 33,580"
    )
    del manifest["totals"]["tokens"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    stats = collect_stats(str(out))
    assert "tokens" not in stats
    assert not any(line.startswith("input tokens") for line in format_stats(stats).splitlines())
