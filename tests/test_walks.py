"""Directory walks leave nothing out silently: symlinked folders are followed (each real folder
once, loops counted), an unreadable folder is an error naming it, and a remote walk skips the
output directory and hidden entries as a local one does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
import tensorflow as tf

from tests.conftest import CLI, corpus, invoke, one_error_line, summary_of

SAMPLE = corpus("en/bert_sample_text.txt")  # 3 documents


def test_symlinked_folders_are_followed_once_and_loops_counted(tmp_path, model_args):
    data, other = tmp_path / "data", tmp_path / "other"
    (data / "real").mkdir(parents=True)
    other.mkdir()
    shutil.copy(SAMPLE, data / "a.txt")
    (other / "b.txt").write_text("Elsewhere one.\nElsewhere two.\n")
    (data / "real" / "c.txt").write_text("Real one.\n\nReal two.\n")
    os.symlink(other, data / "linked")  # a folder outside the input: followed
    os.symlink(data, data / "real" / "loop")  # back to the top: a loop
    os.symlink(data / "real", data / "twice")  # a second way to a folder walked already
    args = [*model_args, "--json"]
    summary = summary_of(invoke("build", data, "-o", tmp_path / "out", *args))
    assert summary["documents"] == 3 + 1 + 2
    assert summary["skipped"]["repeated_folders"] == 2
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert sorted(i["path"] for i in manifest["inputs"]) == [
        "data/a.txt",
        "data/real/c.txt",
        "other/b.txt",
    ]


def test_an_unreadable_folder_is_an_error_naming_it(tmp_path, model_args):
    data = tmp_path / "data"
    (data / "locked").mkdir(parents=True)
    shutil.copy(SAMPLE, data / "a.txt")
    shutil.copy(SAMPLE, data / "locked" / "b.txt")
    (data / "locked").chmod(0)
    command = [str(CLI), "build", str(data), "-o", str(tmp_path / "out")]
    command += [*map(str, model_args), "--workers", "1"]
    if os.geteuid() == 0:
        # Root reads any folder: run the build without the capabilities that let it.
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a mode-000 folder stays readable")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    finally:
        (data / "locked").chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert one_error_line(result.stderr).endswith(
        f"{data / 'locked'}: cannot read the folder (Permission denied)"
    )
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_remote_walk_skips_the_output_and_hidden_entries(tmp_path, model_args):
    root = f"ram://walk-{uuid.uuid4().hex}"
    gfile = tf.io.gfile
    gfile.makedirs(f"{root}/sub")
    with gfile.GFile(f"{root}/a.txt", "w") as stream:
        stream.write(SAMPLE.read_text())
    with gfile.GFile(f"{root}/sub/b.txt", "w") as stream:
        stream.write("One more document.\nIts second sentence.\n")
    with gfile.GFile(f"{root}/.notes.txt", "w") as stream:
        stream.write("Not an input.\n")
    out = f"{root}/out"
    args = [*model_args, "--json"]
    first = summary_of(invoke("build", root, "-o", out, *args))
    second = summary_of(invoke("build", root, "-o", out, *args))  # OUT is in the folder now
    assert first["documents"] == second["documents"] == 4
    assert second["status"] == "up-to-date"
    assert first["skipped"]["hidden"] == 1 and first["skipped"]["output_dir"] == 0
    assert second["skipped"] == {**first["skipped"], "output_dir": 1}
    assert second["units"]["reused"] == first["units"]["total"] and second["units"]["rebuilt"] == 0
    manifest = json.loads(gfile.GFile(f"{out}/manifest.json").read())
    assert sorted(i["path"] for i in manifest["inputs"]) == [f"{root}/a.txt", f"{root}/sub/b.txt"]
    gfile.rmtree(root)
