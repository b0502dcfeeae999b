"""ivtools-ckpt commands and the conversion registry (in-process, and one real entry point)."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ivtools.checkpoint import (
    get_conversion,
    list_conversions,
    load_state_dict_file,
    register_conversion,
    save_state_dict_file,
    unregister_conversion,
)
from ivtools.checkpoint.cli import main


@pytest.fixture
def wrapped_ckpt(tmp_path):
    sd = {
        "module.blocks.0.attn.qkv.weight": torch.randn(12, 4),
        "module.blocks.1.attn.qkv.weight": torch.randn(12, 4).bfloat16(),
        "module.head.weight": torch.randn(3, 4),
        "module.pos_embed": torch.randn(1, 1 + 2 * 2 * 2, 4),
    }
    path = tmp_path / "in.pth"
    torch.save({"module": sd, "epoch": 5}, path)
    return path, sd


def test_inspect_prints_table_and_counts(wrapped_ckpt, capsys):
    path, _ = wrapped_ckpt
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "entries ['module', 'epoch']" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("module.")}
    assert rows["module.blocks.1.attn.qkv.weight"] == ["12x4", "bfloat16", "48"]
    assert rows["module.pos_embed"] == ["1x9x4", "float32", "36"]
    assert out.splitlines()[1].split() == ["key", "shape", "dtype", "numel"]
    # 48 + 48 + 12 + 36 elements, all under the top-level prefix "module"
    assert "total: 144 elements in 4 tensors" in out
    assert main(["inspect", str(path), "--match", "*.head.*", "--depth", "2"]) == 0
    out = capsys.readouterr().out
    assert "module.head.weight" in out and "blocks" not in out
    assert "total: 12 elements in 1 tensors" in out


def test_convert_to_safetensors_and_back(wrapped_ckpt, tmp_path, capsys):
    path, sd = wrapped_ckpt
    st = tmp_path / "out.safetensors"
    assert main(["convert", str(path), str(st)]) == 0
    back = tmp_path / "back.bin"
    assert main(["convert", str(st), str(back)]) == 0
    loaded = load_state_dict_file(back)
    assert set(loaded) == set(sd)
    for key, tensor in sd.items():
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor)


def test_output_is_not_overwritten_silently(wrapped_ckpt, tmp_path, capsys):
    path, _ = wrapped_ckpt
    out = tmp_path / "out.pth"
    out.write_bytes(b"keep me")
    assert main(["convert", str(path), str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(["convert", str(path), str(out), "--overwrite"]) == 0


def test_strip_then_add_prefix(wrapped_ckpt, tmp_path, capsys):
    path, sd = wrapped_ckpt
    stripped, added = tmp_path / "s.pth", tmp_path / "a.safetensors"
    assert main(["strip-prefix", str(path), str(stripped), "module."]) == 0
    assert "stripped 'module.' from 4 of 4 keys" in capsys.readouterr().out
    assert main(["add-prefix", str(stripped), str(added), "vision_encoder.", "--match", "blocks.*"]) == 0
    assert "added 'vision_encoder.' to 2 of 4 keys" in capsys.readouterr().out
    loaded = load_state_dict_file(added)
    assert sorted(loaded) == [
        "head.weight",
        "pos_embed",
        "vision_encoder.blocks.0.attn.qkv.weight",
        "vision_encoder.blocks.1.attn.qkv.weight",
    ]
    assert torch.equal(
        loaded["vision_encoder.blocks.1.attn.qkv.weight"], sd["module.blocks.1.attn.qkv.weight"]
    )


def test_interpolate_pos_embed_command(wrapped_ckpt, tmp_path, capsys):
    path, sd = wrapped_ckpt
    out = tmp_path / "pe.pth"
    args = ["interpolate-pos-embed", str(path), str(out), "--name", "module.pos_embed"]
    assert main([*args, "--old-grid", "2,2,2", "--new-grid", "4,2,2"]) == 0
    assert "[1, 9, 4] -> [1, 17, 4]" in capsys.readouterr().out
    pe = load_state_dict_file(out)["module.pos_embed"]
    old = sd["module.pos_embed"]
    torch.testing.assert_close(pe[0, 1 + 4 : 1 + 8], 0.75 * old[0, 1:5] + 0.25 * old[0, 5:9])
    assert torch.equal(load_state_dict_file(out)["module.head.weight"], sd["module.head.weight"])


def test_errors_name_the_file_or_key(wrapped_ckpt, tmp_path, capsys):
    path, _ = wrapped_ckpt
    assert main(["inspect", str(tmp_path / "absent.pth")]) == 1
    assert "absent.pth" in capsys.readouterr().err
    assert main(["convert", str(path), str(tmp_path / "x.onnx")]) == 1
    assert "x.onnx" in capsys.readouterr().err
    args = [
        "interpolate-pos-embed",
        str(path),
        str(tmp_path / "o.pth"),
        "--old-grid",
        "2,2,2",
        "--new-grid",
        "4,2,2",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "'pos_embed'" in err and "in.pth" in err
    assert main(["inspect", str(path), "--key", "optimizer"]) == 1
    assert "optimizer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["interpolate-pos-embed", str(path), "o.pth", "--old-grid", "2,x", "--new-grid", "4,2,2"])


def _scale(state_dict, factor=1.0, prefix=""):
    """Multiply every tensor by factor and prefix the keys."""
    return {prefix + k: v * factor for k, v in state_dict.items()}


def test_registered_conversion_runs_with_typed_options(tmp_path, capsys):
    register_conversion("test_scale", _scale)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_conversion("test_scale", _scale)
        assert list_conversions()["test_scale"] == "Multiply every tensor by factor and prefix the keys."
        assert main(["convert-model"]) == 0
        assert "test_scale" in capsys.readouterr().out
        src, dst = tmp_path / "in.safetensors", tmp_path / "out.pth"
        save_state_dict_file({"w": torch.tensor([1.0, -2.0])}, src)
        assert (
            main(
                [
                    "convert-model",
                    "test_scale",
                    str(src),
                    str(dst),
                    "--opt",
                    "factor=3",
                    "--opt",
                    "prefix=enc.",
                ]
            )
            == 0
        )
        assert torch.equal(load_state_dict_file(dst)["enc.w"], torch.tensor([3.0, -6.0]))
    finally:
        unregister_conversion("test_scale")
    with pytest.raises(KeyError, match="test_scale"):
        get_conversion("test_scale")


def test_conversion_must_return_a_dict(tmp_path, capsys):
    register_conversion("test_bad", lambda sd: list(sd), help="returns a list")
    try:
        save_state_dict_file({"w": torch.ones(1)}, tmp_path / "in.pth")
        assert main(["convert-model", "test_bad", str(tmp_path / "in.pth"), str(tmp_path / "o.pth")]) == 1
        assert "test_bad" in capsys.readouterr().err
    finally:
        unregister_conversion("test_bad")


def test_entry_point_conversion_is_discovered(tmp_path):
    """A package declaring the entry point is found without ivtools importing it beforehand."""
    site = tmp_path / "site"
    (site / "fakegen").mkdir(parents=True)
    (site / "fakegen" / "__init__.py").write_text("")
    (site / "fakegen" / "convert.py").write_text(
        textwrap.dedent('''
        def negate(state_dict, suffix=""):
            """Negate all weights (fake generation)."""
            return {k + suffix: -v for k, v in state_dict.items()}
        ''')
    )
    dist = site / "fakegen-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakegen\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[ivtools.checkpoint_conversions]\nfake_negate = fakegen.convert:negate\n"
    )
    save_state_dict_file({"w": torch.tensor([1.5, -2.0])}, tmp_path / "in.safetensors")
    env = {**os.environ, "PYTHONPATH": str(site)}
    cli = [sys.executable, "-m", "ivtools.checkpoint.cli", "convert-model"]
    listing = subprocess.run(cli, env=env, capture_output=True, text=True, check=True).stdout
    assert "fake_negate" in listing and "Negate all weights (fake generation)." in listing
    run = [
        *cli,
        "fake_negate",
        str(tmp_path / "in.safetensors"),
        str(tmp_path / "out.safetensors"),
        "--opt",
        "suffix=_n",
    ]
    subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    assert torch.equal(load_state_dict_file(tmp_path / "out.safetensors")["w_n"], torch.tensor([-1.5, 2.0]))
