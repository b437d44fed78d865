"""Stage 2, storage: files wherever they are, on the local disk, on GCS (through Google's own
client, gcs.py) or on another tf.io.gfile filesystem. Owns the paths (files), reading and the
one writer of every file the tool writes (streams), and GCS itself (gcs, gcs_reader). Imports
only `ground` (and nothing of `config`).

The operations are importable from the package itself: `storage.join`, `storage.Writer`, ..."""

from pretrain_records.pipeline.storage.files import (
    check_location,
    exists,
    gfile,
    is_remote,
    isdir,
    isfile,
    join,
    listdir,
    makedirs,
    remove,
    rename,
    rmtree,
    size,
    walk,
)
from pretrain_records.pipeline.storage.streams import (
    RandomReader,
    Writer,
    create_exclusive,
    file_sha256,
    open_read,
    read_bytes,
    sync_directory,
    write_bytes,
)

__all__ = [
    "RandomReader",
    "Writer",
    "check_location",
    "create_exclusive",
    "exists",
    "file_sha256",
    "gfile",
    "is_remote",
    "isdir",
    "isfile",
    "join",
    "listdir",
    "makedirs",
    "open_read",
    "read_bytes",
    "remove",
    "rename",
    "rmtree",
    "size",
    "sync_directory",
    "walk",
    "write_bytes",
]
