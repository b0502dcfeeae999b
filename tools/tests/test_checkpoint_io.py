"""Loading, saving, unwrapping and key edits of state dicts."""

import argparse
import json

import pytest
import torch

from ivtools.checkpoint import (
    add_prefix,
    count_by_prefix,
    describe,
    load_state_dict_file,
    save_state_dict_file,
    select_keys,
    strip_prefix,
    unwrap_state_dict,
)

SUFFIXES = [".pth", ".pt", ".bin", ".safetensors"]


def _bits(t: torch.Tensor) -> bytes:
    """Raw bytes: tells -0.0 from 0.0 and compares NaN payloads, unlike torch.equal."""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _varied_state_dict() -> dict[str, torch.Tensor]:
    special = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-45, 3.4e38])
    base = torch.randn(6, 4)
    return {
        "fp32": torch.cat([special, torch.randn(5)]),
        "bf16": torch.randn(3, 5).bfloat16(),
        "fp16": torch.randn(2, 2, 2).half(),
        "fp64": torch.randn(3).double(),
        "int64": torch.arange(-5, 5),
        "int32": torch.tensor([2**31 - 1, -(2**31)], dtype=torch.int32),
        "int8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "uint8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 7),
        "transposed": base.t(),  # non-contiguous
        "tied": base,  # shares storage with "transposed" and "row"
        "row": base[2],  # a view into the middle of a storage
    }


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_is_bit_identical(tmp_path, suffix):
    original = _varied_state_dict()
    expected = {k: (v.shape, v.dtype, _bits(v)) for k, v in original.items()}
    path = save_state_dict_file(original, tmp_path / f"ckpt{suffix}")
    loaded = load_state_dict_file(path)
    assert set(loaded) == set(original)
    for key, (shape, dtype, bits) in expected.items():
        assert loaded[key].shape == shape, key
        assert loaded[key].dtype == dtype, key
        assert _bits(loaded[key]) == bits, key
    # the inputs are left untouched (shared tensors were copied, not moved)
    assert original["tied"].data_ptr() == original["transposed"].data_ptr()


def test_safetensors_rejects_non_tensor_values(tmp_path):
    with pytest.raises(TypeError, match="'epoch'"):
        save_state_dict_file({"w": torch.ones(1), "epoch": 3}, tmp_path / "x.safetensors")


def test_torch_format_keeps_wrappers(tmp_path):
    sd = {"w": torch.ones(2)}
    path = save_state_dict_file({"model": sd, "epoch": 7}, tmp_path / "x.pth")
    raw = load_state_dict_file(path)
    assert raw["epoch"] == 7
    assert torch.equal(raw["model"]["w"], sd["w"])


def test_pickled_namespace_needs_full_unpickler(tmp_path):
    path = tmp_path / "released.pth"
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.warns(UserWarning, match="released.pth"):
        raw = load_state_dict_file(path)
    assert raw["args"].lr == 0.1
    with pytest.raises(ValueError, match="released.pth"):
        load_state_dict_file(path, weights_only=True)


def _write_shards(folder, suffix):
    shards = {
        f"part-1{suffix}": {"a.w": torch.randn(3), "a.b": torch.randn(2)},
        f"part-2{suffix}": {"b.w": torch.arange(4)},
    }
    weight_map = {}
    for name, tensors in shards.items():
        save_state_dict_file(tensors, folder / name)
        weight_map.update(dict.fromkeys(tensors, name))
    index = "model.safetensors.index.json" if suffix == ".safetensors" else "pytorch_model.bin.index.json"
    (folder / index).write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return {k: v for t in shards.values() for k, v in t.items()}, folder / index


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_sharded_folder(tmp_path, suffix):
    expected, index = _write_shards(tmp_path, suffix)
    for source in (tmp_path, index):
        loaded = load_state_dict_file(source)
        assert list(loaded) == list(json.loads(index.read_text())["weight_map"])
        for key, tensor in expected.items():
            assert torch.equal(loaded[key], tensor)


def test_sharded_folder_with_missing_key_names_it(tmp_path):
    _, index = _write_shards(tmp_path, ".safetensors")
    data = json.loads(index.read_text())
    data["weight_map"]["ghost.w"] = "part-2.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(KeyError, match="ghost.w"):
        load_state_dict_file(tmp_path)


def test_folder_with_single_weights_file(tmp_path):
    save_state_dict_file({"w": torch.arange(3)}, tmp_path / "model.safetensors")
    assert torch.equal(load_state_dict_file(tmp_path)["w"], torch.arange(3))


def test_deepspeed_folder_gets_a_hint(tmp_path):
    (tmp_path / "latest").write_text("global_step2")
    with pytest.raises(ValueError, match="DeepSpeed"):
        load_state_dict_file(tmp_path)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        load_state_dict_file(tmp_path / "nothere.pth")


def test_unknown_format_names_file_and_suffix(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"weights\.npz.*'\.npz'"):
        load_state_dict_file(path)
    with pytest.raises(ValueError, match="weights.npz"):
        save_state_dict_file({"w": torch.ones(1)}, path)


@pytest.mark.filterwarnings("ignore:.*weights_only")
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_file_names_it(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match=f"broken{suffix}"):
        load_state_dict_file(path)


def test_unwrap_follows_key_order_and_nesting():
    sd = {"w": torch.ones(1)}
    ema = {"w": torch.zeros(1)}
    assert unwrap_state_dict(sd) == sd and unwrap_state_dict(sd) is not sd
    assert unwrap_state_dict({"model": sd, "epoch": 3})["w"] is sd["w"]
    assert unwrap_state_dict({"state_dict": {"module": sd}})["w"] is sd["w"]
    both = {"model_ema": ema, "module": sd, "model": ema}
    assert unwrap_state_dict(both, "module|model")["w"] is sd["w"]
    assert unwrap_state_dict(both, ["model_ema"])["w"] is ema["w"]


def test_unwrap_without_known_key_lists_entries():
    with pytest.raises(KeyError, match="weights_here"):
        unwrap_state_dict({"weights_here": {"w": torch.ones(1)}, "epoch": 1})
    with pytest.raises(KeyError, match=r"model has none .* \['w'\]"):
        unwrap_state_dict({"model": {"w": [1, 2]}})
    with pytest.raises(TypeError, match="list"):
        unwrap_state_dict([torch.ones(1)])


def test_strip_and_add_prefix():
    sd = {"module.a.w": torch.ones(1), "module.b.w": torch.ones(2), "c.w": torch.ones(3)}
    assert list(strip_prefix(sd, "module.")) == ["a.w", "b.w", "c.w"]
    assert list(strip_prefix(sd, "module.", pattern="module.a.*")) == ["a.w", "module.b.w", "c.w"]
    assert list(add_prefix(sd, "vision_encoder.")) == [
        "vision_encoder.module.a.w",
        "vision_encoder.module.b.w",
        "vision_encoder.c.w",
    ]
    assert list(add_prefix(sd, "x.", pattern="c.*")) == ["module.a.w", "module.b.w", "x.c.w"]
    assert strip_prefix(sd, "module.")["b.w"] is sd["module.b.w"]


def test_prefix_collision_is_an_error():
    with pytest.raises(ValueError, match="'module.w'"):
        strip_prefix({"w": torch.ones(1), "module.w": torch.ones(1)}, "module.")
    with pytest.raises(ValueError, match="empty"):
        add_prefix({"w": torch.ones(1)}, "")


def test_describe_and_counts():
    sd = {
        "blocks.0.w": torch.zeros(4, 3),
        "blocks.1.w": torch.zeros(4, 3, dtype=torch.bfloat16),
        "head.b": torch.zeros(5),
    }
    rows = describe(sd)
    assert [(r.key, r.shape, r.dtype, r.numel) for r in rows] == [
        ("blocks.0.w", (4, 3), "float32", 12),
        ("blocks.1.w", (4, 3), "bfloat16", 12),
        ("head.b", (5,), "float32", 5),
    ]
    assert count_by_prefix(sd) == {"blocks": 24, "head": 5}
    assert count_by_prefix(sd, depth=2) == {"blocks.0": 12, "blocks.1": 12, "head.b": 5}
    assert list(select_keys(sd, "blocks.*.w")) == ["blocks.0.w", "blocks.1.w"]
