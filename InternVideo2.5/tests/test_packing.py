"""Data packing: isolated attention (packed == unpacked), InternVL's loss reductions, the packer, a run."""

import argparse
import json
import math
import random
import sys
from pathlib import Path

import pytest
import torch

import internvideo2_5.engine.finetune as finetune_engine
from internvideo2_5.chat import VideoChat
from internvideo2_5.constants import IGNORE_INDEX
from internvideo2_5.conversation import get_template
from internvideo2_5.data.instruction import VideoConversation
from internvideo2_5.data.packing import (
    PADDING_SAMPLE_ID,
    PackedCollator,
    PackedInstructionDataset,
    PackingLimits,
    plan_packs,
)
from internvideo2_5.data.sft import SFTCollator, SFTSettings, VideoInstructionDataset
from internvideo2_5.engine.finetune import add_finetune_args, run_finetuning, sft_step
from internvideo2_5.models.loading import load_pretrained
from internvideo2_5.models.packed import (
    LOSS_REDUCTIONS,
    attention_mask_for,
    block_causal_mask,
    packed_lm_loss,
)
from ivtools.data import build_loader
from ivtools.testing import run_script
from ivtools.video import VideoReadError

FRAMES = 4
TURNS = [
    [("<video>\nWhat is shown?", "A red car.")],
    [("<video>\nDescribe it.", "A man walks his dog in a park."), ("Is it sunny?", "Yes.")],
    [("<video>\nCount.", "Three.")],
]


class IdentityBackend:
    """A one-process CPU backend: ``module`` is the model itself, ``prepare`` leaves tensors as they are."""

    def __init__(self, module):
        self.module = module

    @staticmethod
    def prepare(tensor):
        return tensor


@pytest.fixture(scope="module")
def model_and_samples(tiny_checkpoint):
    """The tiny model in float64 and three encoded samples (4 random one-tile frames each)."""
    model, tokenizer, config = load_pretrained(tiny_checkpoint, dtype=torch.float64)
    settings = SFTSettings(
        template=get_template(config.template),
        tokens_per_frame=model.tokens_per_frame,
        local_num_frames=config.local_num_frames,
        num_frames=FRAMES,
        image_size=config.image_size,
    )
    conversations = [VideoConversation(video=f"v{i}.mp4", turns=turns) for i, turns in enumerate(TURNS)]
    dataset = VideoInstructionDataset(conversations, tokenizer, settings)
    generator = torch.Generator().manual_seed(0)
    samples = []
    for conversation in conversations:
        input_ids, labels = dataset.tokenize(conversation, [1] * FRAMES)
        pixels = torch.randn(FRAMES, 3, config.image_size, config.image_size, generator=generator)
        samples.append(
            {
                "input_ids": torch.tensor(input_ids),
                "labels": torch.tensor(labels),
                "pixel_values": pixels.double(),
            }
        )
    return model, tokenizer, samples


def packed_batch(tokenizer, samples):
    """Two rows: samples 0 and 1 packed together, sample 2 alone (so its row is padded)."""
    packs = [{"samples": samples[:2], "skipped": 0}, {"samples": samples[2:], "skipped": 0}]
    return PackedCollator(tokenizer.pad_token_id)(packs)


def sample_spans(batch):
    """``(row, start, end)`` of every sample, in sample-id order."""
    spans = []
    for sample_id in range(int(batch["sample_ids"].max()) + 1):
        row, cols = (batch["sample_ids"] == sample_id).nonzero(as_tuple=True)
        spans.append((int(row[0]), int(cols[0]), int(cols[-1]) + 1))
    return spans


def packed_forward(model, batch, attention_mask):
    with torch.no_grad():
        return model(
            input_ids=batch["input_ids"],
            pixel_values=batch["pixel_values"],
            attention_mask=attention_mask,
            position_ids=batch["position_ids"],
            use_cache=False,
        ).logits


def unpacked_logits(model, sample):
    with torch.no_grad():
        return model(input_ids=sample["input_ids"][None], pixel_values=sample["pixel_values"]).logits[0]


def test_collator_restarts_positions_and_numbers_samples_across_rows(model_and_samples):
    _, tokenizer, samples = model_and_samples
    batch = packed_batch(tokenizer, samples)
    lengths = [len(s["input_ids"]) for s in samples]
    assert batch["input_ids"].shape == (2, lengths[0] + lengths[1])
    assert sample_spans(batch) == [
        (0, 0, lengths[0]),
        (0, lengths[0], lengths[0] + lengths[1]),
        (1, 0, lengths[2]),
    ]
    for (row, start, end), sample in zip(sample_spans(batch), samples, strict=True):
        assert torch.equal(batch["position_ids"][row, start:end], torch.arange(end - start))
        assert torch.equal(batch["input_ids"][row, start:end], sample["input_ids"])
        assert torch.equal(batch["labels"][row, start:end], sample["labels"])
    assert (batch["sample_ids"][1, lengths[2] :] == PADDING_SAMPLE_ID).all()
    assert (batch["labels"][1, lengths[2] :] == IGNORE_INDEX).all()
    assert torch.equal(batch["pixel_values"], torch.cat([s["pixel_values"] for s in samples]))


def test_block_causal_mask_by_hand():
    ids = torch.tensor([[0, 0, 1, 1, 1, -1]])
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(block_causal_mask(ids), expected[None, None])


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_logits_equal_each_samples_unpacked_logits(model_and_samples, attention):
    """Per-token logits of the packed forward == each sample alone (float64).

    The control runs the same packed rows with a plain causal 4-D mask (tokens see earlier
    samples): the later samples' logits must then differ, so this test fails if isolation breaks.
    (Without any mask, transformers itself infers the samples from the restarting positions.) Wrong
    position offsets cannot be seen in the logits here (rotary attention only depends on position
    differences inside a sample), so the restart at 0 is checked on the collator's output above.
    """
    model, tokenizer, samples = model_and_samples
    model.set_attn_implementation(attention)
    try:
        batch = packed_batch(tokenizer, samples)
        isolated = packed_forward(
            model, batch, attention_mask_for(model, block_causal_mask(batch["sample_ids"]))
        )
        one_sample = torch.zeros_like(batch["sample_ids"])
        leaky = packed_forward(model, batch, attention_mask_for(model, block_causal_mask(one_sample)))
        alone = [unpacked_logits(model, sample) for sample in samples]
    finally:
        model.set_attn_implementation("sdpa")
    for (row, start, end), expected in zip(sample_spans(batch), alone, strict=True):
        torch.testing.assert_close(isolated[row, start:end], expected, rtol=1e-10, atol=1e-10)
    row, start, end = sample_spans(batch)[1]  # the second sample of the first pack
    assert (leaky[row, start:end] - alone[1]).abs().max() > 1e-3


def answer_loss_sum(model, sample) -> tuple[torch.Tensor, int]:
    """(sum of the sample's answer-token cross-entropies, their number), the sample unpacked."""
    logits = model(input_ids=sample["input_ids"][None], pixel_values=sample["pixel_values"]).logits[0]
    targets = sample["labels"][1:]
    keep = targets != IGNORE_INDEX
    losses = torch.nn.functional.cross_entropy(logits[:-1][keep], targets[keep], reduction="none")
    return losses.sum(), int(keep.sum())


def hand_losses(model, samples):
    """Per-sample (sum of answer-token cross-entropies, number of answer tokens), each sample unpacked."""
    with torch.no_grad():
        pairs = [answer_loss_sum(model, sample) for sample in samples]
    return [s.item() for s, _ in pairs], [n for _, n in pairs]


def test_packed_loss_reductions_equal_hand_reductions_of_unpacked_losses(model_and_samples):
    model, tokenizer, samples = model_and_samples
    batch = packed_batch(tokenizer, samples)
    sums, counts = hand_losses(model, samples)
    means = [s / n for s, n in zip(sums, counts, strict=True)]
    expected = {
        "token": sum(sums) / sum(counts),
        "sample": sum(means) / len(means),
        "square": sum(math.sqrt(n) * m for n, m in zip(counts, means, strict=True))
        / sum(math.sqrt(n) for n in counts),
    }
    assert len(set(counts)) == len(counts)  # different lengths, so the three reductions differ
    assert min(abs(a - b) for a, b in zip(expected.values(), list(expected.values())[1:])) > 1e-4
    with torch.no_grad():
        got = {
            r: sft_step(model, batch, IdentityBackend(model), loss_reduction=r)[0].item() for r in expected
        }
        padded = SFTCollator(tokenizer.pad_token_id)([{**s, "skipped": 0} for s in samples])
        padded_loss = model(
            **{k: padded[k] for k in ("input_ids", "attention_mask", "labels", "pixel_values")}
        ).loss
    for reduction, value in expected.items():
        assert got[reduction] == pytest.approx(value, rel=1e-10), reduction
    # `token` is what the unpacked, padded SFT step computes on the same samples (transformers'
    # loss casts the logits to float32, hence the float32 tolerance)
    assert got["token"] == pytest.approx(padded_loss.item(), rel=1e-6)


def test_unknown_loss_reduction_is_an_error(model_and_samples):
    model, tokenizer, samples = model_and_samples
    with pytest.raises(ValueError, match="loss_reduction must be one of"):
        sft_step(model, packed_batch(tokenizer, samples), IdentityBackend(model), loss_reduction="mean")


# ---- --loss_reduction_all_gather on two ranks -----------------------------------------------

WORKER = Path(__file__).with_name("packed_loss_ranks.py")
RANK_SAMPLES = ([0, 1], [2])  # rank 0 packs two samples, rank 1 one: different weight sums
GRAD_TOLERANCE = 1e-6
LEN2WEIGHT = {"token": lambda n: 1.0, "sample": lambda n: 1.0 / n, "square": lambda n: n**-0.5}


@pytest.fixture(scope="module")
def two_rank_results(model_and_samples, tiny_checkpoint, tmp_path_factory):
    """packed_loss_ranks.py's losses and rank-averaged gradients, with and without the flag."""
    _, _, samples = model_and_samples
    root = tmp_path_factory.mktemp("all_gather")
    torch.save([[samples[i] for i in rank] for rank in RANK_SAMPLES], root / "samples.pt")
    launch = [sys.executable, "-m", "ivtools.launch", "--gpus", "2", str(WORKER), "--"]
    run_script([*launch, str(tiny_checkpoint), str(root / "samples.pt"), str(root / "out.pt")], timeout=300)
    return torch.load(root / "out.pt", weights_only=True)


@pytest.fixture(scope="module")
def per_sample_terms(model_and_samples):
    """Each sample unpacked: the sum of its answer-token cross-entropies, their number, and the
    gradient of that sum with respect to every parameter."""
    model, _, samples = model_and_samples
    sums, counts, grads = [], [], []
    for sample in samples:
        model.zero_grad(set_to_none=True)
        total, count = answer_loss_sum(model, sample)
        total.backward()
        sums.append(total.item())
        counts.append(count)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    model.zero_grad(set_to_none=True)
    return sums, counts, grads


def weighted_grad(grads, weights, members, divisor):
    return {k: sum(weights[i] * grads[i][k] for i in members) / divisor for k in grads[0]}


def assert_close_to_scale(actual: dict, expected: dict, scale: float) -> None:
    assert actual.keys() == expected.keys()
    for key, value in actual.items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=GRAD_TOLERANCE * scale, msg=key)


@pytest.mark.parametrize("reduction", LOSS_REDUCTIONS)
def test_loss_reduction_all_gather_normalises_over_the_global_batch(
    two_rank_results, per_sample_terms, reduction
):
    """With the flag, rank r's loss is its weighted sum S_r over the mean of the ranks' weight sums
    W_r, so the rank-averaged gradient is that of (S_0 + S_1) / (W_0 + W_1), built here by hand from
    the unpacked per-sample gradients; without it, that of the mean of S_r / W_r, which differs.

    The model is float64, but the LLM's RMSNorm computes in float32: a packed row (another
    attention kernel, another summation order) can round a normalised activation to the next
    float32, which moves gradients by up to ~6e-8 of the largest one (measured); hence
    GRAD_TOLERANCE x the largest gradient, far below the gap between the two normalisations.
    """
    sums, counts, grads = per_sample_terms
    weights = [LEN2WEIGHT[reduction](n) for n in counts]
    weighted_sums = [sum(weights[i] * sums[i] for i in rank) for rank in RANK_SAMPLES]
    weight_sums = [sum(weights[i] * counts[i] for i in rank) for rank in RANK_SAMPLES]
    assert weight_sums[0] != pytest.approx(weight_sums[1])  # else both normalisations agree
    flagged, per_rank = two_rank_results[f"{reduction}/True"], two_rank_results[f"{reduction}/False"]

    mean_weight_sum = sum(weight_sums) / len(weight_sums)
    assert flagged["losses"] == pytest.approx([s / mean_weight_sum for s in weighted_sums], rel=1e-8)
    expected = weighted_grad(grads, weights, range(len(counts)), sum(weight_sums))
    scale = max(v.abs().max().item() for v in expected.values())
    assert_close_to_scale(flagged["grads"], expected, scale)

    per_rank_losses = [s / w for s, w in zip(weighted_sums, weight_sums, strict=True)]
    assert per_rank["losses"] == pytest.approx(per_rank_losses, rel=1e-8)
    rank_means = [weighted_grad(grads, weights, r, w) for r, w in zip(RANK_SAMPLES, weight_sums, strict=True)]
    assert_close_to_scale(
        per_rank["grads"], {k: (rank_means[0][k] + rank_means[1][k]) / 2 for k in expected}, scale
    )
    gap = max((flagged["grads"][k] - per_rank["grads"][k]).abs().max().item() for k in expected)
    assert gap > 0.1 * scale


def test_loss_reduction_all_gather_needs_packing(tiny_checkpoint, tmp_path):
    argv = ["--model", str(tiny_checkpoint), "--data", "unused.jsonl", "--output_dir", str(tmp_path)]
    args = add_finetune_args(argparse.ArgumentParser()).parse_args(
        [*argv, "--loss_reduction_all_gather", "True"]
    )
    with pytest.raises(ValueError, match="--loss_reduction_all_gather .* needs --use_packed_ds"):
        run_finetuning(args)


# ---- the packer ------------------------------------------------------------------------------


def test_first_fit_packing_by_hand():
    limits = PackingLimits(max_packed_tokens=10, num_images_expected=4, max_buffer_size=2)
    sizes = [(6, 1), (5, 1), (4, 1), (3, 2), (2, 1), (9, 1)]
    # 0 opens A; 1 opens B; 2 fills A (10 tokens); 3 joins B; 4 joins B (3 tiles, 10 tokens: full);
    # 5 opens C and is left open at the end
    assert plan_packs(sizes, range(len(sizes)), limits) == [[0, 2], [1, 3, 4], [5]]


def test_too_many_open_packs_close_the_one_with_most_tiles():
    limits = PackingLimits(max_packed_tokens=10, num_images_expected=8, max_buffer_size=2)
    sizes = [(8, 1), (8, 3), (8, 2), (1, 1)]
    # three packs open after sample 2; the one with 3 tiles (sample 1) closes; 3 then joins 0's pack
    assert plan_packs(sizes, range(len(sizes)), limits) == [[1], [0, 3], [2]]


@pytest.mark.parametrize("seed", range(5))
def test_packs_respect_the_limits_and_hold_every_sample_once(seed):
    rng = random.Random(seed)
    limits = PackingLimits(max_packed_tokens=300, num_images_expected=16, max_buffer_size=rng.randint(1, 6))
    sizes = [(rng.randint(20, 300), rng.choice([4, 8, 16])) for _ in range(100)]
    sizes += [(rng.randint(1, 60), rng.choice([4, 8])) for _ in range(100)]
    order = rng.sample(range(len(sizes)), len(sizes))
    packs = plan_packs(sizes, order, limits)
    assert sorted(i for pack in packs for i in pack) == list(range(len(sizes)))
    for pack in packs:
        assert sum(sizes[i][0] for i in pack) <= limits.max_packed_tokens
        assert sum(sizes[i][1] for i in pack) <= limits.num_images_expected
    assert len(packs) < 0.75 * len(sizes)  # it does pack


def test_a_sample_larger_than_a_pack_is_an_error():
    with pytest.raises(ValueError, match="sample 1 has 12 tokens and 1 tiles"):
        plan_packs([(5, 1), (12, 1)], [0, 1], PackingLimits(max_packed_tokens=10))
    with pytest.raises(ValueError, match="--num_images_expected 4"):
        plan_packs([(5, 8)], [0], PackingLimits(num_images_expected=4))


class StubSamples:
    """A VideoInstructionDataset stand-in: sample i has i % 7 + 3 tokens (all equal to i) and 4 tiles."""

    def __init__(self, count: int, unreadable: frozenset[int] = frozenset()):
        self.conversations = list(range(count))
        self.unreadable = unreadable

    def __len__(self):
        return len(self.conversations)

    def planned_size(self, index):
        return index % 7 + 3, 4

    def encode(self, index):
        if index in self.unreadable:
            raise VideoReadError(f"v{index}.mp4", "broken")
        tokens, tiles = self.planned_size(index)
        ids = torch.full((tokens,), index)
        return {"input_ids": ids, "labels": ids.clone(), "pixel_values": torch.zeros(tiles, 3, 2, 2)}


def epoch_sample_indices(loader, epoch):
    loader.sampler.set_epoch(epoch)
    seen = []
    for batch in loader:
        for row_ids, row_samples in zip(batch["input_ids"], batch["sample_ids"], strict=True):
            for sample_id in row_samples.unique():
                if sample_id != PADDING_SAMPLE_ID:
                    seen.append(int(row_ids[row_samples == sample_id][0]))
    return seen


def test_every_sample_appears_once_per_epoch_through_the_loader():
    limits = PackingLimits(max_packed_tokens=24, num_images_expected=16, max_buffer_size=3)
    dataset = PackedInstructionDataset(StubSamples(41), limits, seed=3)
    loader = build_loader(
        dataset, 2, train=True, num_workers=0, drop_last=False, collate_fn=PackedCollator(pad_token_id=-5)
    )
    for epoch in range(2):
        assert sorted(epoch_sample_indices(loader, epoch)) == list(range(41))


def test_unreadable_videos_leave_their_pack_and_are_counted():
    limits = PackingLimits(max_packed_tokens=100, num_images_expected=8)
    dataset = PackedInstructionDataset(StubSamples(6), limits)
    first, second, third = dataset.packs  # two samples of 4 tiles each
    dataset.samples.unreadable = frozenset([*first, second[0]])

    def member_ids(item):
        return [int(s["input_ids"][0]) for s in item["samples"]]

    # pack 0 has nothing readable: replaced by pack 1, whose broken sample is dropped too
    assert member_ids(dataset[0]) == second[1:] and dataset[0]["skipped"] == 3
    assert member_ids(dataset[1]) == second[1:] and dataset[1]["skipped"] == 1
    assert member_ids(dataset[2]) == third and dataset[2]["skipped"] == 0


def test_packing_needs_one_tile_per_frame(model_and_samples):
    _, tokenizer, _ = model_and_samples
    settings = SFTSettings(
        template=get_template("internvl2_5"), tokens_per_frame=16, local_num_frames=4, max_num=2
    )
    dataset = VideoInstructionDataset([VideoConversation("v.mp4", TURNS[0])], tokenizer, settings)
    with pytest.raises(ValueError, match="needs --max_num 1"):
        PackedInstructionDataset(dataset, PackingLimits())


# ---- end to end ------------------------------------------------------------------------------


def test_packed_finetuning_run_trains_and_saves(tiny_checkpoint, coded_video, tmp_path, monkeypatch):
    rows = [
        {"video": str(coded_video), "QA": [{"q": f"Question {i}?", "a": "Answer " + "x" * (3 * i)}]}
        for i in range(5)
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    argv = ["--model", str(tiny_checkpoint), "--data", str(tmp_path / "data.jsonl")]
    argv += ["--output_dir", str(tmp_path / "out"), "--num_frames", "4", "--num_workers", "0"]
    argv += ["--epochs", "2", "--warmup_epochs", "0", "--lr", "2.56", "--use_llm_lora", "4"]
    argv += ["--freeze_backbone", "--freeze_mlp", "--use_packed_ds", "--num_images_expected", "8"]
    argv += ["--max_packed_tokens", "1024", "--loss_reduction", "square", "--loss_reduction_all_gather"]
    args = add_finetune_args(argparse.ArgumentParser()).parse_args(argv)
    # on one rank the flag changes nothing numerically: a spy checks that it reaches the loss
    flags = []

    def spy(*args, **kwargs):
        flags.append(args[4] if len(args) > 4 else kwargs.get("loss_reduction_all_gather"))
        return packed_lm_loss(*args, **kwargs)

    monkeypatch.setattr(finetune_engine, "packed_lm_loss", spy)
    released = run_finetuning(args)
    assert flags and all(flag is True for flag in flags)
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in log if r["kind"] == "epoch"]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses) and losses[1] < losses[0]
    trained = torch.load(tmp_path / "out" / "checkpoint-1.pth", map_location="cpu", weights_only=False)[
        "model"
    ]
    assert all(v.abs().sum() > 0 for k, v in trained.items() if ".lora_B." in k)
    chat = VideoChat.from_pretrained(released, num_frames=4)
    answer, _ = chat.chat(coded_video, "What is shown?", generation_config={"max_new_tokens": 2})
    assert isinstance(answer, str)
