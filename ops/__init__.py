"""The NgramMask custom op: ``from pretrain_records.ops import ngram_mask``.

Importing ``ngram_mask`` loads the compiled library and raises ImportError (saying
to run ``make ops``) when it is missing or stale; ``pretrain_records.ops.build``
stays importable without it.
"""

from typing import Any

__all__ = ["ngram_mask"]


def __getattr__(name: str) -> Any:
    if name == "ngram_mask":
        from pretrain_records.ops import masking

        masking.load_library()
        return masking.ngram_mask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
