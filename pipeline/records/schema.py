"""The records' features: names (Model Garden v1 or v2) and the spec the manifest stores.

Plain Python (no TensorFlow), so that the build's driver can write the manifest without it.
"""

from __future__ import annotations

from typing import Any

from pretrain_records.pipeline.config import BuildConfig

# compression key -> TFRecordDataset's compression_type
COMPRESSION = {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}


def feature_names(version: str) -> dict[str, str]:
    """Our canonical names -> the names written (Model Garden v1 or v2)."""
    v2 = version == "v2"
    return {
        "input_ids": "input_word_ids" if v2 else "input_ids",
        "input_mask": "input_mask",
        "segment_ids": "input_type_ids" if v2 else "segment_ids",
        "token_boundary": "token_boundary",
        "masked_lm_positions": "masked_lm_positions",
        "masked_lm_ids": "masked_lm_ids",
        "masked_lm_weights": "masked_lm_weights",
        "next_sentence_labels": "next_sentence_labels",
    }


def feature_spec(config: BuildConfig) -> dict[str, dict[str, Any]]:
    """The written features: name -> {dtype, shape}; also stored in the manifest."""
    names = feature_names(config.feature_names)
    length, predictions = config.max_seq_length, config.max_predictions_per_seq
    spec = {
        names["input_ids"]: ("int64", [length]),
        names["input_mask"]: ("int64", [length]),
        names["segment_ids"]: ("int64", [length]),
        names["token_boundary"]: ("int64", [length]),
        names["next_sentence_labels"]: ("int64", [1]),
    }
    if config.masking == "static":
        spec[names["masked_lm_positions"]] = ("int64", [predictions])
        spec[names["masked_lm_ids"]] = ("int64", [predictions])
        spec[names["masked_lm_weights"]] = ("float32", [predictions])
    return {name: {"dtype": dtype, "shape": shape} for name, (dtype, shape) in spec.items()}
