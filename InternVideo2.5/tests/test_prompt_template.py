"""Prompt construction against hand-written expected strings."""

import pytest

from internvideo2_5.conversation import (
    INTERNVL2_5_SYSTEM,
    build_query,
    expand_image_placeholders,
    get_template,
    time_instruction,
)

T = get_template("internvl2_5")


def test_first_turn_with_two_frames():
    prompt, user_turn = build_query(T, "What is he doing?", None, num_frames=2)
    assert user_turn == "Frame1: <image>\nFrame2: <image>\nWhat is he doing?"
    assert prompt == (
        f"<|im_start|>system\n{INTERNVL2_5_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nFrame1: <image>\nFrame2: <image>\nWhat is he doing?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    expanded = expand_image_placeholders(prompt, 2, [1, 1])
    assert (
        "Frame1: <img><IMG_CONTEXT><IMG_CONTEXT></img>\nFrame2: <img><IMG_CONTEXT><IMG_CONTEXT></img>\n"
        in expanded
    )


def test_second_turn_replays_history_and_custom_system():
    history = [("Frame1: <image>\nQ1", "A1")]
    prompt, user_turn = build_query(T, "Q2", history, num_frames=1, system_message="Be brief.")
    assert user_turn == "Q2"
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nFrame1: <image>\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
        "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n"
    )


def test_tiles_per_frame_multiply_context_tokens():
    assert expand_image_placeholders("<image>", 16, [3]) == "<img>" + "<IMG_CONTEXT>" * 48 + "</img>"


def test_time_prompt_text():
    text = time_instruction(4.0, [0.5, 1.5])
    assert text == (
        "The video lasts for 4.00 seconds, and 2 frames are uniformly sampled from it. These frames are "
        "located at 0.50s,1.50s.Please answer the following questions related to this video."
    )
    _, user_turn = build_query(T, "Q", None, 2, time_prompt=text)
    assert user_turn == "Frame1: <image>\nFrame2: <image>\n" + text + "\nQ"


def test_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        build_query(T, "   ", None, 4)
    with pytest.raises(ValueError, match="placeholders"):
        expand_image_placeholders("<image>", 16, [1, 1])
    with pytest.raises(KeyError, match="unknown chat template"):
        get_template("vicuna")
