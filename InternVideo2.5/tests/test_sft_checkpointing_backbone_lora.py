"""--grad_checkpoint (same loss and gradients, layers recomputed) and --use_backbone_lora (trains, merges on export)."""

import argparse
import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from internvideo2_5.engine.finetune import (
    add_finetune_args,
    configure_trainable,
    enable_grad_checkpointing,
    run_finetuning,
)
from internvideo2_5.models.loading import load_pretrained

RANK = 4
VISION_LORA_MODULES = ("q_proj", "k_proj", "v_proj", "projection_layer", "fc1", "fc2")


def parse(*argv):
    base = ["--model", "m", "--data", "d", "--output_dir", "o"]
    return add_finetune_args(argparse.ArgumentParser()).parse_args(base + list(argv))


def test_grad_checkpoint_accepts_internvl_boolean_forms(capsys):
    assert parse().grad_checkpoint is False
    assert parse("--grad_checkpoint").grad_checkpoint is True
    assert parse("--grad_checkpoint", "True").grad_checkpoint is True
    assert parse("--grad_checkpoint", "false").grad_checkpoint is False
    with pytest.raises(SystemExit):
        parse("--grad_checkpoint", "maybe")
    assert "--grad_checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["freeze_backbone", "freeze_mlp", "freeze_llm"])
def test_freeze_flags_take_internvl_value_forms(flag):
    assert getattr(parse(), flag) is False
    assert getattr(parse(f"--{flag}"), flag) is True
    assert getattr(parse(f"--{flag}", "True"), flag) is True
    assert getattr(parse(f"--{flag}", "False"), flag) is False


def one_video_batch(model) -> dict:
    """4 random tiles (one HiCo group) in a prompt of 4 + 64 image tokens + 4 answer tokens."""
    image = model.config.image_token_id
    ids = [1, 10, 11] + [image] * (4 * model.tokens_per_frame) + [12, 13, 14, 15, 16]
    labels = [-100] * (len(ids) - 4) + ids[-4:]
    size = model.config.vision_config.image_size[0]
    return {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "labels": torch.tensor([labels]),
        "pixel_values": torch.randn(4, 3, size, size),
    }


def loss_grads_and_recomputes(model, batch) -> tuple[torch.Tensor, dict, list[int]]:
    """Loss, gradients of the trainable parameters, and how often two attention blocks ran during backward.

    The attention blocks inside the layers are watched: the checkpoint re-runs the layer's body, not
    the layer's own hooks.
    """
    layers = [
        model.model.vision_tower.encoder.layer[0].attention,
        model.model.language_model.layers[0].self_attn,
    ]
    calls = [0, 0]
    hooks = [
        layer.register_forward_pre_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, layer in enumerate(layers)
    ]
    model.train()
    torch.manual_seed(1)  # the same LoRA dropout masks in both models
    loss = model(**batch).loss
    forward_calls, calls[:] = list(calls), [0, 0]
    loss.backward()
    for hook in hooks:
        hook.remove()
    assert forward_calls == [1, 1]
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads, calls


@pytest.mark.parametrize(
    "flags",
    [
        {
            "freeze_mlp": False,
            "lora_rank": RANK,
            "backbone_lora_rank": RANK,
        },  # frozen embeddings, adapters inside
        {"freeze_backbone": True, "freeze_mlp": True},  # full LLM, frozen vision encoder
    ],
)
def test_grad_checkpoint_gives_the_same_loss_and_gradients(tiny_checkpoint, flags):
    plain = load_pretrained(tiny_checkpoint)[0]
    configure_trainable(plain, **flags)
    with torch.no_grad():  # non-zero B, so that every adapter's A gets a gradient too
        for name, param in plain.named_parameters():
            if ".lora_B." in name:
                param.normal_(std=0.1)
    checkpointed = copy.deepcopy(plain)
    enable_grad_checkpointing(checkpointed)
    batch = one_video_batch(plain)
    loss, grads, plain_recomputes = loss_grads_and_recomputes(plain, batch)
    ckpt_loss, ckpt_grads, recomputes = loss_grads_and_recomputes(checkpointed, batch)
    assert plain_recomputes == [0, 0] and recomputes == [1, 1]  # vision layer, LLM layer re-run in backward
    torch.testing.assert_close(ckpt_loss, loss)
    assert grads.keys() == ckpt_grads.keys() and len(grads) > 0
    for name, grad in grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(ckpt_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_backbone_lora_leaves_only_adapters_trainable_there(tiny_checkpoint):
    model = load_pretrained(tiny_checkpoint)[0]
    names = configure_trainable(model, freeze_mlp=True, freeze_llm=True, backbone_lora_rank=RANK)
    expected = {
        f"model.vision_tower.encoder.layer.{i}.{'mlp' if m.startswith('fc') else 'attention'}.{m}.lora_{ab}.default.weight"
        for i in range(2)
        for m in VISION_LORA_MODULES
        for ab in "AB"
    }
    assert set(names) == expected
    a = model.get_parameter("model.vision_tower.encoder.layer.0.mlp.fc1.lora_A.default.weight")
    assert a.shape == (RANK, 32)
    model = load_pretrained(tiny_checkpoint)[0]
    names = configure_trainable(model, freeze_llm=True, backbone_lora_rank=RANK)
    assert set(names) - expected and all(
        n.startswith("model.multi_modal_projector.") for n in set(names) - expected
    )
    with pytest.raises(ValueError, match="--use_backbone_lora -1"):
        configure_trainable(load_pretrained(tiny_checkpoint)[0], backbone_lora_rank=-1)


@pytest.fixture(scope="module")
def backbone_lora_run(tiny_checkpoint, real_videos, tmp_path_factory):
    root = tmp_path_factory.mktemp("sft_vit_lora")
    row = {"video": str(real_videos[0]), "QA": [{"q": "What is shown?", "a": "Traffic on a street."}]}
    (root / "data.jsonl").write_text(json.dumps(row))
    argv = [
        "--model",
        str(tiny_checkpoint),
        "--data",
        str(root / "data.jsonl"),
        "--output_dir",
        str(root / "out"),
    ]
    argv += ["--num_frames", "4", "--batch_size", "1", "--epochs", "2", "--num_workers", "0"]
    argv += ["--warmup_epochs", "0", "--lr", "25.6", "--freeze_mlp", "--freeze_llm"]
    argv += ["--use_backbone_lora", str(RANK), "--grad_checkpoint", "True"]
    released = run_finetuning(add_finetune_args(argparse.ArgumentParser()).parse_args(argv))
    trained = torch.load(root / "out" / "checkpoint-1.pth", map_location="cpu", weights_only=False)["model"]
    return trained, released


def test_backbone_lora_trains_only_the_adapters(backbone_lora_run, tiny_checkpoint):
    trained, _ = backbone_lora_run
    lora = {k: v for k, v in trained.items() if ".lora_" in k}
    assert len(lora) == 2 * len(VISION_LORA_MODULES) * 2 and all("vision_tower" in k for k in lora)
    assert all(v.abs().sum() > 0 for k, v in lora.items() if ".lora_B." in k)  # B starts at zero
    original = load_pretrained(tiny_checkpoint)[0].state_dict()
    base = {k.replace(".base_layer.", "."): v for k, v in trained.items() if ".lora_" not in k}
    assert base.keys() == original.keys()
    assert all(torch.equal(v, original[k]) for k, v in base.items())


def read_released(folder) -> dict[str, torch.Tensor]:
    state = {}
    for shard in sorted(folder.glob("*.safetensors")):
        state.update(load_file(shard))
    return state


def test_export_merges_backbone_lora_into_the_released_layout(backbone_lora_run, tiny_checkpoint):
    trained, released = backbone_lora_run
    exported, original = read_released(released), read_released(tiny_checkpoint)
    assert exported.keys() == original.keys()

    def merged(module: str) -> torch.Tensor:  # W + B A (alpha / r), alpha = 2 r
        prefix = f"model.vision_tower.encoder.layer.1.{module}"
        a, b = trained[f"{prefix}.lora_A.default.weight"], trained[f"{prefix}.lora_B.default.weight"]
        return trained[f"{prefix}.base_layer.weight"] + 2.0 * (b @ a)

    layer = "vision_model.encoder.layers.1"
    qkv = torch.cat([merged(f"attention.{n}_proj") for n in "qkv"])  # InternViT's rows [q; k; v]
    torch.testing.assert_close(exported[f"{layer}.attn.qkv.weight"], qkv)
    torch.testing.assert_close(exported[f"{layer}.attn.proj.weight"], merged("attention.projection_layer"))
    torch.testing.assert_close(exported[f"{layer}.mlp.fc1.weight"], merged("mlp.fc1"))
    torch.testing.assert_close(exported[f"{layer}.mlp.fc2.weight"], merged("mlp.fc2"))
    assert not torch.equal(exported[f"{layer}.mlp.fc1.weight"], original[f"{layer}.mlp.fc1.weight"])
    adapted = ("attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight")
    for key, value in original.items():  # everything else, biases included, is untouched
        if not (key.startswith("vision_model.encoder.layers.") and key.endswith(adapted)):
            assert torch.equal(exported[key], value), key
