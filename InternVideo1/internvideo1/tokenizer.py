"""CLIP's byte-level BPE tokenizer, read from the original's ``bpe_simple_vocab_16e6.txt.gz``.

The file holds one header line and then BPE merges ("a b" per line). The vocabulary is the 256
byte symbols, the same with the end-of-word mark ``</w>``, one entry per merge, then
``<|startoftext|>`` and ``<|endoftext|>`` -- so the end-of-text token has the largest id, which
the text encoders use to find it. The BPE itself runs in Hugging Face's ``CLIPTokenizer``
(``tokenizers`` backend); this class builds its vocabulary from the merges file and produces the
original's zero-padded ``(N, context_length)`` id tensors.
"""

from __future__ import annotations

import gzip
import html
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

SOT, EOT = "<|startoftext|>", "<|endoftext|>"
# The released file has more merges than CLIP's 49,408-token vocabulary uses.
MAX_MERGES = 49152 - 256 - 2


def read_bpe_merges(path: str | os.PathLike) -> list[str]:
    """The merge rules of a (gzip-compressed or plain) BPE file, header line dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BPE vocabulary file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read as a BPE merges file ({err})") from err
    merges = [line for line in lines[1 : MAX_MERGES + 1] if line.strip()]
    for no, merge in enumerate(merges, start=2):
        if len(merge.split()) != 2:
            raise ValueError(f"{path}: line {no} is not a merge of two symbols: {merge!r}")
    return merges


def clip_vocabulary(merges: Sequence[str]) -> dict[str, int]:
    """Token → id, in the order the original CLIP tokenizer assigns them."""
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + [SOT, EOT]
    return {token: i for i, token in enumerate(vocab)}


def _clean(text: str) -> str:
    # The original fixes mojibake with ftfy and unescapes HTML twice before the BPE; the HF
    # backend then normalises whitespace and lower-cases.
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    return html.unescape(html.unescape(text)).strip()


class ClipBPETokenizer:
    """``tokenizer(texts, context_length)`` → ``(ids, special_tokens_mask)``, both ``(N, L)``.

    Rows are ``[SOT, tokens..., EOT]`` padded with 0; ``special_tokens_mask`` is True on the
    padding. Longer texts are cut to ``context_length`` with EOT kept last (``truncate=True``)
    or raise ``ValueError``.
    """

    def __init__(self, bpe_path: str | os.PathLike):
        self.bpe_path = Path(bpe_path)
        merges = read_bpe_merges(self.bpe_path)
        self.encoder = clip_vocabulary(merges)
        self.hf = CLIPTokenizer(vocab=dict(self.encoder), merges=[tuple(m.split()) for m in merges])
        self.sot_token, self.eot_token = self.encoder[SOT], self.encoder[EOT]

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` without the start/end tokens."""
        return self.hf(_clean(text), add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode([i for i in ids if i not in (0, self.sot_token, self.eot_token)])

    def __call__(
        self, texts: str | Sequence[str], context_length: int = 77, truncate: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        ids = torch.zeros(len(texts), context_length, dtype=torch.long)
        padding = torch.ones(len(texts), context_length, dtype=torch.bool)
        for row, text in enumerate(texts):
            tokens = [self.sot_token, *self.encode(text), self.eot_token]
            if len(tokens) > context_length:
                if not truncate:
                    raise ValueError(
                        f"text {text!r} has {len(tokens)} tokens, more than context {context_length}"
                    )
                tokens = tokens[: context_length - 1] + [self.eot_token]
            ids[row, : len(tokens)] = torch.tensor(tokens)
            padding[row, : len(tokens)] = False
        return ids, padding
