"""MVBench-style answer parsing, loading and per-task accuracy on a hand-made JSON."""

import json

import pytest

from internvideo2_5.eval.mvbench import evaluate_mcq, format_question, format_report, load_mcq, parse_option


@pytest.mark.parametrize(
    "text,expected",
    [
        ("B", 1),
        ("(B) a dog", 1),
        ("B. the dog", 1),
        ("Best option: (C)", 2),
        ("The answer is D", 3),
        ("I think (A) fits", 0),
        ("", None),
        ("E", None),
        ("Xylophone", None),
        ("the answer is a dog", None),
    ],
)
def test_parse_option(text, expected):
    assert parse_option(text, 4) == expected


@pytest.fixture
def questions(tmp_path, coded_video):
    data = {
        "action": [
            {
                "video": str(coded_video),
                "question": "What moves?",
                "candidates": ["a car", "a cat"],
                "answer": "a cat",
            },
            {"video": str(coded_video), "question": "Where?", "candidates": ["x", "y", "z"], "answer": "x"},
        ],
        "count": [
            {"video": "missing.mp4", "question": "How many?", "candidates": ["1", "2"], "answer": "B"},
        ],
    }
    path = tmp_path / "mvbench.json"
    path.write_text(json.dumps(data))
    return path


def test_load_and_format(questions, tmp_path):
    items = load_mcq(questions)
    assert [i.answer_index for i in items] == [1, 0, 1]
    assert items[2].video == str(tmp_path / "missing.mp4")
    text = format_question(items[0])
    # InternVL's evaluate_mvbench.py: prompt (ending in a newline), "\n", the question, the answer prompt.
    assert text == (
        "Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
        "movement of objects, and the action and pose of persons. Based on your observations, select the best "
        "option that accurately addresses the question.\n\nQuestion: What moves?\nOptions:\n(A) a car\n(B) a cat"
        "\nOnly give the best option."
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"video": "v.mp4", "question": "q", "candidates": ["a", "b"], "answer": "c"}]))
    with pytest.raises(ValueError, match="item 0"):
        load_mcq(bad)


def test_accuracy_per_task_hand_computed(questions):
    outputs = {"What moves?": "(B) a cat", "Where?": "C"}

    def answer(item, text):
        if item.video.endswith("missing.mp4"):
            raise OSError("no such file")
        return outputs[item.question]

    scores, records = evaluate_mcq(load_mcq(questions), answer)
    assert (scores["action"].correct, scores["action"].total) == (1, 2)
    assert (scores["count"].correct, scores["count"].failed) == (0, 1)
    report = format_report(scores)
    assert "action" in report and " 50.00" in report and "overall (items)   33.33" in report
    assert "overall (tasks)   25.00" in report
    assert records[2]["error"].startswith("OSError")


def test_end_to_end_with_the_tiny_chat(tiny_chat, questions):
    scores, records = evaluate_mcq(
        load_mcq(questions),
        lambda item, text: tiny_chat.chat(item.video, text, None, {"max_new_tokens": 3})[0],
    )
    assert scores["action"].total == 2 and scores["count"].failed == 1
    assert all("output" in r for r in records[:2])
