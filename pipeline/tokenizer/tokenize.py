"""SentencePiece: loading (with the special-token checks), training, and batched encoding."""

from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
from collections.abc import Iterable

import numpy as np
import sentencepiece as spm
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError, UsageError

SPECIALS = ("[CLS]", "[SEP]", "[MASK]")
WORD_MARK = "\u2581"  # SentencePiece's "▁": the piece starts a word


class TokenizerError(UsageError):
    """A SentencePiece model the tool cannot use (exit 2); the message names what is missing."""


def _starts_word_without_space(piece: str) -> bool:
    """CJK ideographs and kana: no spaces between words, so each such piece starts a word."""
    if not piece:
        return False
    name = unicodedata.name(piece[0], "")
    return name.startswith(("CJK UNIFIED IDEOGRAPH", "HIRAGANA", "KATAKANA", "CJK COMPATIBILITY"))


class Tokenizer:
    """A SentencePiece model with the ids the records need and a word-start table per id."""

    def __init__(self, model_proto: bytes, name: str = "SentencePiece model") -> None:
        self.model_proto = model_proto
        self.threads = -1
        self.processor = spm.SentencePieceProcessor()
        try:
            self.processor.LoadFromSerializedProto(model_proto)
        except Exception:  # sentencepiece raises RuntimeError/OSError variously
            raise TokenizerError(f"{name}: not a SentencePiece model") from None
        sp = self.processor
        self.vocab_size = sp.get_piece_size()
        missing = [s for s in SPECIALS if sp.piece_to_id(s) == sp.unk_id()]
        if sp.pad_id() != 0:
            missing.append(f"pad id 0 (its pad id is {sp.pad_id()})")
        if missing:
            raise TokenizerError(
                f"{name} lacks {', '.join(missing)}: the records need [CLS], [SEP], [MASK] "
                "and padding at id 0 (train one with `make-pretrain-records train-tokenizer`)"
            )
        self.cls_id = sp.piece_to_id("[CLS]")
        self.sep_id = sp.piece_to_id("[SEP]")
        self.mask_id = sp.piece_to_id("[MASK]")
        self.special_ids = tuple(
            sorted(
                {0, self.cls_id, self.sep_id, self.mask_id}
                | {i for i in range(self.vocab_size) if sp.is_control(i) or sp.is_unknown(i)}
            )
        )
        starts = np.zeros(self.vocab_size, np.int8)
        for i in range(self.vocab_size):
            piece = sp.id_to_piece(i)
            if sp.is_byte(i):
                continue  # a byte of a character the vocabulary lacks: never a word start
            if piece.startswith(WORD_MARK) or _starts_word_without_space(piece):
                starts[i] = 1
            elif sp.is_unknown(i) or sp.is_control(i):
                starts[i] = 1
        self.word_start = starts

    @classmethod
    def load(cls, path: str) -> Tokenizer:
        return load_given(path)

    def encode(self, sentences: list[str]) -> list[list[int]]:
        """Token ids of each sentence (batched in C++, on `threads` threads: all cores unless
        set, e.g. to a worker process's share of them)."""
        return self.processor.encode(sentences, out_type=int, num_threads=self.threads)

    def decode_pieces(self, ids: Iterable[int]) -> list[str]:
        return [self.processor.id_to_piece(int(i)) for i in ids]


# SentencePiece's seed is a uint32 whose largest value means "seed from std::random_device"
# (sentencepiece/src/util.cc: SetRandomGeneratorSeed ignores it).
_SPM_SEED_RANGE = 2**32 - 1


def sentencepiece_seed(seed: int) -> int:
    """SentencePiece's training seed for the build's 63-bit `seed`: in [0, 2**32 - 2].

    Seeds below 2**32 - 1 pass unchanged (so models trained before keep their bytes); larger
    ones map to the first 8 bytes of sha256 of their decimal text, modulo 2**32 - 1, so every
    bit of the seed counts. 2**32 - 1 itself is never passed: SentencePiece would ignore it
    and train with a random (or the previous) seed.
    """
    if 0 <= seed < _SPM_SEED_RANGE:
        return seed
    digest = hashlib.sha256(str(seed).encode()).digest()
    return int.from_bytes(digest[:8], "little") % _SPM_SEED_RANGE


def train(
    sentences: Iterable[str],
    vocab_size: int,
    seed: int,
    character_coverage: float = 0.9995,
) -> tuple[bytes, bytes]:
    """Trains a unigram model with [CLS]/[SEP]/[MASK] and pad id 0 on `sentences` (a bounded
    sample: `tokenizer_sample`), all of them; returns (model, vocab).

    `vocab_size` is a soft limit: a small corpus gets a smaller vocabulary. Byte fallback
    covers characters the vocabulary leaves out (rich scripts such as CJK). `seed` is the
    build's (up to 63 bits), reduced by `sentencepiece_seed` to the uint32 SentencePiece takes.
    A failure is a DataError (exit 1) in the tool's words.
    """
    kept = list(sentences)
    attempts = [(c, vocab_size) for c in (character_coverage, 0.999, 0.995, 0.99, 0.98)]
    while attempts:
        coverage, size = attempts.pop(0)
        spm.set_random_generator_seed(sentencepiece_seed(seed))
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(kept),
                model_writer=model,
                vocab_size=size,
                hard_vocab_limit=False,
                model_type="unigram",
                character_coverage=coverage,
                byte_fallback=True,
                pad_id=0,
                unk_id=1,
                bos_id=-1,
                eos_id=-1,
                control_symbols=list(SPECIALS),
                input_sentence_size=0,  # all of it: the sample is bounded already
                shuffle_input_sentence=False,  # already in a seeded random order
                max_sentence_length=1 << 16,
                # Fixed, so the model (and every record) does not depend on the core count.
                num_threads=2,
                minloglevel=2,
            )
            break
        except RuntimeError as error:
            # A script richer than the vocabulary (CJK): cover fewer characters (the rest
            # falls back to bytes); at the lowest coverage SentencePiece allows, grow the
            # vocabulary to what the characters need (vocab_size is a soft limit).
            needed = re.search(r"required_chars\. \d+ vs (\d+)", str(error))
            if needed is None:
                raise _training_failed(error, len(kept)) from None
            if not attempts and size < int(needed.group(1)):
                attempts.append((0.98, int(needed.group(1))))
            elif not attempts:
                raise _training_failed(error, len(kept)) from None
    proto = model.getvalue()
    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(proto)
    return proto, vocab_text(processor)


def _training_failed(error: Exception, sentences: int) -> DataError:
    """SentencePiece's training error (an INTERNAL status with a source line) as what is wrong
    with the input."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    detail = re.sub(r"^[A-Z_]+: src/\S+\(\d+\)\s*\[?", "", detail).rstrip("]")
    return DataError(
        f"cannot train a tokenizer on the {sentences:,} sampled sentences of the input "
        f"(SentencePiece: {detail[:200]}); is the input_format right, and the input text?"
    )


def vocab_text(processor: spm.SentencePieceProcessor) -> bytes:
    """The `.vocab` file of a model: one `piece<TAB>score` line per id."""
    return "".join(
        f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n"
        for i in range(processor.get_piece_size())
    ).encode("utf-8")


def load_given(path: str) -> Tokenizer:
    """The model of `--spm-model`, checked before any work (UsageError naming it)."""
    if not storage.is_remote(path) and os.path.exists(path) and not os.path.isfile(path):
        raise UsageError(f"--spm-model {path}: not a regular file (a FIFO, device or directory?)")
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError:
        raise UsageError(f"--spm-model {path}: no such file") from None
    except OSError as error:
        raise UsageError(f"--spm-model {path}: cannot read ({error.strerror or error})") from None
    return Tokenizer(data, name=f"--spm-model {path}")
