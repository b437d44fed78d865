"""`inspect`: a build's records decoded back into tokens, masks and labels (stats.py has its
statistics, verification.py its check)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.records import manifest as manifest_lib
from pretrain_records.pipeline.records.frames import read_records
from pretrain_records.pipeline.records.schema import feature_names


def locate(path: str) -> tuple[str, dict[str, Any], list[str]]:
    """(output dir, manifest, shard paths) for an output directory, a build folder of it
    `OUT/build-NNNNN/`, or one shard (at OUT's top level or in a build folder); a build folder
    is described by OUT's manifest as far as it can be (see `_as_far_as`)."""
    if storage.isdir(path):
        parent, _, name = path.rstrip("/").rpartition("/")
        inside = manifest_lib.BUILD_FOLDER.fullmatch(name)
        if not inside or storage.exists(storage.join(path, manifest_lib.MANIFEST)):
            manifest = manifest_lib.read(path)
            shards = [manifest_lib.safe_member(path, s["name"]) for s in manifest["shards"]]
            return path, manifest, shards
        directory = parent or "."
        names = [n for n in storage.listdir(path) if manifest_lib.SHARD_NAME.fullmatch(n)]
        shards = [storage.join(path, n) for n in names]
        return directory, _as_far_as(manifest_lib.read(directory), name, shards), shards
    directory = path.rsplit("/", 1)[0] if "/" in path else "."
    parent, _, folder = directory.rstrip("/").rpartition("/")
    if not manifest_lib.BUILD_FOLDER.fullmatch(folder):
        return directory, manifest_lib.read(directory), [path]
    directory = parent or "."
    return directory, _as_far_as(manifest_lib.read(directory), folder, [path]), [path]


def _as_far_as(manifest: dict[str, Any], folder: str, shards: list[str]) -> dict[str, Any]:
    """The published manifest, for shards of `folder`. An earlier build kept by the retention
    has its own token totals (left out: they are not the current build's) and may have another
    compression (read from the shards' names)."""
    if (manifest.get("build_dir") or "") == folder:
        return manifest
    suffixes = {".gz": "gzip", ".zz": "zlib"}
    compression = next((suffixes[s[-3:]] for s in shards if s[-3:] in suffixes), "none")
    return {
        **manifest,
        "totals": None,
        "config": {**manifest["config"], "compression": compression},
    }


_PARSED_AT_ONCE = 256  # records parsed by one tf.io.parse_example call


def examples(manifest: dict[str, Any], shards: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Parsed records shard by shard, read through `storage` (so on local disks, gs:// and the
    other tf.io.gfile filesystems alike); a shard that cannot be read is a DataError naming
    it."""
    import tensorflow as tf
    from pretrain_records.pipeline.records import features

    spec = features.parse_spec(manifest["features"])
    compression = manifest["config"]["compression"]
    for shard in shards:
        batch: list[bytes] = []
        for record in read_records(shard, compression):
            batch.append(record)
            if len(batch) == _PARSED_AT_ONCE:
                yield from _parsed(batch, spec, shard, tf)
                batch = []
        yield from _parsed(batch, spec, shard, tf)


def _parsed(
    records: list[bytes], spec: dict[str, Any], shard: str, tf: Any
) -> Iterator[dict[str, np.ndarray]]:
    if not records:
        return
    try:
        columns = {k: v.numpy() for k, v in tf.io.parse_example(records, spec).items()}
    except tf.errors.OpError as error:
        first = error.message.strip().splitlines()[0] if error.message.strip() else ""
        raise DataError(f"{shard}: unreadable ({first})", path=shard) from None
    for row in range(len(records)):
        yield _canonical({k: v[row] for k, v in columns.items()})


def _canonical(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Written names (v1 or v2) -> our canonical ones."""
    renamed = {written: ours for ours, written in feature_names("v2").items()}
    return {renamed.get(k, k): v for k, v in example.items()}


def show_examples(path: str, count: int) -> Iterator[str]:
    """Decoded examples: pieces, `[[shown|original]]` where masked, segments, label."""
    from pretrain_records.pipeline.tokenizer.tokenize import Tokenizer

    directory, manifest, shards = locate(path)
    model = manifest_lib.safe_member(directory, manifest["tokenizer"]["file"])
    tokenizer = Tokenizer(storage.read_bytes(model), name=model)
    task = manifest["config"]["sentence_task"]
    meanings = {"nsp": ("actual next", "random B"), "sop": ("in order", "swapped"), "none": "--"}
    if count == 0:
        return
    for number, example in enumerate(examples(manifest, shards)):
        length = int(example["input_mask"].sum())
        originals: dict[int, int] = {}
        if "masked_lm_positions" in example:
            for p, label, w in zip(
                example["masked_lm_positions"],
                example["masked_lm_ids"],
                example["masked_lm_weights"],
                strict=True,
            ):
                if w > 0:
                    originals[int(p)] = int(label)
        shown = []
        for t, piece in enumerate(tokenizer.decode_pieces(example["input_ids"][:length])):
            if t in originals:
                shown.append(f"[[{piece}|{tokenizer.processor.id_to_piece(originals[t])}]]")
            else:
                shown.append(piece)
        label = int(example["next_sentence_labels"][0])
        yield (
            f"--- example {number}: {length} tokens, {len(originals)} masked, "
            f"{task} label {label} ({meanings[task][label]})\n" + " ".join(shown)
        )
        if number + 1 >= count:
            return
