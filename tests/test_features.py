"""The fast Example encoder against tf.train.Example's deterministic serialization."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.features import serialize, serialize_with_protobuf


@pytest.mark.parametrize(
    "settings",
    [dict(), dict(feature_names="v2"), dict(masking="dynamic"), dict(max_seq_length=512)],
)
def test_fast_encoder_matches_protobuf_byte_for_byte(settings):
    config = dataclasses.replace(BuildConfig(max_seq_length=128), **settings)
    rng = np.random.default_rng(0)
    rows, length, p = 64, config.max_seq_length, config.max_predictions_per_seq
    lengths = rng.integers(5, length + 1, size=rows)
    real = np.arange(length)[None, :] < lengths[:, None]
    # Ids over every varint width: 1 byte (< 128) up to 5 (>= 2^28).
    ids = rng.choice([0, 1, 127, 128, 16383, 16384, 2**21, 2**28 + 5, 31999], size=(rows, length))
    weights = np.arange(p)[None, :] < rng.integers(0, p + 1, size=rows)[:, None]
    batch = {
        "input_ids": np.where(real, ids, 0).astype(np.int32),
        "segment_ids": (real & (np.arange(length) > 10)).astype(np.int32),
        "token_boundary": real.astype(np.int32),
        "length": lengths.astype(np.int32),
        "label": rng.integers(0, 2, size=rows).astype(np.int32),
        "masked_lm_positions": np.where(weights, rng.integers(1, 100, size=(rows, p)), 0),
        "masked_lm_ids": np.where(weights, rng.integers(5, 32000, size=(rows, p)), 0),
        "masked_lm_weights": weights.astype(np.float32),
    }
    fast = list(serialize(batch, config))
    reference = list(serialize_with_protobuf(batch, config))
    assert len(fast) == rows
    assert fast == reference
