"""verify reads every record's framing CRCs (a shard whose sha256 matches a manifest that was
rewritten with it still fails), `verify --quick` skips them; the frame walk itself, on records
TensorFlow wrote, in blocks of any size."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import struct
import zlib

import pytest
import tensorflow as tf
from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.records.frames import FrameWalk, check_shard, read_records
from pretrain_records.pipeline.records.schema import COMPRESSION

from tests.conftest import ARGS, corpus, invoke, run_cli

WBITS = {"gzip": 31, "zlib": 15}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The same records as uncompressed, gzip and zlib shards (the compressed builds re-cut
    the first one's kept records)."""
    root = tmp_path_factory.mktemp("verify")
    source = corpus("ko/nsmc_reviews_sample.txt")
    invoke("build", source, "-o", root / "none", *ARGS, "--num-shards", 2)
    for compression in WBITS:
        shutil.copytree(root / "none", root / compression)
        invoke("build", source, "-o", root / compression, *ARGS, "--num-shards", 2,
               "--compression", compression)  # fmt: skip
    return root


def fresh(outputs, tmp_path, compression):
    out = tmp_path / compression
    shutil.copytree(outputs / compression, out)
    return out


def frame_offset(stream: bytes, index: int) -> int:
    """Where record `index`'s frame starts in a record stream."""
    offset = 0
    for _ in range(index):
        offset += 16 + struct.unpack_from("<Q", stream, offset)[0]
    return offset


def rewrite_shard(out, name, data: bytes) -> None:
    """Replaces a shard as if the tool had written it: its size and sha256 in the manifest, and
    its size in the tool's ledger of its builds (.mpr/builds.json), match the new bytes."""
    path = out / name
    path.write_bytes(data)
    manifest = json.loads((out / "manifest.json").read_text())
    (entry,) = [s for s in manifest["shards"] if s["name"] == name]
    entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    ledger = json.loads((out / ".mpr" / "builds.json").read_text())
    (build,) = [b for b in ledger["builds"] if b["dir"] == manifest["build_dir"]]
    assert name in build["sizes"]
    build["sizes"][name] = len(data)
    (out / ".mpr" / "builds.json").write_text(json.dumps(ledger))


def first_shard(out) -> str:
    return json.loads((out / "manifest.json").read_text())["shards"][0]["name"]


def test_verify_names_the_shard_and_record_whose_data_crc_is_wrong_though_sha256_matches(
    outputs, tmp_path
):
    out = fresh(outputs, tmp_path, "none")
    name = first_shard(out)
    data = bytearray((out / name).read_bytes())
    offset = frame_offset(data, 17)
    data[offset + 12 + 5] ^= 0x01  # a byte of record 17's serialized example
    rewrite_shard(out, name, bytes(data))
    result = run_cli("verify", out, check=1)
    assert result.stderr.splitlines() == [
        f"make-pretrain-records: verify: {out / name}: record 17 (byte {offset}): data CRC mismatch"
    ]
    quick = run_cli("verify", out, "--quick")
    assert quick.stdout == f"{out}: every file matches the manifest (record CRCs not checked)\n"
    assert run_cli("verify", outputs / "none").stdout == (
        f"{outputs / 'none'}: every file matches the manifest and every record's CRCs\n"
    )


@pytest.mark.parametrize("compression", ["gzip", "zlib"])
def test_verify_checks_the_inflated_records_of_compressed_shards(outputs, tmp_path, compression):
    out = fresh(outputs, tmp_path, compression)
    name = first_shard(out)
    stream = bytearray(zlib.decompress((out / name).read_bytes(), wbits=WBITS[compression]))
    offsets = [frame_offset(stream, 3), frame_offset(stream, 40)]
    for offset in offsets:
        stream[offset + 12 + 9] ^= 0x80
    packer = zlib.compressobj(wbits=WBITS[compression])
    rewrite_shard(out, name, packer.compress(bytes(stream)) + packer.flush())
    result = run_cli("verify", out, check=1)
    assert result.stderr.splitlines() == [
        f"make-pretrain-records: verify: {out / name}: record {index} (byte {offset} of the "
        "inflated stream): data CRC mismatch"
        for index, offset in zip([3, 40], offsets, strict=True)
    ]
    run_cli("verify", out, "--quick")


def test_a_wrong_length_crc_is_named_and_the_count_not_guessed(outputs, tmp_path):
    out = fresh(outputs, tmp_path, "none")
    name = first_shard(out)
    data = bytearray((out / name).read_bytes())
    offset = frame_offset(data, 9)
    data[offset + 8] ^= 0x01  # the length's CRC; the length itself is intact
    rewrite_shard(out, name, bytes(data))
    result = run_cli("verify", out, check=1)
    assert result.stderr.splitlines() == [
        f"make-pretrain-records: verify: {out / name}: record 9 (byte {offset}): length CRC "
        "mismatch; the records after it cannot be found"
    ]
    run_cli("verify", out, "--quick")  # the lengths still frame every record


def write_records(path, records, compression) -> None:
    options = tf.io.TFRecordOptions(compression_type=COMPRESSION[compression])
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in records:
            writer.write(record)


@pytest.mark.parametrize("compression", ["none", "gzip", "zlib"])
def test_check_shard_reads_tensorflows_records_with_one_bigger_than_a_block(tmp_path, compression):
    rng = random.Random(5)
    records = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(200)]
    records[150] = rng.randbytes(9 << 20)  # more than the 4 MiB read (and inflated) at a time
    path = tmp_path / "shard"
    write_records(path, records, compression)
    check = check_shard(str(path), compression)
    assert (check.records, check.problems, check.complete) == (200, [], True)
    assert (check.size, check.sha256) == (
        path.stat().st_size,
        hashlib.sha256(path.read_bytes()).hexdigest(),
    )


def test_the_frame_walk_finds_the_same_in_blocks_of_any_size(tmp_path):
    rng = random.Random(11)
    records = [rng.randbytes(rng.randrange(0, 700)) for _ in range(60)]
    write_records(tmp_path / "shard", records, "none")
    good = (tmp_path / "shard").read_bytes()
    bad = bytearray(good)
    for index in (0, 7, 59):
        bad[frame_offset(bad, index) + 12 + len(records[index]) + 1] ^= 0x04  # its data CRC
    cut = bytes(bad[: frame_offset(bad, 30) + 14])

    def walk(data: bytes, most: int | None) -> tuple:
        frames = FrameWalk("s")
        at = 0
        while at < len(data):
            step = len(data) if most is None else rng.randint(1, most)
            frames.feed(data[at : at + step])
            at += step
        frames.finish()
        return frames.records, frames.problems, frames.lost, frames.cut

    assert walk(good, None) == (60, [], False, False)
    assert walk(bytes(bad), None) == (
        60,
        [f"s: record {i} (byte {frame_offset(bad, i)}): data CRC mismatch" for i in (0, 7, 59)],
        False,
        False,
    )
    assert walk(cut, None) == (
        30,
        [
            "s: record 0 (byte 0): data CRC mismatch",
            f"s: record 7 (byte {frame_offset(bad, 7)}): data CRC mismatch",
            f"s: record 30 (byte {frame_offset(bad, 30)}): the file ends inside this record",
        ],
        False,
        True,
    )
    for most in (1, 2, 5, 13, 100, 4096):
        for data in (good, bytes(bad), cut):
            assert walk(data, most) == walk(data, None), most


@pytest.mark.parametrize("compression", ["none", "gzip", "zlib"])
def test_read_records_gives_tensorflows_records_with_one_bigger_than_a_block(tmp_path, compression):
    rng = random.Random(7)
    records = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(200)]
    records[120] = rng.randbytes(9 << 20)  # more than the 4 MiB read (and inflated) at a time
    records[0] = b""
    path = tmp_path / "shard"
    write_records(path, records, compression)
    assert list(read_records(str(path), compression)) == records


def test_read_records_names_a_damaged_or_cut_record(tmp_path):
    rng = random.Random(13)
    records = [rng.randbytes(rng.randrange(1, 700)) for _ in range(40)]
    write_records(tmp_path / "shard", records, "none")
    good = (tmp_path / "shard").read_bytes()
    cases = {
        "data": (frame_offset(good, 17) + 12 + 3, 17, "data CRC mismatch"),
        "length": (frame_offset(good, 25) + 8, 25, "length CRC mismatch"),
    }
    for what, (at, index, problem) in cases.items():
        bad = bytearray(good)
        bad[at] ^= 0x10
        path = tmp_path / what
        path.write_bytes(bytes(bad))
        read = []
        with pytest.raises(DataError) as raised:
            read.extend(read_records(str(path), "none"))
        assert read == records[:index]  # every record before the damaged one, intact
        assert str(raised.value) == (
            f"{path}: unreadable (record {index} (byte {frame_offset(good, index)}): {problem})"
        )
    cut = tmp_path / "cut"
    cut.write_bytes(good[: frame_offset(good, 30) + 14])
    with pytest.raises(DataError, match=r"record 30 \(byte \d+\): the file ends inside"):
        list(read_records(str(cut), "none"))
    packed = tmp_path / "packed"
    write_records(packed, records, "gzip")
    packed.write_bytes(packed.read_bytes()[:-40])
    with pytest.raises(DataError, match="unreadable \\(the compressed stream ends early\\)"):
        list(read_records(str(packed), "gzip"))
