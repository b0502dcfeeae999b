"""DeepSpeed ZeRO-3 fine-tuning on the CPU: it trains, exports the trained weights whole, resumes,
and two ranks train what one does.

``--stage3_param_persistence_threshold 0`` partitions every parameter of the tiny model (the
default keeps tensors under 10M elements whole, which is all of it). Runs are separate processes
(DeepSpeed keeps process-wide state). Every answer has the same number of tokens, so that the
token-mean loss of a batch of two equals the mean over two ranks of one sample each; the
comparison of rank counts trains without LoRA, whose dropout draws differ with the rank count.
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from internvideo2_5.models.loading import load_pretrained
from ivtools.checkpoint import consolidate_zero_checkpoint
from ivtools.testing import run_script

SCRIPT = Path(__file__).resolve().parents[1] / "run_finetuning.py"
LORA_SCALE = 2.0  # alpha = 2 x rank
LORA = ["--freeze_backbone", "--use_llm_lora", "4", "--lr", "2.56"]  # projector trains fully
FULL_LLM = ["--freeze_backbone", "--lr", "0.64"]  # LLM and projector, no dropout anywhere
ZERO3 = ["--enable_deepspeed", "--zero_stage", "3", "--stage3_param_persistence_threshold", "0"]
ZERO2 = ["--enable_deepspeed", "--zero_stage", "2"]


def finetune_argv(model: Path, data: Path, out: Path, batch: int, *extra: str) -> list[str]:
    argv = ["--model", str(model), "--data", str(data), "--output_dir", str(out), "--num_frames", "4"]
    argv += ["--batch_size", str(batch), "--epochs", "2", "--num_workers", "0", "--warmup_epochs", "0"]
    return [*argv, "--device", "cpu", "--seed", "1", *extra]


@pytest.fixture(scope="module")
def finetune(tiny_checkpoint, coded_video, tmp_path_factory):
    """``finetune(ranks, name, batch, *flags) -> stdout``: a 2-epoch run into ``<root>/<name>``."""
    root = tmp_path_factory.mktemp("zero3")
    rows = [
        {"video": str(coded_video), "QA": [{"q": f"Question {i}?", "a": f"Answer {i}."}]} for i in range(4)
    ]
    data = root / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    launchers = {1: [sys.executable, str(SCRIPT)]}
    launchers[2] = [sys.executable, "-m", "ivtools.launch", "--gpus", "2", str(SCRIPT), "--"]

    def run(ranks: int, name: str, batch: int, *flags: str) -> str:
        argv = finetune_argv(tiny_checkpoint, data, root / name, batch, *flags)
        return run_script([*launchers[ranks], *argv], timeout=300)

    run.root = root
    return run


@pytest.fixture(scope="module")
def runs(finetune):
    """LoRA runs on one rank (batch 2): ZeRO-3, ZeRO-2, and ZeRO-3 resuming the first one's epoch 0."""
    with ThreadPoolExecutor(2) as pool:  # independent runs, one core each
        zero3 = pool.submit(finetune, 1, "zero3", 2, *LORA, *ZERO3)
        pool.submit(finetune, 1, "zero2", 2, *LORA, *ZERO2).result()
        zero3.result()
    resume = ["--resume", str(finetune.root / "zero3" / "checkpoint-0")]
    resumed_log = finetune(1, "resumed", 2, *LORA, *ZERO3, *resume)
    return {"root": finetune.root, "resumed_log": resumed_log}


def released_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_pretrained(run / "released")[0].state_dict()


def merge_lora_by_hand(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A consolidated checkpoint's weights in plain keys, each adapter merged as W + 2 B A."""
    merged = {k.replace(".base_layer.", "."): v for k, v in state.items() if ".lora_" not in k}
    for key in [k for k in state if ".lora_A." in k]:
        module = key.split(".lora_A.")[0]
        b = state[key.replace(".lora_A.", ".lora_B.")]
        merged[f"{module}.weight"] = merged[f"{module}.weight"] + (b @ state[key]) * LORA_SCALE
    return merged


def assert_same_weights(actual: dict, expected: dict, atol: float) -> None:
    assert actual.keys() == expected.keys()
    for key in actual:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=atol, msg=key)


def test_zero3_partitions_every_parameter_and_trains(runs):
    out = runs["root"] / "zero3"
    module = torch.load(
        out / "checkpoint-1" / "zero_pp_rank_0_mp_rank_00_model_states.pt",
        map_location="cpu",
        weights_only=False,
    )["module"]
    assert module and all(t.numel() == 0 for t in module.values())  # the saved module holds only empty shells
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in log if r["kind"] == "epoch"]
    assert len(losses) == 2 and losses[1] < losses[0] - 0.05


def test_zero3_export_holds_exactly_the_trained_weights(runs, tiny_checkpoint):
    out = runs["root"] / "zero3"
    trained = consolidate_zero_checkpoint(out / "checkpoint-1")  # fp32 master weights, the last update
    assert all(v.abs().sum() > 0 for k, v in trained.items() if ".lora_B." in k)  # B starts at zero
    exported = released_weights(out)
    assert_same_weights(exported, merge_lora_by_hand(trained), atol=1e-6)
    original = load_pretrained(tiny_checkpoint)[0].state_dict()
    changed = {k for k in exported if not torch.equal(exported[k], original[k])}
    assert changed and all(
        k.startswith(("model.language_model.layers.", "model.multi_modal_projector.")) for k in changed
    )


def test_zero3_trains_the_same_weights_as_zero2(runs):
    assert_same_weights(
        released_weights(runs["root"] / "zero3"), released_weights(runs["root"] / "zero2"), 2e-5
    )


def test_zero3_resume_continues_from_the_epoch_checkpoint(runs):
    root = runs["root"]
    assert "resumed from" in runs["resumed_log"]
    assert not (root / "resumed" / "checkpoint-0").exists()  # epoch 0 came from the first run
    assert_same_weights(released_weights(root / "resumed"), released_weights(root / "zero3"), atol=1e-6)


def test_zero3_on_two_ranks_trains_the_same_weights_as_one_rank(finetune, tiny_checkpoint):
    with ThreadPoolExecutor(2) as pool:
        two = pool.submit(finetune, 2, "full_two_ranks", 1, *FULL_LLM, *ZERO3)
        finetune(1, "full_one_rank", 2, *FULL_LLM, *ZERO3)
        two.result()
    root = finetune.root
    shards = sorted(p.name for p in (root / "full_two_ranks" / "checkpoint-1").glob("*optim_states.pt"))
    assert shards == [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)]
    two_ranks, one_rank = released_weights(root / "full_two_ranks"), released_weights(root / "full_one_rank")
    assert_same_weights(two_ranks, one_rank, 2e-5)
    original = load_pretrained(tiny_checkpoint)[0].state_dict()
    moved = [k for k in one_rank if (one_rank[k] - original[k]).abs().max() > 1e-3]
    assert any(k.startswith("model.language_model.layers.") for k in moved)  # not merely both untrained
