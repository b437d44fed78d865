"""`train-tokenizer`: a SentencePiece model with the records' special tokens, from input files."""

from __future__ import annotations

import os

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.ground.errors import UsageError
from pretrain_records.pipeline.reading import inputs
from pretrain_records.pipeline.reading.pieces import Piece
from pretrain_records.pipeline.tokenizer.tokenizer_source import train_on


def whole_file_pieces(found: list[inputs.InputFile], input_format: str) -> list[Piece]:
    """Each file as one piece, its compression recognised and its first bytes checked as a
    build checks them (UTF-16/32 text, JSONL given as lines or text)."""
    from pretrain_records.pipeline.reading.scanning import check_head

    return [Piece(f.path, f.relpath, check_head(f, input_format), 0, None) for f in found]


def check_prefix(prefix: str, language: str = "en") -> None:
    """UsageError for an output prefix that names a folder: one ending with a path separator
    (`spm/` would write the hidden files spm/.model and spm/.vocab), an existing directory, or
    a last part `.` / `..`. The message suggests PREFIX/LANGUAGE."""
    remote = storage.is_remote(prefix)
    separators = ("/",) if remote else tuple(filter(None, (os.sep, os.altsep)))
    folder = prefix.rstrip("".join(separators))
    last = folder.rsplit(separators[0], 1)[-1]
    # An object store has no folders to collide with: gs://b/x.model beside gs://b/x/ is fine.
    local_folder = not remote and os.path.isdir(prefix)
    if prefix.endswith(separators) or last in ("", ".", "..") or local_folder:
        suggestion = storage.join(folder or prefix, language)
        raise UsageError(
            f"-o {prefix}: names a folder, not a file name prefix; give a prefix such as "
            f"{suggestion} (writes {suggestion}.model and {suggestion}.vocab)"
        )


def train_tokenizer_files(patterns: list[str], config: BuildConfig, prefix: str) -> None:
    """Trains on the files of `patterns` and writes PREFIX.model and PREFIX.vocab. A PREFIX
    that names a folder is refused (`check_prefix`); PREFIX's folder is made (or found
    unwritable) before the training, never after."""
    check_prefix(prefix, config.language)
    folder = os.path.dirname(prefix) if not storage.is_remote(prefix) else ""
    if folder:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise UsageError(f"-o {prefix}: cannot create {folder} ({error.strerror})") from None
        if not os.access(folder, os.W_OK):
            raise UsageError(f"-o {prefix}: {folder} is not writable")
    found, _ = inputs.expand(patterns)
    proto, vocab = train_on(whole_file_pieces(found, config.input_format), config)
    storage.write_bytes(f"{prefix}.model", proto)
    storage.write_bytes(f"{prefix}.vocab", vocab)
