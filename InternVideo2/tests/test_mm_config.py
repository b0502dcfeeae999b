"""Python config files: shared imports, ${...} references, overrides, key errors."""

from pathlib import Path

import pytest

from internvideo2.mm.config import ConfigError, load_config, require

MM_ROOT = Path(__file__).resolve().parents[1] / "multi_modality"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_references_and_overrides(tmp_path):
    cfg_file = write(
        tmp_path / "cfg.py",
        "num_frames = 4\n"
        "text_enc = 'small'\n"
        "TextEncoders = dict(small=dict(d_model=256), big=dict(d_model=1024))\n"
        "inputs = dict(video_input=dict(num_frames='${num_frames}'), res=224)\n"
        "model = dict(text_encoder='${TextEncoders[${text_enc}]}', lr=1e-4)\n",
    )
    cfg = load_config(cfg_file)
    assert cfg.inputs.video_input.num_frames == 4
    assert cfg.model.text_encoder.d_model == 256
    cfg = load_config(cfg_file, ["num_frames=8", "text_enc=big", "model.lr", "3e-5", "inputs.res=112"])
    assert cfg.inputs.video_input.num_frames == 8  # references follow the override
    assert cfg.model.text_encoder.d_model == 1024
    assert cfg.model.lr == pytest.approx(3e-5) and cfg.inputs.res == 112


def test_override_typo_names_key_and_file(tmp_path):
    cfg_file = write(tmp_path / "cfg.py", "model = dict(embed_dim=512)\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, ["model.embed_dmi=256"])
    assert "model.embed_dmi" in str(err.value) and str(cfg_file) in str(err.value)
    with pytest.raises(ConfigError, match="no value"):
        load_config(cfg_file, ["model.embed_dim"])


def test_missing_key_names_key_and_file(tmp_path):
    cfg_file = write(tmp_path / "cfg.py", "model = dict(embed_dim=512)\n")
    cfg = load_config(cfg_file)
    with pytest.raises(ConfigError) as err:
        require(cfg, "model.temp")
    assert "model.temp" in str(err.value) and str(cfg_file) in str(err.value)


def test_shipped_recipes_load_with_shared_parts(monkeypatch):
    monkeypatch.setenv("INTERNVIDEO2_DATA_PATH", "/data/iv2")
    monkeypatch.setenv("INTERNVIDEO2_MODEL_PATH", "/models/iv2")
    cfg = load_config(MM_ROOT / "scripts/evaluation/stage2/zero_shot/1B/config_didemo.py", root=MM_ROOT)
    corpus = cfg.test_file.didemo_ret_test
    assert corpus.anno_path == "/data/iv2/anno/didemo_ret_test.json" and corpus.is_paragraph_retrieval
    assert cfg.model.text_encoder.fusion_layer == 19 and cfg.model.text_encoder.d_model == 1024
    assert cfg.model.text_encoder.pretrained == "/models/iv2/bert-large-uncased"
    assert cfg.model.vision_encoder.num_frames == 4
    pre = load_config(MM_ROOT / "scripts/pretraining/stage2/1B/config.py", ["num_frames=8"], root=MM_ROOT)
    assert pre.inputs.video_input.num_frames == 8 and pre.criterion.mlm_masking_prob == 0.5
    assert [c.media_type for c in pre.train_file] == ["image", "video"]
    assert pre.train_file[1].anno_path == "/data/iv2/anno/webvid_train.json"
