"""Several processes on the CPU (gloo): the launcher, DDP and ZeRO training, evaluation across ranks.

A two-process run must train the same model as one process with the same global batch, and its
checkpoints must resume in a one-process run: the paths a multi-GPU job takes, minus the GPUs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from ivtools.checkpoint import consolidate_zero_checkpoint
from ivtools.launch import build_parser, main, plan_launch
from ivtools.testing import run_script

DRIVER = Path(__file__).with_name("tiny_finetune.py")


def _plan(argv):
    return plan_launch(build_parser().parse_args(argv))


def test_local_single_process_runs_the_script_directly():
    plan = _plan(["--master-port", "12345", "run_finetuning.py", "--", "--epochs", "3"])
    assert plan.command == [sys.executable, "-u", "run_finetuning.py", "--epochs", "3"]
    assert plan.env == {"MASTER_PORT": "12345", "OMP_NUM_THREADS": "1"}


def test_local_multi_gpu_uses_torchrun(capsys):
    assert (
        main(
            ["--dry-run", "--gpus", "8", "--master-port", "12777", "run_finetuning.py", "--", "--lr", "1e-3"]
        )
        == 0
    )
    line = capsys.readouterr().out.strip()
    assert line == (
        f"MASTER_PORT=12777 OMP_NUM_THREADS=1 {sys.executable} -m torch.distributed.run --standalone "
        "--nproc_per_node=8 --master_port=12777 run_finetuning.py --lr 1e-3"
    )


def test_slurm_srun_line(capsys):
    argv = ["--dry-run", "--slurm", "-p", "video", "--nodes", "4", "--gpus", "8", "--cpus-per-task", "16"]
    assert main([*argv, "--master-port", "13000", "run_pretraining.py", "--", "--batch_size", "8"]) == 0
    line = capsys.readouterr().out.strip()
    assert line == (
        "MASTER_PORT=13000 OMP_NUM_THREADS=1 srun --job-name=run_pretraining --partition=video --nodes=4 "
        "--ntasks=32 --ntasks-per-node=8 --gres=gpu:8 --cpus-per-task=16 --kill-on-bad-exit=1 "
        f"{sys.executable} -u run_pretraining.py --batch_size 8"
    )


def test_sbatch_script(tmp_path):
    plan = _plan(
        [
            "--slurm",
            "--sbatch",
            "--nodes",
            "2",
            "--gpus",
            "4",
            "--time",
            "1:00:00",
            "--log-dir",
            str(tmp_path),
        ]
        + ["--master-port", "12001", "run_distill.py"]
    )
    assert plan.command == ["sbatch", str(tmp_path / "run_distill.sbatch")]
    lines = plan.sbatch_script.splitlines()
    assert "#SBATCH --ntasks-per-node=4" in lines and "#SBATCH --nodes=2" in lines
    assert "#SBATCH --time=1:00:00" in lines
    assert "export MASTER_PORT=12001" in lines and "export OMP_NUM_THREADS=1" in lines
    assert lines[-1] == f"srun --kill-on-bad-exit=1 {sys.executable} -u run_distill.py"


def test_random_master_port_is_in_range():
    ports = {int(_plan(["x.py"]).env["MASTER_PORT"]) for _ in range(20)}
    assert all(12000 <= p <= 32000 for p in ports) and len(ports) > 1


@pytest.mark.parametrize("argv", [["--sbatch", "x.py"], ["--nodes", "2", "x.py"], ["--gpus", "0", "x.py"]])
def test_inconsistent_options_are_refused(argv):
    with pytest.raises(SystemExit):
        main(argv)


def _finetune_args(root: Path, out: Path, batch: int, epochs: int) -> list[str]:
    return [
        f"--data_path={root}", f"--prefix={root}", f"--output_dir={out}", "--nb_classes=4",
        "--num_frames=4", "--input_size=32", "--short_side_size=32", "--data_set=Kinetics_sparse",
        f"--batch_size={batch}", f"--epochs={epochs}", "--num_sample=1", "--num_workers=0",
        "--mixup=0", "--cutmix=0", "--smoothing=0", "--aa=none", "--reprob=0", "--lr=0.05",
        "--warmup_epochs=0", "--layer_decay=1.0", "--test_num_segment=2", "--test_num_crop=1",
        "--device=cpu", "--save_ckpt_freq=1", "--seed=3",
    ]  # fmt: skip


def _weights(out: Path, tag: str) -> dict[str, torch.Tensor]:
    return torch.load(out / f"checkpoint-{tag}.pth", map_location="cpu", weights_only=False)["model"]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.fixture(scope="module")
def runs(motion_dataset, tmp_path_factory):
    """Two ranks x batch 2; one rank x batch 4; one rank x batch 4 resuming the two-rank epoch 0."""
    root = motion_dataset["root"]
    base = tmp_path_factory.mktemp("ddp")
    two, one, resumed = base / "two_ranks", base / "one_rank", base / "resumed"
    launch = [sys.executable, "-m", "ivtools.launch", "--gpus", "2", str(DRIVER), "--"]
    run_script([*launch, *_finetune_args(root, two, batch=2, epochs=2)], timeout=300)
    run_script([sys.executable, str(DRIVER), *_finetune_args(root, one, batch=4, epochs=2)], timeout=300)
    resume = f"--resume={two / 'checkpoint-0.pth'}"
    run_script(
        [sys.executable, str(DRIVER), *_finetune_args(root, resumed, batch=4, epochs=2), resume], timeout=300
    )
    return {"two": two, "one": one, "resumed": resumed}


def test_two_ranks_train_the_same_model_as_one_rank_with_the_same_global_batch(runs):
    for epoch in ("0", "1"):
        _assert_same_weights(_weights(runs["two"], epoch), _weights(runs["one"], epoch))


def test_a_two_rank_checkpoint_resumes_in_one_rank(runs):
    assert not (runs["resumed"] / "checkpoint-0.pth").exists()  # epoch 0 was not trained again
    _assert_same_weights(_weights(runs["resumed"], "1"), _weights(runs["one"], "1"))


def test_multi_view_test_gathers_every_video_across_ranks(runs):
    two = json.loads((runs["two"] / "test_results.json").read_text())
    one = json.loads((runs["one"] / "test_results.json").read_text())
    assert two == pytest.approx(one, rel=1e-4)


# ZeRO-3 partitions even the tiny model's tensors (DeepSpeed keeps those under 100k elements
# whole by default), so that a resume at another world size must re-partition every parameter.
ZERO_FLAGS = {2: ["--zero_stage=2"], 3: ["--zero_stage=3", "--stage3_param_persistence_threshold=0"]}


@pytest.fixture(scope="module", params=sorted(ZERO_FLAGS), ids=lambda stage: f"zero{stage}")
def zero_runs(request, motion_dataset, tmp_path_factory):
    """DeepSpeed ZeRO-2 and ZeRO-3: two ranks and one rank with the same global batch, and each
    resuming the other."""
    root = motion_dataset["root"]
    base = tmp_path_factory.mktemp(f"zero{request.param}")
    zero = ["--enable_deepspeed", *ZERO_FLAGS[request.param]]
    launch = [sys.executable, "-m", "ivtools.launch", "--gpus", "2", str(DRIVER), "--"]
    single = [sys.executable, str(DRIVER)]
    run_script([*launch, *_finetune_args(root, base / "two", batch=2, epochs=2), *zero], timeout=300)
    run_script([*single, *_finetune_args(root, base / "one", batch=4, epochs=2), *zero], timeout=300)
    from_two = f"--resume={base / 'two' / 'checkpoint-0'}"
    run_script([*single, *_finetune_args(root, base / "one_from_two", batch=4, epochs=2), *zero, from_two])
    from_one = f"--resume={base / 'one' / 'checkpoint-0'}"
    run_script([*launch, *_finetune_args(root, base / "two_from_one", batch=2, epochs=2), *zero, from_one])
    return base


def _zero_weights(run: Path, tag: str) -> dict[str, torch.Tensor]:
    return consolidate_zero_checkpoint(run / f"checkpoint-{tag}")


def test_zero_two_ranks_match_one_rank(zero_runs):
    for tag in ("0", "1"):
        _assert_same_weights(_zero_weights(zero_runs / "two", tag), _zero_weights(zero_runs / "one", tag))


@pytest.mark.parametrize(("resumed", "reference"), [("one_from_two", "one"), ("two_from_one", "two")])
def test_zero_checkpoints_resume_at_another_world_size(zero_runs, resumed, reference):
    assert not (zero_runs / resumed / "checkpoint-0").exists()  # epoch 0 came from the other run
    _assert_same_weights(_zero_weights(zero_runs / resumed, "1"), _zero_weights(zero_runs / reference, "1"))
