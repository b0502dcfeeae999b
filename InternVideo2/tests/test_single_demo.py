"""The end-to-end demo (quick setting) learns motion direction well above chance."""

from internvideo2.demo import CHANCE, run_demo


def test_demo_quick_beats_chance(tmp_path):
    metrics = run_demo(tmp_path, "quick")
    assert metrics["test_videos"] == 16
    # Chance is 25 %; a model that ignored time could not pass this.
    assert metrics["test_top1"] >= CHANCE + 25
    assert (tmp_path / "run" / "checkpoint-11.pth").is_file()
