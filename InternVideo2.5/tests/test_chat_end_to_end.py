"""Chat, streaming, batch JSONL, long-video chunking and errors on the tiny released-layout model."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from internvideo2_5.chat import VideoChat
from internvideo2_5.data.video import clip_from_frames
from internvideo2_5.inference import read_jsonl, run_batch
from ivtools.video import VideoReadError
from ivtools.video.synthetic import coded_frames, write_video

GEN = {"max_new_tokens": 5}
ROOT = Path(__file__).resolve().parents[1]


def greedy_reference(chat, video, question, steps):
    """Token-by-token greedy decoding with full forward passes (no cache, no generate())."""
    encoded = chat.encode_video(video)
    prompt, _ = chat.build_prompt(encoded, question, None)
    ids = chat.tokenizer(prompt, return_tensors="pt").input_ids
    embeds = chat.model.embed_with_visual(ids, encoded.visual)
    out = []
    with torch.no_grad():
        for _ in range(steps):
            token = int(chat.model(inputs_embeds=embeds).logits[0, -1].argmax())
            if token == chat.stop_token_id:
                break
            out.append(token)
            embeds = torch.cat([embeds, chat.model.get_input_embeddings()(torch.tensor([[token]]))], dim=1)
    return chat.tokenizer.decode(out, skip_special_tokens=True).strip()


def test_chat_matches_manual_greedy_decoding_and_uses_the_video(tiny_chat, coded_video, tmp_path):
    answer, history = tiny_chat.chat(coded_video, "What happens in the video?", generation_config=GEN)
    assert answer == greedy_reference(tiny_chat, coded_video, "What happens in the video?", 5)
    assert history == [
        ("".join(f"Frame{i}: <image>\n" for i in range(1, 9)) + "What happens in the video?", answer)
    ]
    # The visual tokens reach the LLM: another video changes the next-token distribution.
    other = write_video(tmp_path / "other.mp4", 255 - coded_frames(40, 96, 160), fps=10)
    logits = []
    for video in (coded_video, other):
        encoded = tiny_chat.encode_video(video)
        prompt, _ = tiny_chat.build_prompt(encoded, "Q", None)
        ids = tiny_chat.tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            logits.append(
                tiny_chat.model(inputs_embeds=tiny_chat.model.embed_with_visual(ids, encoded.visual)).logits[
                    0, -1
                ]
            )
    assert not torch.allclose(logits[0], logits[1])


def test_streaming_gives_the_same_text_and_history(tiny_chat, coded_video):
    answer, history = tiny_chat.chat(coded_video, "Describe it.", generation_config=GEN)
    turn = tiny_chat.stream_chat(coded_video, "Describe it.", generation_config=GEN)
    pieces = list(turn)
    assert len(pieces) >= 1
    assert "".join(pieces).strip() == answer
    assert turn.history == history


def test_second_turn_prompt_holds_the_first_answer(tiny_chat, coded_video):
    answer, history = tiny_chat.chat(coded_video, "First?", generation_config=GEN)
    encoded = tiny_chat.encode_video(coded_video)
    prompt, user_turn = tiny_chat.build_prompt(encoded, "Second?", history)
    assert user_turn == "Second?"
    assert f"<|im_start|>assistant\n{answer}<|im_end|>\n<|im_start|>user\nSecond?" in prompt
    assert prompt.count("<IMG_CONTEXT>") == 8 * 16
    second, history = tiny_chat.chat(coded_video, "Second?", history, GEN)
    assert len(history) == 2 and history[1] == ("Second?", second)


def test_batch_jsonl_matches_single_chats_and_records_failures(tiny_chat, coded_video, tmp_path):
    rows = [
        {"id": 1, "video": str(coded_video), "question": "What happens?"},
        {"id": 2, "video": str(tmp_path / "missing.mp4"), "question": "Anything?"},
        {"id": 3, "video": str(coded_video), "question": "Describe the colours of the scene in detail."},
        {"id": 4, "video": str(coded_video), "question": ""},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    counts = run_batch(
        tiny_chat, read_jsonl(source), tmp_path / "out.jsonl", batch_size=4, generation_config=GEN
    )
    assert counts == {"answered": 2, "failed": 2}
    out = {r["id"]: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    for i in (1, 3):
        assert (
            out[i]["answer"] == tiny_chat.chat(coded_video, rows[i - 1]["question"], generation_config=GEN)[0]
        )
    assert "VideoReadError" in out[2]["error"] and "empty" in out[4]["error"]


def test_long_video_chunks_match_one_shot_and_bound_the_encoder_batch(tiny_checkpoint, tiny_chat, tmp_path):
    video = write_video(tmp_path / "long.mp4", coded_frames(64, 96, 160), fps=10)
    one_shot = VideoChat(tiny_chat.model, tiny_chat.tokenizer, tiny_chat.config, num_frames=16)
    chunked = VideoChat(tiny_chat.model, tiny_chat.tokenizer, tiny_chat.config, num_frames=16, chunk_frames=4)
    seen = []
    pre = tiny_chat.model.model.vision_tower.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["pixel_values"].shape[0]), with_kwargs=True
    )
    try:
        full = one_shot.encode_video(video)
        seen.clear()
        parts = chunked.encode_video(video)
    finally:
        pre.remove()
    assert seen == [4, 4, 4, 4]  # the encoder never holds more than one chunk of frames
    assert parts.visual.shape == (16, 16, 64)
    torch.testing.assert_close(parts.visual, full.visual, rtol=1e-5, atol=1e-5)
    assert (
        chunked.chat(video, "Q", generation_config=GEN)[0]
        == one_shot.chat(video, "Q", generation_config=GEN)[0]
    )


def test_bad_requests_fail_clearly_before_the_model(tiny_chat, coded_video, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        tiny_chat.chat(coded_video, "  ")
    with pytest.raises(VideoReadError, match="no such file"):
        tiny_chat.chat(tmp_path / "nope.mp4", "Q")
    odd = VideoChat(tiny_chat.model, tiny_chat.tokenizer, tiny_chat.config, num_frames=6)
    with pytest.raises(ValueError, match="multiple of 4"):
        odd.chat(coded_video, "Q")
    with pytest.raises(ValueError, match="chunk_frames"):
        VideoChat(tiny_chat.model, tiny_chat.tokenizer, tiny_chat.config, chunk_frames=6)


def test_run_chat_cli(tiny_checkpoint, tiny_chat, coded_video):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_chat.py"),
            "--model",
            str(tiny_checkpoint),
            "--video",
            str(coded_video),
            "--question",
            "What happens in the video?",
            "--num-frames",
            "8",
            "--max-new-tokens",
            "5",
            "--stream",
            "--dtype",
            "float32",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected, _ = tiny_chat.chat(coded_video, "What happens in the video?", generation_config=GEN)
    assert result.stdout.strip() == expected


def test_training_forward_with_pixels_equals_manual_loss(tiny_chat):
    # The upstream forward(input_ids, pixel_values, labels) runs HiCo inside; its loss must equal
    # a next-token cross-entropy over logits computed from our own embedding scatter.
    frames = torch.randint(0, 255, (4, 64, 64, 3), dtype=torch.uint8).numpy()
    clip = clip_from_frames(frames, input_size=224)
    encoded = tiny_chat.encode_video(clip)
    prompt, _ = tiny_chat.build_prompt(encoded, "hi", None)
    ids = tiny_chat.tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        loss = tiny_chat.model(input_ids=ids, pixel_values=clip.pixel_values, labels=ids).loss
        logits = tiny_chat.model(inputs_embeds=tiny_chat.model.embed_with_visual(ids, encoded.visual)).logits
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]))
