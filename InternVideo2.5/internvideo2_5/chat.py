"""Chat with a video: single and multi-turn, streaming, batched, and a bounded-memory long-video mode.

``VideoChat.chat(video, question, history=None, generation_config=None)`` returns ``(answer,
history)`` as the released model's ``chat(..., return_history=True)`` does. The video is sampled
and tiled as the model card does (:mod:`internvideo2_5.data.video`), encoded once per call
(or reused across the turns of a conversation about the same file), and its HiCo tokens are
scattered into the ``<IMG_CONTEXT>`` positions of the prompt before the LLM generates.

Long-video mode (``chunk_frames=k``, one tile per frame): frames are decoded, preprocessed and
encoded ``k`` at a time and only their compressed tokens are kept, so the vision encoder's
activations and the decoded frames stay bounded by ``k`` whatever the frame count; the LLM
context grows by ``tokens_per_frame`` (16) per frame.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GenerationConfig, TextIteratorStreamer

from internvideo2_5.configs.released import ChatModelConfig
from internvideo2_5.constants import DEFAULT_GENERATION_CONFIG, DEFAULT_NUM_FRAMES
from internvideo2_5.conversation import (
    History,
    build_query,
    expand_image_placeholders,
    get_template,
    time_instruction,
)
from internvideo2_5.data.video import VideoClip, iter_pixel_chunks, load_video, plan_video
from internvideo2_5.models.loading import load_pretrained

VideoInput = str | os.PathLike | VideoClip | None


@dataclass
class EncodedVideo:
    """HiCo tokens ``(tiles, tokens_per_frame, D)`` of a video, its tiles per frame, and timing."""

    visual: torch.Tensor
    num_patches_list: list[int]
    timestamps: list[float]
    duration: float


class StreamedTurn:
    """An answer being generated in a background thread; iterate for text pieces.

    After the iteration ends, ``answer`` and ``history`` hold what :meth:`VideoChat.chat` returns.
    """

    def __init__(
        self, chat: VideoChat, streamer: TextIteratorStreamer, kwargs: dict, user_turn: str, history: History
    ):
        self._chat, self._streamer, self._kwargs = chat, streamer, kwargs
        self._user_turn, self._history = user_turn, history
        self.answer: str | None = None

    @property
    def history(self) -> History:
        if self.answer is None:
            raise RuntimeError("the answer is still being streamed; iterate to the end first")
        return [*self._history, (self._user_turn, self.answer)]

    def __iter__(self) -> Iterator[str]:
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.no_grad():
                    self._chat.model.generate(**self._kwargs)
            except BaseException as exc:  # re-raised in the caller's thread below
                failure.append(exc)
                self._streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        pieces = []
        for piece in self._streamer:
            pieces.append(piece)
            yield piece
        worker.join()
        if failure:
            raise failure[0]
        self.answer = "".join(pieces).split(self._chat.template.stop_token)[0].strip()


class VideoChat:
    """The released chat model with its tokenizer, template and video settings."""

    def __init__(
        self,
        model,
        tokenizer,
        config: ChatModelConfig,
        num_frames: int = DEFAULT_NUM_FRAMES,
        max_num: int = 1,
        chunk_frames: int | None = None,
        frames_by_duration: bool = False,
        time_prompt: bool = False,
        system_message: str | None = None,
        backend: str = "auto",
    ):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.template = get_template(config.template)
        self.num_frames, self.max_num = num_frames, max_num
        self.frames_by_duration, self.time_prompt = frames_by_duration, time_prompt
        self.system_message, self.backend = system_message, backend
        group = config.local_num_frames
        if chunk_frames is not None and (chunk_frames <= 0 or chunk_frames % group or max_num != 1):
            raise ValueError(
                f"chunk_frames must be a positive multiple of local_num_frames={group} and needs max_num=1 "
                f"(got chunk_frames={chunk_frames}, max_num={max_num})"
            )
        self.chunk_frames = chunk_frames
        self.stop_token_id = tokenizer.convert_tokens_to_ids(self.template.stop_token)
        self._cache: tuple[str, EncodedVideo] | None = None

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, dtype: torch.dtype = torch.float32, device: str = "cpu", **kwargs
    ) -> VideoChat:
        model, tokenizer, config = load_pretrained(path, dtype=dtype, device=device)
        return cls(model, tokenizer, config, **kwargs)

    # -- video -----------------------------------------------------------------------------------

    def _check_groups(self, tiles: int, where: str) -> None:
        group = self.config.local_num_frames
        if tiles % group:
            raise ValueError(
                f"{where}: {tiles} tiles, but HiCo merges groups of {group}; use a frame count that is a "
                f"multiple of {group} (num_frames={self.num_frames})"
            )

    @torch.no_grad()
    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_frames(pixels.to(self.model.device))

    def encode_video(self, video: str | os.PathLike | VideoClip) -> EncodedVideo:
        """Sample, preprocess and HiCo-encode ``video`` (chunk by chunk in long-video mode)."""
        if isinstance(video, VideoClip):
            self._check_groups(video.pixel_values.shape[0], "video")
            step = self.chunk_frames or video.pixel_values.shape[0]
            parts = [
                self._encode_pixels(video.pixel_values[i : i + step])
                for i in range(0, len(video.pixel_values), step)
            ]
            return EncodedVideo(torch.cat(parts), video.num_patches_list, video.timestamps, video.duration)
        size = self.config.image_size
        if self.chunk_frames is None:
            clip = load_video(
                video,
                self.num_frames,
                size,
                self.max_num,
                frames_by_duration=self.frames_by_duration,
                backend=self.backend,
            )
            self._check_groups(clip.pixel_values.shape[0], str(video))
            return EncodedVideo(
                self._encode_pixels(clip.pixel_values), clip.num_patches_list, clip.timestamps, clip.duration
            )
        plan = plan_video(
            video,
            self.num_frames,
            frames_by_duration=self.frames_by_duration,
            local_num_frames=self.config.local_num_frames,
            backend=self.backend,
        )
        self._check_groups(len(plan.frame_indices), str(video))
        parts = [
            self._encode_pixels(pixels)
            for pixels, _ in iter_pixel_chunks(plan, self.chunk_frames, size, 1, self.backend)
        ]
        return EncodedVideo(torch.cat(parts), [1] * len(plan.frame_indices), plan.timestamps, plan.duration)

    def _encoded(self, video: VideoInput | EncodedVideo) -> EncodedVideo | None:
        if video is None or isinstance(video, EncodedVideo):
            return video
        if isinstance(video, VideoClip):
            return self.encode_video(video)
        key = str(Path(video).resolve())
        if self._cache is None or self._cache[0] != key:
            self._cache = None  # drop the previous video's tokens before encoding the next
            self._cache = (key, self.encode_video(video))
        return self._cache[1]

    # -- prompt and generation -------------------------------------------------------------------

    def build_prompt(
        self, encoded: EncodedVideo | None, question: str, history: History | None
    ) -> tuple[str, str]:
        """The fully expanded prompt and the user turn to store in the history."""
        frames = 0 if encoded is None else len(encoded.num_patches_list)
        time_text = (
            time_instruction(encoded.duration, encoded.timestamps) if self.time_prompt and encoded else None
        )
        prompt, user_turn = build_query(
            self.template, question, history, frames, self.system_message, time_text
        )
        counts = [] if encoded is None else encoded.num_patches_list
        return expand_image_placeholders(prompt, self.model.tokens_per_frame, counts), user_turn

    def _generation_config(self, overrides: dict | None) -> GenerationConfig:
        settings = {**DEFAULT_GENERATION_CONFIG, **(overrides or {})}
        if not settings.get("do_sample"):
            # Sampling knobs (the model card passes temperature=0, top_p=0.1) mean nothing when greedy.
            settings = {k: v for k, v in settings.items() if k not in ("temperature", "top_p", "top_k")}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_token_id
        return GenerationConfig(**settings, eos_token_id=self.stop_token_id, pad_token_id=pad)

    def _embeds(
        self, prompts: Sequence[str], visuals: Sequence[EncodedVideo | None]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.tokenizer.padding_side = "left"
        batch = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        ids, mask = batch["input_ids"].to(self.model.device), batch["attention_mask"].to(self.model.device)
        parts = [v.visual for v in visuals if v is not None]
        visual = torch.cat(parts) if parts else None
        return self.model.embed_with_visual(ids, visual), mask

    def _decode(self, tokens: torch.Tensor) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return text.split(self.template.stop_token)[0].strip()

    def _generate_kwargs(
        self,
        video: VideoInput | EncodedVideo,
        question: str,
        history: History | None,
        generation_config: dict | None,
    ) -> tuple[dict, str]:
        """``generate`` arguments for one turn, and the user turn to store in the history."""
        encoded = self._encoded(video)
        prompt, user_turn = self.build_prompt(encoded, question, history)
        embeds, mask = self._embeds([prompt], [encoded])
        kwargs = {
            "inputs_embeds": embeds,
            "attention_mask": mask,
            "generation_config": self._generation_config(generation_config),
        }
        return kwargs, user_turn

    @torch.no_grad()
    def chat(
        self,
        video: VideoInput | EncodedVideo,
        question: str,
        history: History | None = None,
        generation_config: dict | None = None,
    ) -> tuple[str, History]:
        """One turn about ``video`` (a path, a :class:`VideoClip`, or ``None`` for text only)."""
        kwargs, user_turn = self._generate_kwargs(video, question, history, generation_config)
        answer = self._decode(self.model.generate(**kwargs)[0])
        return answer, [*(history or []), (user_turn, answer)]

    def stream_chat(
        self,
        video: VideoInput | EncodedVideo,
        question: str,
        history: History | None = None,
        generation_config: dict | None = None,
    ) -> StreamedTurn:
        """Like :meth:`chat`, but iterate over the result to get the answer text as it is generated."""
        kwargs, user_turn = self._generate_kwargs(video, question, history, generation_config)
        streamer = kwargs["streamer"] = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        return StreamedTurn(self, streamer, kwargs, user_turn, list(history or []))

    @torch.no_grad()
    def batch_chat(
        self,
        videos: Sequence[VideoInput | EncodedVideo],
        questions: Sequence[str],
        generation_config: dict | None = None,
    ) -> list[str]:
        """Single-turn answers for several (video, question) pairs in one left-padded ``generate``."""
        if len(videos) != len(questions):
            raise ValueError(f"{len(videos)} videos but {len(questions)} questions")
        encoded = [
            self._encoded(v) if not isinstance(v, str | os.PathLike) else self.encode_video(v) for v in videos
        ]
        prompts = [self.build_prompt(e, q, None)[0] for e, q in zip(encoded, questions)]
        embeds, mask = self._embeds(prompts, encoded)
        output = self.model.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            generation_config=self._generation_config(generation_config),
        )
        return [self._decode(row) for row in output]
