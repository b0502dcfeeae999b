"""The chat template and prompt construction of the released model.

The released model uses InternVL2.5's ``internvl2_5`` template (ChatML markers, MPT separator
style)::

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{q1}<|im_end|>\\n<|im_start|>assistant\\n{a1}<|im_end|>\\n...<|im_start|>assistant\\n

A video enters the first user turn as one ``Frame{i}: <image>\\n`` line per sampled frame (the
model card's prompt); each ``<image>`` is then replaced, in order, by ``<img>`` +
``<IMG_CONTEXT>`` x (tokens per frame x tiles of that frame) + ``</img>``. Generation stops at
``<|im_end|>`` (the separator without its newline), as the original's ``chat`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from internvideo2_5.constants import IMAGE_PLACEHOLDER, IMG_CONTEXT_TOKEN, IMG_END_TOKEN, IMG_START_TOKEN

History = list[tuple[str, str]]

INTERNVL2_5_SYSTEM = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"


@dataclass(frozen=True)
class ChatTemplate:
    """An MPT-style template: ``system_template`` + ``sep``, then ``role + message + sep`` per turn."""

    name: str
    system_template: str
    system_message: str
    roles: tuple[str, str]
    sep: str

    @property
    def stop_token(self) -> str:
        """The token that ends an assistant turn (the separator without trailing whitespace)."""
        return self.sep.strip()

    def messages(
        self, turns: Sequence[tuple[str, str | None]], system_message: str | None = None
    ) -> list[tuple[str, str]]:
        """The prompt as ``(role, text)`` messages (``system``/``user``/``assistant``); joined, :meth:`render`.

        An answered assistant message is ``roles[1] + answer + sep``; a ``None`` answer leaves
        only ``roles[1]``, which opens the assistant turn for generation.
        """
        system = self.system_message if system_message is None else system_message
        out = [("system", self.system_template.format(system_message=system) + self.sep)]
        for user, assistant in turns:
            out.append(("user", self.roles[0] + user + self.sep))
            tail = "" if assistant is None else assistant + self.sep
            out.append(("assistant", self.roles[1] + tail))
        return out

    def render(self, turns: Sequence[tuple[str, str | None]], system_message: str | None = None) -> str:
        """The prompt for ``turns`` of ``(user, assistant)``; a ``None`` answer opens the assistant turn."""
        return "".join(text for _, text in self.messages(turns, system_message))


TEMPLATES = {
    "internvl2_5": ChatTemplate(
        name="internvl2_5",
        system_template="<|im_start|>system\n{system_message}",
        system_message=INTERNVL2_5_SYSTEM,
        roles=("<|im_start|>user\n", "<|im_start|>assistant\n"),
        sep="<|im_end|>\n",
    ),
}


def get_template(name: str) -> ChatTemplate:
    if name not in TEMPLATES:
        raise KeyError(f"unknown chat template {name!r}; known: {sorted(TEMPLATES)}")
    return TEMPLATES[name]


def video_prefix(num_frames: int) -> str:
    """``Frame1: <image>\\n`` ... one line per frame, as the model card builds it."""
    return "".join(f"Frame{i + 1}: {IMAGE_PLACEHOLDER}\n" for i in range(num_frames))


def time_instruction(duration: float, timestamps: Sequence[float]) -> str:
    """The optional time prompt of VideoChat-Flash/LLaVA-Video style evaluation (off by default)."""
    located = ",".join(f"{t:.2f}s" for t in timestamps)
    return (
        f"The video lasts for {duration:.2f} seconds, and {len(timestamps)} frames are uniformly sampled "
        f"from it. These frames are located at {located}.Please answer the following questions related to "
        "this video."
    )


def expand_image_placeholders(prompt: str, tokens_per_tile: int, num_patches_list: Sequence[int]) -> str:
    """Replace the ``<image>`` placeholders, in order, by their image-context token runs."""
    found = prompt.count(IMAGE_PLACEHOLDER)
    if found != len(num_patches_list):
        raise ValueError(
            f"the prompt has {found} {IMAGE_PLACEHOLDER} placeholders but {len(num_patches_list)} frames were given"
        )
    for num_patches in num_patches_list:
        run = IMG_START_TOKEN + IMG_CONTEXT_TOKEN * (tokens_per_tile * num_patches) + IMG_END_TOKEN
        prompt = prompt.replace(IMAGE_PLACEHOLDER, run, 1)
    return prompt


def build_query(
    template: ChatTemplate,
    question: str,
    history: History | None = None,
    num_frames: int = 0,
    system_message: str | None = None,
    time_prompt: str | None = None,
) -> tuple[str, str]:
    """The prompt text (placeholders not yet expanded) and the user turn stored in the history.

    A new conversation about a video starts with the frame lines (unless the question already
    holds ``<image>`` placeholders); later turns reuse the history, whose first user turn holds
    them, as the original's multi-turn ``chat`` does.
    """
    if not question or not question.strip():
        raise ValueError("the question is empty")
    history = list(history or [])
    user_turn = question
    if not history and num_frames and IMAGE_PLACEHOLDER not in question:
        lead = video_prefix(num_frames)
        if time_prompt:
            lead += time_prompt + "\n"
        user_turn = lead + question
    turns: list[tuple[str, str | None]] = [*history, (user_turn, None)]
    return template.render(turns, system_message), user_turn
