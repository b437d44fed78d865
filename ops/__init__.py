"""The custom ops: ``from pretrain_records.ops import ngram_mask, encode_examples``.

Importing either loads the compiled library and raises ImportError (saying
to run ``make ops``) when it is missing or stale; ``pretrain_records.ops.build``
stays importable without it.
"""

from typing import Any

__all__ = ["encode_examples", "ngram_mask"]


def __getattr__(name: str) -> Any:
    if name == "ngram_mask":
        from pretrain_records.ops import masking

        masking.load_library()
        return masking.ngram_mask
    if name == "encode_examples":
        from pretrain_records.ops import examples, masking

        masking.load_library()
        return examples.encode_examples
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
