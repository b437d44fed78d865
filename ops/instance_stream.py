"""Python face of the C++ instance stream (BERT/ALBERT sentence-pair instances), via ctypes.

ctypes releases the GIL during each call, so instance creation runs beside Python threads.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
from pretrain_records.ops import build

TASKS = {"nsp": 0, "sop": 1, "none": 2}
_c: Any = None


def _library() -> Any:
    """The op library through ctypes, its C functions typed once."""
    global _c
    if _c is not None:
        return _c
    from pretrain_records.ops.masking import load_library

    load_library()  # checks the build is current (ImportError: run `make ops`)
    c = ctypes.CDLL(str(build.LIBRARY))
    p, i32, i64, u64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64
    signatures = {
        "mpr_instances_new": (
            p,
            [ctypes.c_int, ctypes.c_double, ctypes.c_int, i32, i32, u64, u64, ctypes.c_int]
            + [ctypes.c_int, i64, ctypes.c_char_p, ctypes.c_int],
        ),
        "mpr_instances_free": (None, [p]),
        "mpr_instances_start_pass": (None, [p, u64]),
        "mpr_instances_add_documents": (ctypes.c_int, [p, p, p, p, p, i64]),
        "mpr_instances_end_pass": (ctypes.c_int, [p]),
        "mpr_instances_finish": (None, [p]),
        "mpr_instances_ready": (i64, [p]),
        "mpr_instances_take": (i64, [p, i64, p, p, p, p, p]),
        "mpr_instances_error": (ctypes.c_char_p, [p]),
    }
    for name, (result, arguments) in signatures.items():
        function = getattr(c, name)
        function.restype, function.argtypes = result, arguments
    _c = c
    return c


class InstanceStreamError(ValueError):
    """The documents cannot make the requested instances (e.g. NSP from one document)."""


class InstanceStream:
    """Documents in, shuffled padded instance rows out (see ops/cc/core/instance_stream.h)."""

    def __init__(
        self,
        *,
        max_seq_length: int,
        short_seq_prob: float,
        sentence_task: str,
        cls_id: int,
        sep_id: int,
        seed: int,
        shuffle_seed: int,
        shuffle_buffer: int,
        pool_documents: int = 256,
        pool_tokens: int = 4_000_000,
    ) -> None:
        self._c = _library()
        error = ctypes.create_string_buffer(256)
        self._length = max_seq_length
        self._handle = self._c.mpr_instances_new(
            max_seq_length,
            short_seq_prob,
            TASKS[sentence_task],
            cls_id,
            sep_id,
            seed & (2**64 - 1),
            shuffle_seed & (2**64 - 1),
            shuffle_buffer,
            pool_documents,
            pool_tokens,
            error,
            len(error),
        )
        if not self._handle:
            raise ValueError(f"instance settings: {error.value.decode()}")

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle:
            self._c.mpr_instances_free(handle)
            self._handle = None

    def start_pass(self, index: int) -> None:
        self._c.mpr_instances_start_pass(self._handle, index)

    def add(
        self,
        ids: np.ndarray,
        flags: np.ndarray,
        sentence_lengths: np.ndarray,
        doc_sentences: np.ndarray,
    ) -> None:
        """Adds documents: document d has `doc_sentences[d]` sentences, taken in order from
        `sentence_lengths`; the ids and word-start flags of all of them concatenated."""
        ids = np.ascontiguousarray(ids, np.int32)
        flags = np.ascontiguousarray(flags, np.int8)
        lengths = np.ascontiguousarray(sentence_lengths, np.int32)
        counts = np.ascontiguousarray(doc_sentences, np.int32)
        if len(ids) != len(flags) or len(ids) != lengths.sum() or len(lengths) != counts.sum():
            raise ValueError("ids, flags, sentence lengths and document sizes disagree")
        if (lengths < 0).any() or (counts < 0).any():
            raise ValueError("negative sentence lengths or document sizes")
        self._check(
            self._c.mpr_instances_add_documents(
                self._handle,
                ids.ctypes.data,
                flags.ctypes.data,
                lengths.ctypes.data,
                counts.ctypes.data,
                len(counts),
            )
        )

    def end_pass(self) -> None:
        self._check(self._c.mpr_instances_end_pass(self._handle))

    def finish(self) -> None:
        """Ends the stream: the shuffle buffer is released."""
        self._c.mpr_instances_finish(self._handle)

    def ready(self) -> int:
        return self._c.mpr_instances_ready(self._handle)

    def take(self, max_rows: int) -> dict[str, np.ndarray]:
        """Up to `max_rows` instances as a padded batch (input_ids, segment_ids,
        token_boundary [rows, L]; length, label [rows])."""
        rows = min(max_rows, self.ready())
        batch = {
            "input_ids": np.empty((rows, self._length), np.int32),
            "segment_ids": np.empty((rows, self._length), np.int32),
            "token_boundary": np.empty((rows, self._length), np.int32),
            "length": np.empty(rows, np.int32),
            "label": np.empty(rows, np.int32),
        }
        taken = self._c.mpr_instances_take(
            self._handle, rows, *(batch[k].ctypes.data for k in batch)
        )
        assert taken == rows
        return batch

    def _check(self, status: int) -> None:
        if status != 0:
            raise InstanceStreamError(self._c.mpr_instances_error(self._handle).decode())
