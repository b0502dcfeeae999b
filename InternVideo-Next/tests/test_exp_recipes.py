"""The exp/ recipes: each launches the right entry point with arguments its parser accepts."""

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from internvideo_next.configs import add_pretrain_args

ROOT = Path(__file__).resolve().parents[1]
ENV = {"DATA_PATH": "list.txt", "BERT": "/m/bert", "TEACHER": "/m/siglip2", "STAGE1_CKPT": "/c/s1.pth"}


@pytest.mark.parametrize(
    ("size", "stage", "expected"),
    [
        (
            "base",
            1,
            {"drop_path": 0.1, "clip_teacher_return_interval": 3.33, "clip_teacher_path": "/m/siglip2"},
        ),
        ("large", 1, {"drop_path": 0.2, "clip_teacher_return_interval": 1.67, "lr": 1e-3}),
        ("base", 2, {"drop_path": 0.1, "stage1_checkpoint": "/c/s1.pth", "num_frames": 32, "momentum": 1.0}),
        ("large", 2, {"drop_path": 0.2, "batch_size": 14, "lr": 1e-4}),
    ],
)
def test_recipe_command_line(size, stage, expected, tmp_path):
    env = {**os.environ, **ENV, "DRY_RUN": "1", "OUTPUT_ROOT": str(tmp_path), "NODES": "2"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    script = ROOT / "exp" / size / "pretrain" / f"stage{stage}.sh"
    out = subprocess.run(
        ["bash", str(script), "--epochs", "3"], env=env, capture_output=True, text=True, check=True
    )
    words = shlex.split(out.stdout.strip().splitlines()[-1])
    assert "--nodes=2" in words and "--ntasks=16" in words  # 2 nodes x 8 GPUs on SLURM
    entry = words.index(str(ROOT / f"main_stage{stage}.py"))
    args = add_pretrain_args(argparse.ArgumentParser(), stage).parse_args(words[entry + 1 :])
    assert args.model == f"internvideo_next_stage{stage}_{size}"
    assert args.output_dir == str(tmp_path / f"internvideo_next_vit_{size}_s{stage}")
    assert args.epochs == 3  # extra arguments come last and win
    assert (args.bert_path, args.data_path, args.zero_stage, args.bf16) == ("/m/bert", "list.txt", 1, True)
    for key, value in expected.items():
        assert getattr(args, key) == value, key


def test_recipe_without_data_path_fails_clearly(tmp_path):
    env = {k: v for k, v in {**os.environ, **ENV, "DRY_RUN": "1"}.items() if k != "DATA_PATH"}
    out = subprocess.run(
        ["bash", str(ROOT / "exp/base/pretrain/stage1.sh")], env=env, capture_output=True, text=True
    )
    assert out.returncode != 0 and "set DATA_PATH" in out.stderr
