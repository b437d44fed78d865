"""Two reference implementations of the NgramMask algorithm, for tests and benchmarks.

``numpy_ngram_mask`` is a direct NumPy transcription; ``tf_ngram_mask`` is how one
would write the masker with TensorFlow ops alone (``tf.while_loop`` over starts from
``tf.random.shuffle``). They share the op's rules, not its code or its random stream,
so agreement with the op is checked statistically.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _weights(max_n: int, favor_shorter_ngram: bool) -> np.ndarray:
    weights = 1.0 / np.arange(1, max_n + 1)
    return weights if favor_shorter_ngram else weights[::-1].copy()


def budget(n_tokens: int, mask_ratio: float, max_predictions: int) -> int:
    """The prediction budget: min(P, max(1, round(n * ratio))), round half to even."""
    wanted = round(n_tokens * float(np.float32(mask_ratio)))
    return min(max_predictions, max(1, wanted))


def numpy_ngram_mask(
    ids: np.ndarray,
    boundary: np.ndarray,
    rng: np.random.Generator,
    *,
    max_n: int = 3,
    mask_ratio: float = 0.15,
    max_predictions: int = 20,
    favor_shorter_ngram: bool = True,
    whole_word: bool = True,
    special_ids: Sequence[int] = (),
    mask_id: int,
    vocab_size: int,
    mask_token_rate: float = 0.8,
    random_token_rate: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks one row; returns (masked_ids, positions, original ids at positions)."""
    specials = set(int(i) for i in special_ids) | {0}
    units: list[list[int]] = []
    joined: list[bool] = []
    previous_maskable = False
    for i, token in enumerate(ids.tolist()):
        if token in specials:
            previous_maskable = False
            continue
        if not previous_maskable or not whole_word or boundary[i]:
            if units:
                joined[-1] = previous_maskable
            units.append([i])
            joined.append(False)
        else:
            units[-1].append(i)
        previous_maskable = True
    n_tokens = int(np.count_nonzero(ids != 0))
    limit = budget(n_tokens, mask_ratio, max_predictions)
    weights = _weights(max_n, favor_shorter_ngram)
    covered = np.zeros(len(units), dtype=bool)
    filled = 0
    for start in rng.permutation(len(units)):
        if filled >= limit:
            break
        if covered[start]:
            continue
        available = 1
        while (
            available < max_n
            and start + available < len(units)
            and joined[start + available - 1]
            and not covered[start + available]
        ):
            available += 1
        p = weights[:available] / weights[:available].sum()
        n = int(rng.choice(np.arange(1, available + 1), p=p))
        while n > 0 and sum(len(units[u]) for u in range(start, start + n)) > limit - filled:
            n -= 1
        if n == 0:
            continue
        covered[start : start + n] = True
        filled += sum(len(units[u]) for u in range(start, start + n))
    positions = np.array(
        sorted(t for u, unit in enumerate(units) if covered[u] for t in unit), dtype=np.int64
    )
    masked = ids.copy()
    non_special = np.array([i for i in range(vocab_size) if i not in specials])
    for position in positions:
        draw = rng.random()
        if draw < mask_token_rate:
            masked[position] = mask_id
        elif draw < mask_token_rate + random_token_rate:
            masked[position] = rng.choice(non_special)
    return masked, positions, ids[positions]


def tf_ngram_mask(
    ids,
    boundary,
    seed: int | None = None,
    *,
    max_n: int = 3,
    mask_ratio: float = 0.15,
    max_predictions: int = 20,
    favor_shorter_ngram: bool = True,
    whole_word: bool = True,
    special_ids: Sequence[int] = (),
    mask_id: int,
    vocab_size: int,
    mask_token_rate: float = 0.8,
    random_token_rate: float = 0.1,
):
    """Masks one row with TensorFlow ops only; returns (masked_ids, positions, labels).

    `seed` is the op-level seed of TensorFlow's stateful random ops (None: the global seed), the
    way such code is usually written; one traced function then gives fresh draws on every call.
    """
    import tensorflow as tf

    ids = tf.convert_to_tensor(ids)
    maskable, unit_of_token, n_units, unit_start, unit_end, joined = _tf_units(
        ids, boundary, special_ids, whole_word
    )
    n_tokens = tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.float64))
    ratio = float(np.float32(mask_ratio))
    limit = tf.minimum(
        max_predictions, tf.maximum(1, tf.cast(tf.round(n_tokens * ratio), tf.int32))
    )
    log_weights = tf.math.log(tf.constant(_weights(max_n, favor_shorter_ngram)))
    order = tf.random.shuffle(tf.range(n_units), seed=seed)

    def body(k, covered, filled):
        start = order[k]

        def place():
            available = tf.constant(1)
            for a in range(1, max_n):
                index = tf.minimum(start + a, n_units - 1)
                fits = (
                    tf.equal(available, a)
                    & (start + a < n_units)
                    & joined[tf.minimum(start + a - 1, n_units - 1)]
                    & ~covered[index]
                )
                available += tf.cast(fits, tf.int32)
            logits = tf.where(tf.range(max_n) < available, log_weights, -np.inf)
            n = tf.cast(tf.random.categorical(logits[None, :], 1)[0, 0], tf.int32) + 1

            def too_long(n):
                return (n > 0) & (
                    unit_end[start + tf.maximum(n, 1) - 1] - unit_start[start] > limit - filled
                )

            n = tf.while_loop(too_long, lambda n: [n - 1], [n])[0]
            span = tf.range(n_units)
            inside = (span >= start) & (span < start + n)
            size = tf.where(n > 0, unit_end[start + tf.maximum(n, 1) - 1] - unit_start[start], 0)
            return covered | inside, filled + size

        covered, filled = tf.cond(~covered[start], place, lambda: (covered, filled))
        return k + 1, covered, filled

    def more(k, covered, filled):
        return (k < n_units) & (filled < limit)

    _, covered, _ = tf.while_loop(
        more, body, [tf.constant(0), tf.zeros([n_units], tf.bool), tf.constant(0)]
    )
    token_covered = maskable & tf.gather(covered, tf.maximum(unit_of_token, 0))
    positions = tf.cast(tf.where(token_covered)[:, 0], tf.int64)
    return _tf_replace(
        ids, positions, special_ids, mask_id, vocab_size, mask_token_rate, random_token_rate
    )


def _tf_units(ids, boundary, special_ids, whole_word):  # type: ignore[no-untyped-def]
    """The maskable units of `tf_ngram_mask` (words, or tokens): (maskable, unit_of_token,
    n_units, unit_start, unit_end, joined), `joined` telling whether a unit touches the next."""
    import tensorflow as tf

    boundary = tf.cast(boundary, tf.bool)
    specials = tf.constant(sorted(set(int(i) for i in special_ids) | {0}), ids.dtype)
    maskable = tf.reduce_all(tf.not_equal(ids[:, None], specials[None, :]), axis=1)
    previous = tf.concat([[False], maskable[:-1]], axis=0)
    starts_unit = maskable & (~previous | boundary) if whole_word else maskable
    unit_of_token = tf.cumsum(tf.cast(starts_unit, tf.int32)) - 1
    n_units = tf.reduce_sum(tf.cast(starts_unit, tf.int32))
    token_index = tf.range(tf.size(ids), dtype=tf.int32)
    unit_start = tf.boolean_mask(token_index, starts_unit)
    unit_tokens = tf.math.unsorted_segment_sum(
        tf.ones_like(tf.boolean_mask(unit_of_token, maskable)),
        tf.boolean_mask(unit_of_token, maskable),
        n_units,
    )
    unit_end = unit_start + unit_tokens
    joined = tf.concat([tf.equal(unit_end[:-1], unit_start[1:]), [False]], axis=0)
    return maskable, unit_of_token, n_units, unit_start, unit_end, joined


def _tf_replace(ids, positions, special_ids, mask_id, vocab_size, mask_rate, random_rate):  # type: ignore[no-untyped-def]
    """The 80/10/10 replacement of `tf_ngram_mask`: (masked_ids, positions, labels)."""
    import tensorflow as tf

    labels = tf.gather(ids, positions)
    draw = tf.random.uniform(tf.shape(positions), dtype=tf.float64)
    non_special = tf.constant(
        [i for i in range(vocab_size) if i not in set(int(s) for s in special_ids) | {0}],
        ids.dtype,
    )
    random_ids = tf.gather(
        non_special,
        tf.random.uniform(tf.shape(positions), maxval=tf.size(non_special), dtype=tf.int32),
    )
    replacement = tf.where(
        draw < mask_rate,
        tf.cast(mask_id, ids.dtype),
        tf.where(draw < mask_rate + random_rate, random_ids, labels),
    )
    masked = tf.tensor_scatter_nd_update(ids, positions[:, None], replacement)
    return masked, positions, labels
