"""The custom ops: ``from pretrain_records.ops import make_instances, ngram_mask,
encode_examples``.

Importing any of them loads the compiled library and raises ImportError (saying to run
``make ops``) when it is missing or stale; ``pretrain_records.ops.compile_library`` stays
importable without it.
"""

from typing import Any

__all__ = ["encode_examples", "make_instances", "ngram_mask"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pretrain_records.ops import examples, instances, library, masking

    library.load()
    faces = {
        "ngram_mask": masking.ngram_mask,
        "encode_examples": examples.encode_examples,
        "make_instances": instances.make_instances,
    }
    return faces[name]
