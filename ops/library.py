"""Loading the compiled op library (_pretrain_records_ops.so), checked against its sources."""

from __future__ import annotations

import json
from typing import Any

from pretrain_records.ops import compile_library

_library: Any = None


def load() -> Any:
    """The op library, loaded once; ImportError saying to run `make ops` when it is missing,
    built for another TensorFlow, or older than its C++ sources."""
    global _library
    if _library is not None:
        return _library
    import tensorflow as tf

    path, stamp_path = compile_library.LIBRARY, compile_library.STAMP
    if not path.exists():
        raise ImportError(f"the custom ops are not built ({path} is missing): run `make ops`")
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
    if stamp.get("tensorflow") != tf.__version__:
        raise ImportError(
            f"{path.name} was built for TensorFlow {stamp.get('tensorflow', '?')}, "
            f"this is {tf.__version__}: run `make ops`"
        )
    if (
        compile_library.CC.exists()
        and stamp.get("sources_sha256") != compile_library.sources_digest()
    ):
        raise ImportError(f"{path.name} is older than its C++ sources: run `make ops`")
    try:
        _library = tf.load_op_library(str(path))
    except tf.errors.NotFoundError as error:
        raise ImportError(f"cannot load {path} ({error}): run `make ops`") from error
    return _library
