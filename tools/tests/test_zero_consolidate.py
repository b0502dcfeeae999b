"""consolidate-zero on real DeepSpeed ZeRO-1/2/3 checkpoints written by a 2-step CPU training run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ivtools.checkpoint import consolidate_zero_checkpoint, load_state_dict_file
from ivtools.checkpoint.cli import main

pytest.importorskip("deepspeed")
STAGES = (1, 2, 3)


@pytest.fixture(scope="module")
def zero_checkpoints(tmp_path_factory):
    out = tmp_path_factory.mktemp("zero")
    script = Path(__file__).with_name("deepspeed_tiny_train.py")
    env = {**os.environ, "MASTER_PORT": str(29500 + os.getpid() % 1000), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, str(script), str(out), *map(str, STAGES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def _reference(folder: Path) -> tuple[dict, dict]:
    ref = torch.load(folder / "reference.pt")
    return ref["expected"], ref["initial"]


@pytest.mark.parametrize("stage", STAGES)
def test_consolidated_weights_equal_the_trained_fp32_parameters(zero_checkpoints, stage):
    folder = zero_checkpoints / f"stage{stage}"
    expected, initial = _reference(folder)
    merged = consolidate_zero_checkpoint(folder)
    assert sorted(merged) == sorted(expected)
    for key, tensor in expected.items():
        assert merged[key].dtype == tensor.dtype, key
        assert torch.equal(merged[key], tensor), key
    # the run did train (so the test cannot pass on initial weights) and left frozen weights alone
    assert not torch.equal(merged["head.weight"], initial["head.weight"])
    assert torch.equal(merged["frozen.weight"], initial["frozen.weight"])
    assert torch.equal(merged["counts"], torch.arange(3))


@pytest.mark.parametrize("stage", [1, 3])
def test_exclude_frozen_and_tag_folder(zero_checkpoints, stage):
    folder = zero_checkpoints / f"stage{stage}"
    tag = (folder / "latest").read_text().strip()
    assert tag == "global_step2"
    trainable = consolidate_zero_checkpoint(folder / tag, exclude_frozen=True)
    assert sorted(trainable) == ["counts", "embed.bias", "embed.weight", "head.bias", "head.weight"]


def test_cli_writes_safetensors(zero_checkpoints, tmp_path, capsys):
    folder = zero_checkpoints / "stage2"
    out = tmp_path / "fp32.safetensors"
    assert main(["consolidate-zero", str(folder), str(out)]) == 0
    expected, _ = _reference(folder)
    loaded = load_state_dict_file(out)
    assert all(torch.equal(loaded[k], v) for k, v in expected.items()) and len(loaded) == len(expected)


def test_bad_folders_are_named(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        consolidate_zero_checkpoint(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="'latest'"):
        consolidate_zero_checkpoint(tmp_path)
    (tmp_path / "latest").write_text("global_step9")
    assert main(["consolidate-zero", str(tmp_path), str(tmp_path / "o.pth")]) == 1
    assert "global_step9" in capsys.readouterr().err
