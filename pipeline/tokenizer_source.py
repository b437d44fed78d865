"""The build's tokenizer: the user's model, the one trained here by an earlier run (kept so that
unchanged units stay valid), or a new one trained on the input."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from pretrain_records.pipeline import documents, storage, tokenize
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.documents import Piece, ReadStats
from pretrain_records.pipeline.errors import DataError, UsageError
from pretrain_records.pipeline.outdir import OutputDir

Log = Callable[[str], None]


def load_given(path: str) -> tokenize.Tokenizer:
    """The model of `--spm-model`, checked before any work (UsageError naming it)."""
    if not storage.is_remote(path) and os.path.exists(path) and not os.path.isfile(path):
        raise UsageError(f"--spm-model {path}: not a regular file (a FIFO, device or directory?)")
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError:
        raise UsageError(f"--spm-model {path}: no such file") from None
    except OSError as error:
        raise UsageError(f"--spm-model {path}: cannot read ({error.strerror or error})") from None
    return tokenize.Tokenizer(data, name=f"--spm-model {path}")


def sentences_of(pieces: list[Piece], config: BuildConfig) -> Iterator[str]:
    """Every sentence of the input, for training."""
    from pretrain_records.pipeline.sentences import make_splitter

    split = make_splitter(config.language)
    stats = ReadStats()
    for piece in pieces:
        for document in documents.read_documents(
            piece, config.input_format, split, stats, config.jsonl_field, config.bad_lines
        ):
            yield from document


def train_on(pieces: list[Piece], config: BuildConfig) -> tuple[bytes, bytes]:
    """A SentencePiece model trained on the sentences of `pieces`: (model, vocab)."""
    stream = sentences_of(pieces, config)
    first = next(stream, None)
    if first is None:
        raise DataError(
            f"no text to build from: the {len(pieces)} input files hold no sentences; "
            "is the input empty or its input_format wrong?"
        )
    return tokenize.train(_chain(first, stream), config.vocab_size, config.seed)


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def obtain(
    config: BuildConfig,
    given: tokenize.Tokenizer | None,
    out: OutputDir,
    pieces: list[Piece],
    log: Log,
) -> tuple[tokenize.Tokenizer, bytes, str]:
    """(tokenizer, its .vocab file, where it came from: given, reused or trained)."""
    if given is not None:
        return given, tokenize.vocab_text(given.processor), "given"
    kept = out.kept_tokenizer()
    if kept is not None:
        log("reusing the SentencePiece model trained by an earlier run")
        return tokenize.Tokenizer(kept[0], name="spm.model"), kept[1], "reused"
    log(f"training a SentencePiece model (vocab_size {config.vocab_size}) on the input")
    proto, vocab = train_on(pieces, config)
    tokenizer = tokenize.Tokenizer(proto, name="trained model")
    if tokenizer.vocab_size < config.vocab_size:
        log(
            f"warning: the corpus supports only {tokenizer.vocab_size} pieces "
            f"(vocab_size {config.vocab_size} asked)"
        )
    out.keep_tokenizer(proto, vocab)
    return tokenizer, vocab, "trained"
