"""DeepSpeed ZeRO-3 fine-tuning on the CPU: it trains, exports the trained weights whole, resumes,
two ranks train what one does, and a checkpoint of either resumes on the other rank count.

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
    """1e-4: the stages sum gradients in different orders, and Adam divides each element by its own
    scale, so the float32 differences reach the weights undamped where a gradient is near zero
    (measured up to 4.2e-5, while the weights move by 5e-2). A lost or doubled gradient would move
    them by a whole update."""
    assert_same_weights(
        released_weights(runs["root"] / "zero3"), released_weights(runs["root"] / "zero2"), 1e-4
    )


def test_zero3_resume_continues_from_the_epoch_checkpoint(runs):
    root = runs["root"]
    assert "resumed from" in runs["resumed_log"]
    assert not (root / "resumed" / "checkpoint-0").exists()  # epoch 0 came from the first run
    assert_same_weights(released_weights(root / "resumed"), released_weights(root / "zero3"), atol=1e-6)


@pytest.fixture(scope="module")
def world_size_runs(finetune):
    """Full-LLM ZeRO-3 runs with a global batch of 2: two ranks (batch 1 each), one rank (batch 2),
    and each resuming the other's epoch-0 checkpoint (saved at another world size)."""
    with ThreadPoolExecutor(2) as pool:
        two = pool.submit(finetune, 2, "full_two_ranks", 1, *FULL_LLM, *ZERO3)
        finetune(1, "full_one_rank", 2, *FULL_LLM, *ZERO3)
        two.result()
    root = finetune.root
    from_two = ["--resume", str(root / "full_two_ranks" / "checkpoint-0")]
    from_one = ["--resume", str(root / "full_one_rank" / "checkpoint-0")]
    with ThreadPoolExecutor(2) as pool:
        two_from_one = pool.submit(finetune, 2, "two_from_one", 1, *FULL_LLM, *ZERO3, *from_one)
        logs = {"one_from_two": finetune(1, "one_from_two", 2, *FULL_LLM, *ZERO3, *from_two)}
        logs["two_from_one"] = two_from_one.result()
    return logs


def test_zero3_on_two_ranks_trains_the_same_weights_as_one_rank(world_size_runs, finetune, tiny_checkpoint):
    root = finetune.root
    shards = sorted(p.name for p in (root / "full_two_ranks" / "checkpoint-1").glob("*optim_states.pt"))
    assert shards == [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)]
    two_ranks, one_rank = released_weights(root / "full_two_ranks"), released_weights(root / "full_one_rank")
    assert_same_weights(two_ranks, one_rank, 2e-5)
    original = load_pretrained(tiny_checkpoint)[0].state_dict()
    moved = [k for k in one_rank if (one_rank[k] - original[k]).abs().max() > 1e-3]
    assert any(k.startswith("model.language_model.layers.") for k in moved)  # not merely both untrained


def trained_epochs(run: Path) -> list[int]:
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["epoch"] for r in log if r["kind"] == "epoch"]


@pytest.mark.parametrize(
    ("resumed", "source", "reference"),
    [
        ("one_from_two", "full_two_ranks", "full_one_rank"),
        ("two_from_one", "full_one_rank", "full_two_ranks"),
    ],
)
def test_zero3_resumes_at_another_world_size(world_size_runs, finetune, resumed, source, reference):
    """A ZeRO-3 checkpoint of N ranks resumes on M (DeepSpeed's universal checkpoint, made next to
    it) and ends where an uninterrupted M-rank run with the same global batch ends.

    2e-5 as between one and two ranks above: the epoch before the checkpoint ran at the other
    world size, whose gradient averaging rounds differently in float32. Restarted Adam moments or
    lost weight decay move the weights by far more (lr 0.005 per update here).
    """
    root = finetune.root
    assert f"resumed from {root / source / 'checkpoint-0'}" in world_size_runs[resumed]
    assert (root / source / "universal" / "checkpoint-0" / "zero").is_dir()  # the re-partitioning path
    assert trained_epochs(root / resumed) == [1]  # epoch 0 came from the checkpoint
    assert not (root / resumed / "checkpoint-0").exists()
    final = released_weights(root / resumed)
    assert_same_weights(final, released_weights(root / reference), 2e-5)
    start = consolidate_zero_checkpoint(root / source / "checkpoint-0")  # no LoRA: plain keys
    moved = [k for k in final if (final[k] - start[k]).abs().max() > 1e-3]
    assert any(k.startswith("model.language_model.layers.") for k in moved)  # epoch 1 did train
