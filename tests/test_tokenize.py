"""The tokenizer: special tokens, word starts for spaced scripts, Korean and Japanese."""

from __future__ import annotations

import numpy as np
import pytest
from pretrain_records.pipeline.tokenizer import tokenize

from tests.conftest import corpus

# Natsume Soseki, "I Am a Cat" (1905): public domain. No spaces between words.
JAPANESE = [
    "吾輩は猫である。",
    "名前はまだ無い。",
    "どこで生れたかとんと見当がつかぬ。",
    "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。",
    "吾輩はここで始めて人間というものを見た。",
    "しかもあとで聞くとそれは書生という人間中で一番獰悪な種族であったそうだ。",
]


def trained(sentences: list[str], vocab_size: int) -> tokenize.Tokenizer:
    proto, vocab = tokenize.train(iter(sentences), vocab_size, seed=1)
    assert vocab.decode().splitlines()[0].startswith("<pad>\t")
    return tokenize.Tokenizer(proto)


def test_trained_model_has_the_special_ids():
    lines = corpus("en/bert_sample_text.txt").read_text().splitlines()
    tok = trained([s for s in lines if s.strip()], 400)
    sp = tok.processor
    assert sp.pad_id() == 0 and sp.id_to_piece(0) == "<pad>"
    assert [sp.id_to_piece(i) for i in (tok.cls_id, tok.sep_id, tok.mask_id)] == [
        "[CLS]",
        "[SEP]",
        "[MASK]",
    ]
    assert {0, tok.cls_id, tok.sep_id, tok.mask_id, sp.unk_id()} <= set(tok.special_ids)
    # Control symbols are never produced from text: "[MASK]" typed in a corpus stays text.
    assert tok.mask_id not in tok.encode(["a [MASK] b"])[0]


def test_korean_word_starts_follow_spaces():
    text = corpus("ko/nsmc_reviews_sample.txt").read_text(encoding="utf-8").splitlines()
    tok = trained([s for s in text if s.strip()], 2000)
    sentence = "믿고 보는 영화였어요 정말"
    ids = tok.encode([sentence])[0]
    starts = tok.word_start[np.array(ids)]
    # One word start per space-separated word (the first piece of each carries "▁").
    assert int(starts.sum()) == len(sentence.split())
    assert starts[0] == 1


def test_japanese_pieces_each_start_a_word():
    tok = trained(JAPANESE * 20, 300)
    ids = tok.encode(["吾輩は猫である。"])[0]
    pieces = tok.decode_pieces(ids)
    starts = tok.word_start[np.array(ids)]
    for piece, start in zip(pieces, starts, strict=True):
        core = piece.lstrip("\u2581")
        if piece.startswith("\u2581") or (core and core[0] in "吾輩はでるあ猫"):
            assert start == 1, (piece, pieces)
    # Not a single word for the whole sentence, as a "▁"-only rule would make it.
    assert starts.sum() >= 3, pieces


def test_a_model_without_specials_is_refused(tmp_path):
    import sentencepiece as spm

    prefix = tmp_path / "plain"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(JAPANESE * 20),
        model_prefix=str(prefix),
        vocab_size=100,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    with pytest.raises(tokenize.TokenizerError, match=r"lacks \[CLS\], \[SEP\], \[MASK\]"):
        tokenize.Tokenizer.load(f"{prefix}.model")
    with pytest.raises(tokenize.TokenizerError, match="not a SentencePiece model"):
        tokenize.Tokenizer(b"not a model")
