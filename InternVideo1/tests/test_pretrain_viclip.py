"""ViCLIP: released key layouts, maths against a reference, tokenizer, losses, training then retrieval."""

import argparse
import gzip
import json
import math
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F

from internvideo1.losses import contrastive_loss
from internvideo1.models import viclip as vc
from internvideo1.pretrain.viclip import add_viclip_args, run_viclip
from internvideo1.tokenizer import ClipBPETokenizer
from ivtools.checkpoint import save_state_dict_file
from ivtools.video.synthetic import MOTION_CLASSES

SPEC = json.loads((Path(__file__).parent / "data" / "internvideo1_viclip_keys.json").read_text())
TINY_VISION = {
    "input_resolution": 32,
    "patch_size": 16,
    "width": 32,
    "layers": 2,
    "heads": 4,
    "output_dim": 16,
    "num_frames": 4,
}
TINY_TEXT = {"width": 32, "heads": 4, "layers": 2, "embed_dim": 16, "vocab_size": 600, "context_length": 8}


def tiny_viclip(**kw) -> vc.ViCLIP:
    return vc.build_viclip("b16", vision=TINY_VISION, text=TINY_TEXT, **kw)


@pytest.fixture
def bpe_file(tmp_path):
    # Merges that build whole words of the motion captions, plus the header line the format has.
    words = ["left", "right", "up", "down", "moving", "a", "square"]
    lines = ["#version: 0.2"]
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            lines.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
    path = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(dict.fromkeys(lines)) + "\n")
    return path


@pytest.mark.parametrize("name,factory", [("ViCLIP-B/16", "viclip_b16"), ("ViCLIP-L/14", "viclip_l14")])
def test_released_key_layout(name, factory):
    import timm

    with torch.device("meta"):
        model = timm.create_model(factory)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == SPEC[name]["keys"]


def test_vision_tower_matches_reference(clip_blocks_reference):
    model = vc.ViCLIPVisionTransformer(**TINY_VISION).eval()
    torch.nn.init.normal_(model.temporal_positional_embedding)
    video = torch.randn(2, 3, 4, 32, 32)
    patches = F.conv3d(video, model.conv1.weight, stride=(1, 16, 16))  # B, C, T, 2, 2
    tokens = []
    for b in range(2):
        seq = [model.class_embedding + model.positional_embedding[0]]
        for n in range(4):  # spatial position outer, frame inner (the original's order)
            for t in range(4):
                p = patches[b, :, t].flatten(1)[:, n]
                seq.append(p + model.positional_embedding[1 + n] + model.temporal_positional_embedding[0, t])
        tokens.append(torch.stack(seq))
    x = torch.stack(tokens)
    x = F.layer_norm(x, (32,), model.ln_pre.weight, model.ln_pre.bias)
    x = clip_blocks_reference(x, model.transformer.resblocks)
    x = F.layer_norm(x, (32,), model.ln_post.weight, model.ln_post.bias)
    torch.testing.assert_close(model(video), x[:, 0] @ model.proj, rtol=1e-4, atol=1e-4)
    # Through timm (which drops None-valued kwargs), output_dim=0 drops the projection.
    full = timm.create_model("clip_joint_b16", **{**TINY_VISION, "output_dim": 0}).eval()
    full.load_state_dict({k: v for k, v in model.state_dict().items() if k != "proj"})
    assert full.proj is None
    torch.testing.assert_close(full(video), x, rtol=1e-4, atol=1e-4)


def test_text_tower_matches_reference(clip_blocks_reference):
    model = tiny_viclip().text_encoder.eval()
    ids = torch.tensor([[598, 5, 7, 599, 0, 0], [598, 9, 599, 0, 0, 0]])
    x = model.token_embedding(ids) + model.positional_embedding[:6]
    x = clip_blocks_reference(x, model.transformer.resblocks, causal=True)
    x = F.layer_norm(x, (32,), model.ln_final.weight, model.ln_final.bias)
    ref = torch.stack([x[0, 3], x[1, 2]]) @ model.text_projection
    torch.testing.assert_close(model.encode_text(ids), ref, rtol=1e-4, atol=1e-4)


def test_token_masking_keeps_fixed_count_in_order():
    x = torch.arange(2 * 10, dtype=torch.float32).view(2, 10, 1).expand(-1, -1, 3)
    kept = vc.keep_random_tokens(x, 0.9)
    assert kept.shape == (2, 1, 3)
    kept = vc.keep_random_tokens(x, 0.5)
    assert kept.shape == (2, 5, 3)
    assert (kept[..., 0].diff(dim=1) > 0).all()  # original order kept
    assert set(kept[1, :, 0].tolist()) <= set(range(10, 20))


def test_contrastive_loss_against_hand_computation():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    scale = 10.0
    vn, tn = F.normalize(v, dim=-1), F.normalize(t, dim=-1)
    logits = scale * vn @ tn.t()
    expected = sum(
        -torch.log_softmax(logits[i], 0)[i] - torch.log_softmax(logits[:, i], 0)[i] for i in range(3)
    ) / 6  # fmt: skip
    torch.testing.assert_close(contrastive_loss(v, t, scale, all_gather=False), expected)
    # Pairs 0 and 2 come from the same video: each row spreads its target over both.
    idx = torch.tensor([7, 3, 7])
    target = torch.tensor([[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]])
    expected = (
        -(torch.log_softmax(logits, 1) * target).sum(1).mean()
        - (torch.log_softmax(logits.t(), 1) * target).sum(1).mean()
    ) / 2
    torch.testing.assert_close(contrastive_loss(v, t, scale, idx=idx, all_gather=False), expected)


def test_load_released_checkpoint_resizes_tables(tmp_path):
    src = tiny_viclip()
    torch.nn.init.normal_(src.vision_encoder.temporal_positional_embedding)
    path = tmp_path / "ViCLIP-B_InternVid-FLT-10M.pth"
    save_state_dict_file({"model": src.state_dict()}, path)
    same = tiny_viclip()
    vc.load_viclip_checkpoint(same, path)
    torch.testing.assert_close(same.state_dict(), src.state_dict())
    # Fewer frames and a shorter text context.
    other = vc.build_viclip(
        "b16", vision={**TINY_VISION, "num_frames": 2}, text={**TINY_TEXT, "context_length": 5}
    )
    vc.load_viclip_checkpoint(other, path)
    old = src.vision_encoder.temporal_positional_embedding[0]
    # Linear resampling 4 → 2 (align_corners=False) averages frames (0,1) and (2,3).
    torch.testing.assert_close(
        other.vision_encoder.temporal_positional_embedding[0], torch.stack([old[:2].mean(0), old[2:].mean(0)])
    )
    torch.testing.assert_close(
        other.text_encoder.positional_embedding, src.text_encoder.positional_embedding[:5]
    )
    save_state_dict_file({"model": {"temp": torch.tensor(0.01)}}, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match="not a ViCLIP checkpoint"):
        vc.load_viclip_checkpoint(same, tmp_path / "bad.pth")


def test_training_forward_backward_and_text_frozen():
    model = tiny_viclip(all_gather=False)
    model.train()
    loss = model(torch.randn(3, 3, 4, 32, 32), torch.randint(1, 599, (3, 8)))["loss_vtc"]
    loss.backward()
    assert model.text_encoder.token_embedding.weight.grad is None
    assert torch.isfinite(model.vision_encoder.conv1.weight.grad).all()
    assert model.temp.grad is not None


def test_train_two_iterations_then_retrieve(tmp_path, motion_dataset, bpe_file, monkeypatch):
    root = Path(motion_dataset["root"])
    entries = []
    for split in ("train", "val"):
        rows = [line.split() for line in Path(motion_dataset[split]).read_text().splitlines()]
        entries.append(
            [{"video": p, "caption": f"a square moving {MOTION_CLASSES[int(lab)]}"} for p, lab in rows]
        )
    (tmp_path / "train.json").write_text(json.dumps(entries[0]))
    (tmp_path / "test.json").write_text(json.dumps(entries[1][:4]))
    monkeypatch.setitem(vc._CONFIGS, "b16", ((32, 16, 32, 2, 4, 16), (32, 4, 2)))
    args = add_viclip_args(argparse.ArgumentParser()).parse_args(
        [
            "--model", "viclip_b16", "--bpe_path", str(bpe_file), "--num_frames", "4", "--input_size", "32",
            "--max_txt_l", "8", "--train_file", str(tmp_path / "train.json"), "--test_file", str(tmp_path / "test.json"),
            "--prefix", str(root), "--batch_size", "4", "--epochs", "1", "--max_updates_per_epoch", "2",
            "--num_workers", "0", "--device", "cpu", "--output_dir", str(tmp_path / "out"), "--masking_prob", "0.5",
        ]
    )  # fmt: skip
    results = run_viclip(args)
    assert math.isfinite(results["history"][0]["train_loss"])
    assert 0.0 <= results["t2v_r1"] <= 100.0 and results["v2t_r10"] == 100.0  # only 4 candidates
    assert (tmp_path / "out" / "checkpoint-0.pth").is_file()


def test_tokenizer_ids_by_hand(tmp_path):
    path = tmp_path / "bpe.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write("#version: 0.2\nh e\nl l\nhe ll\nhell o</w>\n")
    tok = ClipBPETokenizer(path)
    # 256 byte symbols, 256 with </w>, 4 merges ("hello</w>" is the 4th: id 515), then SOT, EOT.
    assert (tok.vocab_size, tok.sot_token, tok.eot_token) == (518, 516, 517)
    ids, pad = tok(["Hello", "hello hello hello hello"], context_length=4)
    assert ids.tolist() == [[516, 515, 517, 0], [516, 515, 515, 517]]  # truncated, EOT kept last
    assert pad.tolist() == [[False, False, False, True], [False] * 4]
    with pytest.raises(ValueError, match="more than context"):
        tok("hello hello hello", context_length=4, truncate=False)
