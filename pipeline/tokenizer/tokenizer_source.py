"""The build's tokenizer: the user's model, the one trained here by an earlier run (saved so that
unchanged units stay valid), or a new one trained on the input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.reading.pieces import Piece
from pretrain_records.pipeline.tokenizer import tokenize, tokenizer_sample

Log = Callable[[str], None]


class TokenizerShelf(Protocol):
    """Where a trained tokenizer is saved for later runs (the output directory's `.mpr`)."""

    def saved_tokenizer(
        self, settings: dict[str, Any]
    ) -> tuple[bytes, bytes, dict[str, int] | None] | None: ...

    def save_tokenizer(
        self, proto: bytes, vocab: bytes, settings: dict[str, Any], sample: dict[str, int]
    ) -> None: ...


def train_with_sample(
    pieces: list[Piece], config: BuildConfig
) -> tuple[bytes, bytes, tokenizer_sample.Sample]:
    """A SentencePiece model trained on a seeded sample of the sentences of `pieces` (spread
    over all of them, see `tokenizer_sample`): (model, vocab, the sample)."""
    from pretrain_records.pipeline.reading.sentences import make_splitter

    sample = tokenizer_sample.sample_sentences(pieces, config, make_splitter(config.language))
    if sample.seen == 0:
        raise DataError(
            f"no text to build from: the {len(pieces)} input files hold no sentences; "
            "is the input empty or its input_format wrong?"
        )
    if not sample.sentences:
        raise DataError(
            f"no sentence to train a tokenizer on: all {sample.seen:,} sentences of the input "
            f"are longer than {tokenizer_sample.MAX_SENTENCE_BYTES:,} bytes; is the "
            f"input_format right ({config.input_format} reads "
            f"{_FORMAT_UNITS.get(config.input_format, 'documents')})?"
        )
    proto, vocab = tokenize.train(sample.sentences, config.vocab_size, config.seed)
    return proto, vocab, sample


_FORMAT_UNITS = {
    "lines": "one sentence per line",
    "jsonl": "one document per line",
    "text": "one document per file, paragraphs by blank lines",
}


def train_on(pieces: list[Piece], config: BuildConfig) -> tuple[bytes, bytes]:
    """A SentencePiece model trained on the sentences of `pieces`: (model, vocab)."""
    proto, vocab, _ = train_with_sample(pieces, config)
    return proto, vocab


# The keys a trained tokenizer depends on (besides the input): a kept tokenizer is reused only
# for these settings, so a stopped run of another config cannot leave its tokenizer behind.
TRAINING_KEYS = (
    "input_format",
    "text_field",
    "filters",
    "language",
    "vocab_size",
    "seed",
    "bad_lines",
)
SAMPLE_VERSION = 2  # bumped when the sampling rule changes (2: each file read whole, once)


def training_settings(config: BuildConfig) -> dict[str, object]:
    """What a trained tokenizer is kept for (see TRAINING_KEYS)."""
    values = config.to_dict()
    settings: dict[str, object] = {k: values[k] for k in TRAINING_KEYS}
    settings["sample"] = SAMPLE_VERSION
    return settings


def obtain(
    config: BuildConfig,
    given: tokenize.Tokenizer | None,
    shelf: TokenizerShelf,
    pieces: list[Piece],
    log: Log,
) -> tuple[tokenize.Tokenizer, bytes, str, dict[str, int] | None]:
    """(tokenizer, its .vocab file, where it came from: given, reused or trained, and the
    sample a trained one learnt from)."""
    if given is not None:
        return given, tokenize.vocab_text(given.processor), "given", None
    settings = training_settings(config)
    saved = shelf.saved_tokenizer(settings)
    if saved is not None:
        log("reusing the SentencePiece model trained by an earlier run")
        proto, vocab, sample = saved
        return tokenize.Tokenizer(proto, name="spm.model"), vocab, "reused", sample
    log(f"training a SentencePiece model (vocab_size {config.vocab_size}) on the input")
    proto, vocab, drawn = train_with_sample(pieces, config)
    sample = drawn.describe()
    log(
        f"the tokenizer learnt from {sample['sentences']:,} of the input's {sample['of']:,} "
        f"sentences (a seeded sample over every file)"
        + (f"; {sample['too_long']:,} too long left out" if sample["too_long"] else "")
    )
    tokenizer = tokenize.Tokenizer(proto, name="trained model")
    if tokenizer.vocab_size < config.vocab_size:
        log(
            f"warning: the corpus supports only {tokenizer.vocab_size} pieces "
            f"(vocab_size {config.vocab_size} asked)"
        )
    shelf.save_tokenizer(proto, vocab, settings, sample)
    return tokenizer, vocab, "trained", sample
