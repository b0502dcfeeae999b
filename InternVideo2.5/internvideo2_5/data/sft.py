"""Supervised fine-tuning samples: the chat prompt with answer-only labels, video pixels, padding.

The token layout follows InternVL's ``preprocess_internvl2_5`` (the InternVideo2.5 fine-tuning
code builds on it): every message (system, each user turn, each assistant turn) is tokenized on
its own and concatenated after one leading BOS (when the tokenizer adds one). Labels are
``IGNORE_INDEX`` everywhere except the assistant answers and their ``<|im_end|>``; the assistant
header (``<|im_start|>assistant\\n``) and the newline after ``<|im_end|>`` are not learned.

The video enters the first user turn exactly as at inference (:mod:`internvideo2_5.chat`):
``Frame{i}: <image>`` lines, each expanded to ``<img><IMG_CONTEXT> x 16 x tiles</img>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from internvideo2_5.constants import IGNORE_INDEX, IMG_CONTEXT_TOKEN, VIDEO_PLACEHOLDER
from internvideo2_5.conversation import ChatTemplate, expand_image_placeholders, video_prefix
from internvideo2_5.data.instruction import VideoConversation
from internvideo2_5.data.video import load_video
from ivtools.video import VideoReadError


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def encode_conversation(
    tokenizer, template: ChatTemplate, turns: Sequence[tuple[str, str]], system_message: str | None = None
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of a whole conversation; only answers and their stop token are learned."""
    input_ids = list(tokenizer("").input_ids)  # the special tokens the tokenizer leads with (InternLM2's BOS)
    labels = [IGNORE_INDEX] * len(input_ids)
    header = len(_ids(tokenizer, template.roles[1]))
    trailer = len(_ids(tokenizer, template.sep[len(template.stop_token) :]))
    for role, text in template.messages(turns, system_message):
        ids = _ids(tokenizer, text)
        target = [IGNORE_INDEX] * len(ids)
        if role == "assistant":
            target[header : len(ids) - trailer] = ids[header : len(ids) - trailer]
        input_ids += ids
        labels += target
    return input_ids, labels


def video_turns(turns: Sequence[tuple[str, str]], num_patches_list: Sequence[int], tokens_per_frame: int):
    """The turns with the ``<video>`` marker replaced by the frame lines and their image-token runs."""
    first, answer = turns[0]
    lines = video_prefix(len(num_patches_list))
    first = first.replace(VIDEO_PLACEHOLDER + "\n", lines, 1).replace(VIDEO_PLACEHOLDER, lines, 1)
    first = expand_image_placeholders(first, tokens_per_frame, num_patches_list)
    return [(first, answer), *turns[1:]]


@dataclass
class SFTSettings:
    """How a conversation becomes a sample (the chat model's video and prompt settings)."""

    template: ChatTemplate
    tokens_per_frame: int
    local_num_frames: int
    num_frames: int = 16
    image_size: int = 448
    max_num: int = 1
    max_length: int | None = None
    system_message: str | None = None
    backend: str = "auto"


class VideoInstructionDataset(Dataset):
    """Items ``{input_ids, labels, pixel_values, skipped}``; an unreadable video is replaced by the next one.

    Keys may be plain indices or the ``(index, epoch)`` pairs of ``ivtools``' resumable sampler.
    """

    def __init__(self, conversations: Sequence[VideoConversation], tokenizer, settings: SFTSettings):
        if not conversations:
            raise ValueError("no instruction samples to train on")
        self.conversations, self.tokenizer, self.settings = list(conversations), tokenizer, settings
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)

    def __len__(self) -> int:
        return len(self.conversations)

    def tokenize(
        self, conversation: VideoConversation, num_patches_list: Sequence[int]
    ) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` for a video of ``num_patches_list`` tiles per frame, truncated to ``max_length``."""
        s = self.settings
        turns = video_turns(conversation.turns, num_patches_list, s.tokens_per_frame)
        input_ids, labels = encode_conversation(self.tokenizer, s.template, turns, s.system_message)
        if s.max_length is not None and len(input_ids) > s.max_length:
            input_ids, labels = input_ids[: s.max_length], labels[: s.max_length]
            if input_ids.count(self.image_token_id) != sum(num_patches_list) * s.tokens_per_frame:
                raise ValueError(
                    f"{conversation.where}: max_length={s.max_length} cuts into the video tokens; raise it"
                )
        return input_ids, labels

    def planned_size(self, index: int) -> tuple[int, int]:
        """``(tokens, tiles)`` of sample ``index`` without decoding its video (for packing plans).

        Only exact for one tile per frame (``max_num=1``): the tile count of dynamic tiling depends
        on the video's aspect ratio, which is unknown until it is opened.
        """
        s = self.settings
        if s.max_num != 1:
            raise ValueError(
                f"data packing plans sample sizes before decoding, which needs --max_num 1, got {s.max_num}"
            )
        input_ids, _ = self.tokenize(self.conversations[index], [1] * s.num_frames)
        return len(input_ids), s.num_frames

    def encode(self, conversation: VideoConversation) -> dict[str, torch.Tensor]:
        s = self.settings
        clip = load_video(conversation.video, s.num_frames, s.image_size, s.max_num, backend=s.backend)
        if clip.pixel_values.shape[0] % s.local_num_frames:
            raise ValueError(
                f"{conversation.where}: {clip.pixel_values.shape[0]} tiles, but HiCo merges groups of "
                f"{s.local_num_frames}; use max_num=1 and a frame count that is a multiple of it"
            )
        input_ids, labels = self.tokenize(conversation, clip.num_patches_list)
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(labels),
            "pixel_values": clip.pixel_values,
        }

    def __getitem__(self, key) -> dict[str, torch.Tensor | int]:
        index = key[0] if isinstance(key, tuple) else key
        for skipped in range(len(self)):
            try:
                item = self.encode(self.conversations[(index + skipped) % len(self)])
            except VideoReadError:
                continue
            return {**item, "skipped": skipped}
        raise VideoReadError(f"none of the {len(self)} videos of the instruction data could be read")


@dataclass
class SFTCollator:
    """Right-pads ``input_ids`` (``pad_token_id``) and ``labels`` (-100), concatenates the video tiles."""

    pad_token_id: int

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        length = max(len(item["input_ids"]) for item in items)
        input_ids = torch.full((len(items), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(items), length), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[row, :n], labels[row, :n], attention_mask[row, :n] = (
                item["input_ids"],
                item["labels"],
                1,
            )
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention_mask,
            "pixel_values": torch.cat([item["pixel_values"] for item in items]),
            "skipped": torch.tensor([item["skipped"] for item in items]),
        }
