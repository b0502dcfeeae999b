"""Instruction data reading, answer-only label masks, video token expansion and padding."""

import json

import pytest
import torch

from internvideo2_5.conversation import INTERNVL2_5_SYSTEM, get_template
from internvideo2_5.data.instruction import load_instruction_data
from internvideo2_5.data.sft import SFTCollator, encode_conversation, video_turns
from internvideo2_5.tiny import build_tiny_tokenizer

TEMPLATE = get_template("internvl2_5")


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_both_layouts_put_the_video_slot_in_the_first_turn(tmp_path):
    rows = [
        {
            "video": "a.mp4",
            "QA": [{"i": "Be brief.", "q": "Who?", "a": "A dog."}, {"q": "Where?", "a": "Park."}],
        },
        {
            "video": "b.mp4",
            "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "X."}],
        },
        {
            "video": "c.mp4",
            "conversations": [{"from": "human", "value": "Q <video>"}, {"from": "gpt", "value": "Y."}],
        },
    ]
    got = load_instruction_data(write_jsonl(tmp_path / "d.jsonl", rows), video_root="/videos")
    assert [str(c.video) for c in got] == ["/videos/a.mp4", "/videos/b.mp4", "/videos/c.mp4"]
    assert got[0].turns == [("<video>\nBe brief.\nWho?", "A dog."), ("Where?", "Park.")]
    assert got[1].turns == [("<video>\nWhat?", "X.")]
    assert got[2].turns == [("Q <video>", "Y.")]


def test_meta_file_resolves_roots_and_repeats(tmp_path):
    write_jsonl(tmp_path / "ann.jsonl", [{"video": "v.mp4", "QA": [{"q": "Q", "a": "A"}]}])
    meta = {"caption": {"root": "clips", "annotation": "ann.jsonl", "repeat_time": 3}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    got = load_instruction_data(tmp_path / "meta.json")
    assert [c.video for c in got] == [tmp_path / "clips" / "v.mp4"] * 3


@pytest.mark.parametrize(
    "row, message",
    [
        ({"video": "v.mp4", "QA": []}, "QA must be a non-empty list"),
        ({"video": "v.mp4", "QA": [{"q": "Q"}]}, "QA[1] a"),
        (
            {
                "video": "v.mp4",
                "conversations": [{"from": "gpt", "value": "A"}, {"from": "human", "value": "Q"}],
            },
            "from 'human'",
        ),
        (
            {
                "video": "v.mp4",
                "conversations": [
                    {"from": "human", "value": "<video><image>Q"},
                    {"from": "gpt", "value": "A"},
                ],
            },
            "one video slot",
        ),
        ({"QA": [{"q": "Q", "a": "A"}]}, "video: expected a non-empty string"),
    ],
)
def test_bad_rows_name_the_file_line_and_field(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"video": "ok.mp4", "QA": [{"q": "Q", "a": "A"}]}, row])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2") as info:
        load_instruction_data(path)
    assert message in str(info.value)


def test_labels_are_the_answers_and_their_im_end_only():
    tok = build_tiny_tokenizer()
    ids, labels = encode_conversation(tok, TEMPLATE, [("Who?", "A dog."), ("Where?", "In a park.")])
    start, end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")

    def text(s):  # plain text (no special tokens): one id per UTF-8 byte in the tiny tokenizer
        return tok(s, add_special_tokens=False).input_ids

    # (ids, learned) by hand: <s>, the system turn, user/assistant turns; answers + <|im_end|> learned.
    pieces = [
        ([tok.bos_token_id], False),
        ([start, *text(f"system\n{INTERNVL2_5_SYSTEM}"), end, *text("\n")], False),
        ([start, *text("user\nWho?"), end, *text("\n")], False),
        ([start, *text("assistant\n")], False),
        ([*text("A dog."), end], True),
        (text("\n"), False),
        ([start, *text("user\nWhere?"), end, *text("\n")], False),
        ([start, *text("assistant\n")], False),
        ([*text("In a park."), end], True),
        (text("\n"), False),
    ]
    assert ids == [i for piece, _ in pieces for i in piece]
    assert labels == [i if learned else -100 for piece, learned in pieces for i in piece]
    assert len(text("A dog.")) == 6  # the byte-level premise of the hand count


def test_video_marker_becomes_frame_lines_with_image_token_runs():
    turns = video_turns([("<video>\nWhat?", "X."), ("And?", "Y.")], [1, 1, 2], tokens_per_frame=2)
    run = "<img>" + "<IMG_CONTEXT>" * 2 + "</img>"
    first = f"Frame1: {run}\nFrame2: {run}\nFrame3: <img>{'<IMG_CONTEXT>' * 4}</img>\nWhat?"
    assert turns == [(first, "X."), ("And?", "Y.")]


def test_collator_right_pads_ids_and_labels_and_stacks_tiles():
    items = [
        {
            "input_ids": torch.tensor([5, 6, 7]),
            "labels": torch.tensor([-100, 6, 7]),
            "pixel_values": torch.zeros(4, 3, 2, 2),
            "skipped": 0,
        },
        {
            "input_ids": torch.tensor([8]),
            "labels": torch.tensor([8]),
            "pixel_values": torch.ones(4, 3, 2, 2),
            "skipped": 1,
        },
    ]
    batch = SFTCollator(pad_token_id=2)(items)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["pixel_values"].shape == (8, 3, 2, 2) and batch["pixel_values"][4:].eq(1).all()
    assert batch["skipped"].tolist() == [0, 1]
