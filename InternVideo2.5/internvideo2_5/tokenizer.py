"""The released sentencepiece ``tokenizer.model`` (InternLM2's tokenizer) as a fast tokenizer.

The released directory ships InternLM2's remote-code ``InternLM2Tokenizer``: a sentencepiece BPE
model with byte fallback, plus ``tokenizer_config.json`` whose ``added_tokens_decoder`` lists the
special tokens by id (``<|im_start|>``/``<|im_end|>`` inside the model, InternVL's ``<img>``,
``</img>``, ``<IMG_CONTEXT>``... after it). This module builds the same tokenizer the way
InternLM2's own fast converter does: ids 0-2 are ``<unk>``/``<s>``/``</s>``; the normalizer only
maps spaces to ``▁`` (and prepends one when the model asks for a dummy prefix); no pre-tokenizer;
``<s>`` leads every encoding (``add_bos_token=True``, ``add_eos_token=False``); the decoder turns
``▁`` back into spaces, fuses byte-fallback pieces and drops one leading space. Padding uses ``</s>``.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
from transformers import PreTrainedTokenizerFast

BPE_MODEL_TYPE = 2
SPECIAL_PIECE_TYPES = (3, 4)  # sentencepiece CONTROL and USER_DEFINED pieces
FIXED_PIECES = ("<unk>", "<s>", "</s>")


def _read_proto(model_file: Path):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    if proto.trainer_spec.model_type != BPE_MODEL_TYPE:
        raise ValueError(
            f"{model_file}: InternLM2's tokenizer is a BPE sentencepiece model, "
            f"this one has model_type={proto.trainer_spec.model_type}"
        )
    return proto


def _added_tokens(path: Path) -> dict[int, str]:
    """``{id: content}`` from ``tokenizer_config.json``'s ``added_tokens_decoder`` (empty if absent)."""
    config_file = path / "tokenizer_config.json"
    if not config_file.is_file():
        return {}
    decoder = json.loads(config_file.read_text(encoding="utf-8")).get("added_tokens_decoder", {})
    try:
        return {int(i): entry["content"] for i, entry in decoder.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{config_file}: bad added_tokens_decoder entry ({exc})") from None


def _backend(proto, added: dict[int, str], where: Path) -> Tokenizer:
    from transformers.convert_slow_tokenizer import generate_merges

    pieces = [(p.piece, p.score) for p in proto.pieces]
    pieces[: len(FIXED_PIECES)] = [(name, 0.0) for name in FIXED_PIECES]
    special = {i: piece for i, (piece, _) in enumerate(pieces) if proto.pieces[i].type in SPECIAL_PIECE_TYPES}
    special.update(enumerate(FIXED_PIECES))
    for i, content in added.items():
        if i < len(pieces) and pieces[i][0] != content:
            raise ValueError(
                f"{where}: added token {content!r} has id {i}, which is {pieces[i][0]!r} in the model"
            )
        special[i] = content
    vocab = {piece: i for i, (piece, _) in enumerate(pieces)}
    merges = generate_merges(vocab, dict(pieces), skip_tokens=set(special.values()))
    backend = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    steps = [normalizers.Prepend("▁")] if proto.normalizer_spec.add_dummy_prefix else []
    backend.normalizer = normalizers.Sequence([*steps, normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    for i in sorted(special):
        backend.add_special_tokens([AddedToken(special[i], special=True, normalized=False)])
        if backend.token_to_id(special[i]) != i:
            raise ValueError(
                f"{where}: added token {special[i]!r} should have id {i}; ids must follow the model's"
            )
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return backend


def load_sentencepiece_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """InternLM2's tokenizer from ``path/tokenizer.model`` (+ ``tokenizer_config.json``'s added tokens)."""
    path = Path(path)
    backend = _backend(_read_proto(path / "tokenizer.model"), _added_tokens(path), path)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )
