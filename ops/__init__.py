"""The custom ops: ``from pretrain_records.ops import ngram_mask, encode_examples,
make_instances``.

Importing any of them loads the compiled library and raises ImportError (saying
to run ``make ops``) when it is missing or stale; ``pretrain_records.ops.build``
stays importable without it.
"""

from typing import Any

__all__ = ["encode_examples", "make_instances", "ngram_mask"]


def __getattr__(name: str) -> Any:
    if name == "ngram_mask":
        from pretrain_records.ops import masking

        masking.load_library()
        return masking.ngram_mask
    if name == "encode_examples":
        from pretrain_records.ops import examples, masking

        masking.load_library()
        return examples.encode_examples
    if name == "make_instances":
        from pretrain_records.ops import instances, masking

        masking.load_library()
        return instances.make_instances
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
