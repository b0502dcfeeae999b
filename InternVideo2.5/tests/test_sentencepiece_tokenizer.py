"""The released sentencepiece tokenizer.model (InternLM2 style) against sentencepiece itself."""

import json
import re

import pytest

from internvideo2_5.models.loading import load_tokenizer

spm = pytest.importorskip("sentencepiece")

SPECIALS = ["<|im_start|>", "<|im_end|>"]
ADDED = ["<img>", "</img>", "<IMG_CONTEXT>"]
VOCAB = 340


@pytest.fixture(scope="module")
def sp_dir(tmp_path_factory):
    """A tiny InternLM2-style model: BPE, byte fallback, identity normalisation, chat tokens inside."""
    path = tmp_path_factory.mktemp("sp")
    lines = [
        "The man walks the dog in the park.",
        "What is happening in the video?",
        "一只猫在沙发上睡觉。",
    ] * 30
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(path / "tokenizer"),
        vocab_size=VOCAB,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        user_defined_symbols=SPECIALS,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        minloglevel=2,
    )
    # As the released tokenizer_config.json: the chat tokens keep their model ids, InternVL's follow.
    decoder = {str(3 + i): {"content": t} for i, t in enumerate(SPECIALS)}
    decoder.update({str(VOCAB + i): {"content": t} for i, t in enumerate(ADDED)})
    (path / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": decoder}))
    return path


def reference_ids(sp, text, special_ids):
    """InternLM2Tokenizer's behaviour: <s>, then sentencepiece on the text between special tokens."""
    ids = [sp.bos_id()]
    for chunk in re.split("(" + "|".join(map(re.escape, special_ids)) + ")", text):
        ids += [special_ids[chunk]] if chunk in special_ids else sp.encode(chunk) if chunk else []
    return ids


@pytest.mark.parametrize(
    "text",
    [
        "The man walks the dog in the park.",
        "  spaces\tand\nnewlines ",
        "一只猫 with ☃ emoji 🐈",
        "<|im_start|>user\nFrame1: <img><IMG_CONTEXT><IMG_CONTEXT></img>\nWhat?<|im_end|>\n<|im_start|>assistant\n",
    ],
)
def test_ids_match_sentencepiece_and_text_round_trips(sp_dir, text):
    tok = load_tokenizer(sp_dir)
    sp = spm.SentencePieceProcessor(model_file=str(sp_dir / "tokenizer.model"))
    special_ids = {t: 3 + i for i, t in enumerate(SPECIALS)} | {t: VOCAB + i for i, t in enumerate(ADDED)}
    assert tok(text).input_ids == reference_ids(sp, text, special_ids)
    plain = text.replace("<", "").replace(">", "") if "<" in text else text
    expected = sp.decode(sp.encode(plain))
    expected = expected[1:] if expected.startswith(" ") else expected  # InternLM2 drops one leading space
    assert tok.decode(tok(plain).input_ids, skip_special_tokens=True) == expected


def test_special_tokens_and_padding_follow_internlm2(sp_dir):
    tok = load_tokenizer(sp_dir)
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 2)
    assert tok.convert_tokens_to_ids(ADDED) == [VOCAB, VOCAB + 1, VOCAB + 2]
    assert tok("a").input_ids[-1] != tok.eos_token_id  # add_eos_token is False


def test_mismatched_added_token_id_is_an_error(sp_dir, tmp_path):
    (tmp_path / "tokenizer.model").write_bytes((sp_dir / "tokenizer.model").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"added_tokens_decoder": {"3": {"content": "<x>"}}})
    )
    with pytest.raises(ValueError, match="'<x>' has id 3"):
        load_tokenizer(tmp_path)
