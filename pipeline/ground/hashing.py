"""Seeded 64-bit hashes: the shuffle key of every record (and of every sentence the tokenizer
sample draws) from a seed and an ordinal, with SplitMix64's finalizer."""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, elementwise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def record_keys(unit_seed: int, ordinals: np.ndarray) -> np.ndarray:
    """The shuffle key of each record of a unit: a 64-bit hash of (unit seed, ordinal).
    Sorting every record of a build by key is a seeded random permutation of them."""
    with np.errstate(over="ignore"):
        base = _mix(np.array([unit_seed & (2**64 - 1)], np.uint64))[0]
        return _mix(base + (ordinals.astype(np.uint64) + np.uint64(1)) * _GOLDEN)
