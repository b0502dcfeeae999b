"""Instruction fine-tuning end to end: a 2-update LoRA run on real videos, then the chat loads the result."""

import argparse
import json

import pytest
import torch

from internvideo2_5.chat import VideoChat
from internvideo2_5.engine.finetune import add_finetune_args, configure_trainable, run_finetuning
from internvideo2_5.models.loading import load_pretrained

RANK = 4


def finetune_args(model, data, out, *extra):
    argv = ["--model", str(model), "--data", str(data), "--output_dir", str(out), "--num_frames", "4"]
    argv += ["--batch_size", "2", "--epochs", "2", "--num_workers", "0", "--warmup_epochs", "0", *extra]
    return add_finetune_args(argparse.ArgumentParser()).parse_args(argv)


@pytest.fixture(scope="module")
def lora_run(tiny_checkpoint, real_videos, tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    rows = [
        {"video": str(real_videos[0]), "QA": [{"q": "What is shown?", "a": "Traffic on a street."}]},
        {
            "video": str(real_videos[-1]),
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe it."},
                {"from": "gpt", "value": "A man talks."},
            ],
        },
    ]
    (root / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    lora = ["--freeze_backbone", "--freeze_mlp", "--use_llm_lora", str(RANK), "--lr", "2.56"]
    released = run_finetuning(finetune_args(tiny_checkpoint, root / "data.jsonl", root / "out", *lora))
    return root / "out", released


def test_two_lora_updates_lower_the_loss_on_the_samples(lora_run):
    out, _ = lora_run
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [s["train_loss"] for s in steps if s["kind"] == "epoch"]  # one update per epoch
    assert len(losses) == 2 and losses[1] < losses[0] - 0.05


def test_only_lora_adapters_change(lora_run, tiny_checkpoint):
    out, _ = lora_run
    trained = torch.load(out / "checkpoint-1.pth", map_location="cpu", weights_only=False)["model"]
    original = load_pretrained(tiny_checkpoint)[0].state_dict()
    lora = {k: v for k, v in trained.items() if ".lora_" in k}
    assert len(lora) == 2 * 7 * 2  # A and B on q/k/v/o/gate/up/down of 2 layers
    assert all(v.abs().sum() > 0 for k, v in lora.items() if ".lora_B." in k)  # B starts at zero
    base = {k.replace(".base_layer.", "."): v for k, v in trained.items() if ".lora_" not in k}
    assert base.keys() == original.keys()
    for key, value in base.items():
        assert torch.equal(value, original[key]), key


def test_released_checkpoint_reloads_strictly_with_lora_merged(lora_run, tiny_checkpoint, real_videos):
    out, released = lora_run
    trained = torch.load(out / "checkpoint-1.pth", map_location="cpu", weights_only=False)["model"]
    chat = VideoChat.from_pretrained(released, num_frames=4)
    weights = chat.model.state_dict()
    name = "model.language_model.layers.1.self_attn.v_proj"
    a, b = trained[f"{name}.lora_A.default.weight"], trained[f"{name}.lora_B.default.weight"]
    merged = trained[f"{name}.base_layer.weight"] + (b @ a) * (2 * RANK / RANK)  # alpha = 2 x rank
    torch.testing.assert_close(weights[f"{name}.weight"], merged)
    original = load_pretrained(tiny_checkpoint)[0].state_dict()
    vision = [k for k in original if k.startswith("model.vision_tower.")]
    assert vision and all(torch.equal(weights[k], original[k]) for k in vision)
    answer, _ = chat.chat(real_videos[0], "What is shown?", generation_config={"max_new_tokens": 3})
    assert isinstance(answer, str)


def test_freeze_flags_select_the_trainable_parts(tiny_checkpoint):
    model = load_pretrained(tiny_checkpoint)[0]
    names = configure_trainable(model, freeze_backbone=True, freeze_mlp=False, freeze_llm=True)
    assert names and all(n.startswith("model.multi_modal_projector.") for n in names)
    with pytest.raises(ValueError, match="every parameter is frozen"):
        configure_trainable(model, freeze_backbone=True, freeze_mlp=True, freeze_llm=True)
