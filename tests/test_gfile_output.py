"""Output to a tf.io.gfile filesystem that is not the local disk: TensorFlow's ram://, in this
process, end to end with a refresh, `verify`, `inspect` and `load_dataset`.

What this covers: the remote code paths of the tool (paths through `tf.io.gfile`, no flock, no
fsync, no local `os` calls on the output), each build in a folder of its own named by
manifest.json. gs:// goes through Google's client instead, tested against a GCS API server in
tests/test_gcs_output.py.
"""

from __future__ import annotations

import json
import shutil

import tensorflow as tf
from pretrain_records.pipeline.readback.loader import load_dataset

from tests.conftest import ARGS, invoke


def test_a_build_and_a_refresh_on_ram_then_verify_inspect_and_load(
    tmp_path, three_files, monkeypatch
):
    # The CLI runs in this process: a ram:// path taken for a local one would be a `ram:`
    # folder in the working directory.
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    out = "ram://bucket/records"
    args = [*ARGS, "--unit-bytes", 40000]
    first = json.loads(invoke("build", three_files, "-o", out, *args, "--json").stdout)
    assert first["status"] == "ok" and first["shards"] >= 1
    gfile = tf.io.gfile
    assert first["build_dir"] == "build-00001"
    assert sorted(n.rstrip("/") for n in gfile.listdir(out)) == [
        ".mpr",
        "build-00001",
        "manifest.json",
    ]
    assert gfile.exists(f"{out}/build-00001/spm.model")
    assert list(work.iterdir()) == [] and not (tmp_path / "ram:").exists()
    changed = three_files / "part-1.txt"
    changed.write_text(changed.read_text() + "\n새로운 리뷰입니다.\n")
    second = json.loads(invoke("build", three_files, "-o", out, *args, "--json").stdout)
    assert second["units"]["rebuilt"] == 1 and second["units"]["reused"] >= 1
    assert second["build_dir"] == "build-00002"
    assert gfile.exists(f"{out}/build-00001/spm.model")  # the previous build, retained
    assert second["input_path"] == f"{out}/build-00002/train-*-of-*.tfrecord"
    assert sorted(gfile.glob(second["input_path"])) == [
        f"{out}/build-00002/train-{i:05d}-of-{second['shards']:05d}.tfrecord"
        for i in range(second["shards"])
    ]
    assert invoke("current", out).stdout == second["input_path"] + "\n"
    invoke("verify", out)
    assert "masked share" in invoke("inspect", out, "-n", 1, "--stats").stdout
    batches = list(load_dataset(out, batch_size=8, seed=1, epochs=1).take(3))
    assert len(batches) == 3 and batches[0]["input_ids"].shape == (8, 64)
    # The same records as a local build of the same input and tokenizer.
    model = tmp_path / "spm.model"
    model.write_bytes(gfile.GFile(f"{out}/build-00002/spm.model", "rb").read())
    local = tmp_path / "local"
    invoke("build", three_files, "-o", local, *args, "--spm-model", model)
    manifest = json.loads(gfile.GFile(f"{out}/manifest.json").read())
    local_manifest = json.loads((local / "manifest.json").read_text())
    assert [s["name"].split("/")[1] for s in manifest["shards"]] == [
        s["name"].split("/")[1] for s in local_manifest["shards"]
    ]
    for shard, local_shard in zip(manifest["shards"], local_manifest["shards"], strict=True):
        assert (
            gfile.GFile(f"{out}/{shard['name']}", "rb").read()
            == (local / local_shard["name"]).read_bytes()
        )
    shutil.rmtree(local)
    assert list(work.iterdir()) == []  # nor did the refresh, verify, inspect or the loader
