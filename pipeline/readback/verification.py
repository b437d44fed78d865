"""`verify`: every file of the published build against its manifest, through the one
integrity check (records/integrity.py), and nothing that looks like a shard beside them."""

from __future__ import annotations

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.records import manifest as manifest_lib
from pretrain_records.pipeline.records.integrity import check_file


def verify(out: str, quick: bool = False) -> list[str]:
    """Problems found checking every file of the build against the manifest (empty: none),
    and files that look like shards but are not in it. Needs no TensorFlow.

    Every file: present, its size and sha256 as recorded. Every shard, read once: its records
    counted from their frames, and both CRCs of every record checked (a shard written wrong,
    or changed together with its manifest entry); `quick` skips the CRCs only."""
    manifest = manifest_lib.read(out)
    compression = manifest["config"]["compression"]
    owned = manifest_lib.owned_files(manifest)
    problems: list[str] = []
    shard_names = {s["name"] for s in manifest["shards"]}
    for shard in manifest["shards"]:
        path = manifest_lib.safe_member(out, shard["name"])
        level = "frames" if quick else "crc"
        problems += check_file(path, shard, level, compression, against="the manifest")
    for name, entry in owned.items():
        if name not in shard_names:
            path = manifest_lib.safe_member(out, name)
            problems += check_file(path, entry, "sha256", against="the manifest")
    folder = str(manifest.get("build_dir") or "")
    where = storage.join(out, folder) if folder else out
    for name in storage.listdir(where):
        listed = f"{folder}/{name}" if folder else name
        if manifest_lib.SHARD_NAME.fullmatch(name) and listed not in shard_names:
            problems.append(
                f"{storage.join(where, name)}: looks like a shard but is not in the manifest "
                "(a reader globbing the build's train-* would read it)"
            )
    return problems
