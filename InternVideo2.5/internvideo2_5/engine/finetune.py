"""Supervised instruction fine-tuning of the chat model on ``ivtools.train``.

The recipe of InternVL's ``internvl_chat_finetune.py`` (which the InternVideo2.5 fine-tuning code
builds on): load the released checkpoint, optionally freeze the vision encoder
(``--freeze_backbone``), the projector (``--freeze_mlp``) and the LLM (``--freeze_llm``), or put
LoRA on the LLM (``--use_llm_lora R``: rank R, alpha 2R, dropout 0.05, on every attention and MLP
projection), and/or on the vision encoder (``--use_backbone_lora R``, as ``wrap_backbone_lora``:
rank R, alpha 2R, dropout 0.05, on every attention and MLP projection of InternViT), optionally
with activation checkpointing (``--grad_checkpoint``), train on video instruction data with the LM
loss on answers only, and write the result in the released layout so that :class:`~internvideo2_5.chat.VideoChat` loads it.

LoRA targets: the original wraps InternLM2's fused ``attention.wqkv``, ``attention.wo`` and
``feed_forward.w1/w2/w3``; here the LLM holds ``q/k/v_proj`` separately, so the query, key and
value projections each get their own rank-R adapter (the same modules, a little more capacity).
The same holds for InternViT, whose fused ``attn.qkv`` is ``attention.q/k/v_proj`` here (its
``attn.proj`` is ``attention.projection_layer``). Adapters are merged into the weights when the
released checkpoint is written.

``--grad_checkpoint`` recomputes every decoder layer of the LLM and every InternViT layer in the
backward pass (InternVL sets both), non-reentrant, so that gradients reach LoRA adapters and
unfrozen parts even when the embeddings before them are frozen.

``--use_packed_ds`` packs several conversations into each sequence (:mod:`internvideo2_5.data.packing`,
limits ``--max_packed_tokens``/``--num_images_expected``/``--max_buffer_size``); each sample attends
only to itself (:mod:`internvideo2_5.models.packed`) and ``--loss_reduction token|sample|square``
weighs the samples as InternVL does, normalised per rank or, with ``--loss_reduction_all_gather``,
over all ranks. ``--batch_size`` then counts packs.
"""

from __future__ import annotations

import argparse
import functools
import warnings
from pathlib import Path

import torch
from torch import nn

from internvideo2_5.conversation import get_template
from internvideo2_5.data.instruction import load_instruction_data
from internvideo2_5.data.packing import PackedCollator, PackedInstructionDataset, PackingLimits
from internvideo2_5.data.sft import SFTCollator, SFTSettings, VideoInstructionDataset
from internvideo2_5.engine.whole_weights import merged_state_dict, parameter_count
from internvideo2_5.models.loading import load_pretrained, save_released
from internvideo2_5.models.packed import (
    LOSS_REDUCTIONS,
    attention_mask_for,
    block_causal_mask,
    packed_lm_loss,
    packed_logits,
)
from ivtools.data import build_loader
from ivtools.distributed import init_distributed, is_main_process
from ivtools.train import Trainer
from ivtools.train.setup import (
    backend_from_args,
    global_batch_size,
    optimizer_from_args,
    schedules_from_args,
    seed_everything,
    trainer_config_from_args,
    updates_per_epoch_or_fail,
)

LLM_LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
BACKBONE_LORA_TARGETS = (
    r".*vision_tower\.encoder\.layer\.\d+\.(attention\.((q|k|v)_proj|projection_layer)|mlp\.fc(1|2))"
)
LORA_DROPOUT = 0.05
TRUE_WORDS, FALSE_WORDS = ("true", "t", "yes", "y", "1"), ("false", "f", "no", "n", "0")
RELEASED_DIR = "released"
# InternVL's zero_stage3_config.json: norms and biases stay whole, matrices are partitioned
STAGE3_PERSISTENCE_THRESHOLD = 10**7


def str_to_bool(value: str) -> bool:
    """A boolean flag value the way InternVL's (HfArgumentParser) scripts write it: ``True``, ``false``, ``1``..."""
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(
        f"expected a boolean ({'/'.join(TRUE_WORDS + FALSE_WORDS)}), got {value!r}"
    )


def add_bool_flag(group, flag: str, help_text: str) -> None:
    """An off-by-default switch that also takes InternVL's value forms (``--flag`` or ``--flag True``)."""
    group.add_argument(
        flag,
        type=str_to_bool,
        nargs="?",
        const=True,
        default=False,
        help=f"{help_text} (`{flag}` or `{flag} True`)",
    )


def add_finetune_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("model and data")
    g.add_argument("--model", required=True, help="released-layout checkpoint directory to start from")
    g.add_argument("--data", required=True, help="annotation JSON/JSONL, or a meta JSON of several")
    g.add_argument("--video_root", default="", help="folder the annotation's video paths are relative to")
    g.add_argument("--num_frames", type=int, default=16, help="frames per video (a multiple of 4)")
    g.add_argument("--max_num", type=int, default=1, help="tiles per frame (1 for video, as released)")
    g.add_argument("--max_seq_length", type=int, default=None, help="truncate longer samples")
    g.add_argument("--video_backend", default="auto")
    add_packing_args(parser)
    g = parser.add_argument_group("what to train (InternVL's flags)")
    for flag, what in (("backbone", "the vision encoder"), ("mlp", "the projector"), ("llm", "the LLM")):
        add_bool_flag(g, f"--freeze_{flag}", f"freeze {what}")
    g.add_argument(
        "--use_llm_lora", type=int, default=0, help="LoRA rank on the LLM (0: off); alpha = 2 x rank"
    )
    g.add_argument(
        "--use_backbone_lora",
        type=int,
        default=0,
        help="LoRA rank on the vision encoder (0: off); alpha = 2 x rank; its own weights are then frozen",
    )
    add_bool_flag(
        g,
        "--grad_checkpoint",
        "activation checkpointing in the LLM and the vision encoder (InternVL defaults to True, "
        "here it is off unless given)",
    )
    g = parser.add_argument_group("training")
    g.add_argument("--batch_size", type=int, default=1, help="per-GPU batch size")
    g.add_argument("--epochs", type=int, default=1)
    g.add_argument("--update_freq", type=int, default=1, help="gradient accumulation steps")
    g.add_argument("--max_updates_per_epoch", type=int, default=None, help="cap (for smoke runs)")
    g.add_argument("--save_ckpt_freq", type=int, default=1)
    g.add_argument("--steps_per_print", type=int, default=10)
    g.add_argument("--opt", default="adamw")
    g.add_argument("--opt_eps", type=float, default=1e-8)
    g.add_argument("--opt_betas", type=float, nargs="+", default=None)
    g.add_argument("--clip_grad", type=float, default=1.0)
    g.add_argument("--weight_decay", type=float, default=0.05)
    g.add_argument("--weight_decay_end", type=float, default=None)
    g.add_argument("--lr", type=float, default=8e-5, help="lr for a global batch of 256 (scaled linearly)")
    g.add_argument("--min_lr", type=float, default=0.0)
    g.add_argument("--warmup_lr", type=float, default=0.0)
    g.add_argument("--warmup_epochs", type=float, default=0.03, help="InternVL's warmup_ratio for 1 epoch")
    g.add_argument("--warmup_steps", type=int, default=-1, help="overrides --warmup_epochs when > 0")
    g.add_argument("--num_workers", type=int, default=4)
    g = parser.add_argument_group("checkpoints and hardware")
    g.add_argument("--output_dir", required=True, help="resume checkpoints, logs, and released/ at the end")
    g.add_argument("--resume", default="")
    g.add_argument("--no_auto_resume", action="store_false", dest="auto_resume")
    g.add_argument("--device", default=None)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--enable_deepspeed", action="store_true")
    g.add_argument("--zero_stage", type=int, default=0, choices=(0, 1, 2, 3), help="DeepSpeed ZeRO stage")
    g.add_argument(
        "--stage3_param_persistence_threshold",
        type=int,
        default=STAGE3_PERSISTENCE_THRESHOLD,
        help="ZeRO-3: parameters with fewer elements stay whole on every rank (0: partition all)",
    )
    g.add_argument("--bf16", action="store_true")
    g.add_argument("--fp16", action="store_true")
    return parser


def add_packing_args(parser: argparse.ArgumentParser) -> None:
    """InternVL's data-packing flags and defaults (``--use_packed_ds`` and the limits of a pack)."""
    defaults = PackingLimits()
    g = parser.add_argument_group("data packing (InternVL's --use_packed_ds)")
    add_bool_flag(g, "--use_packed_ds", "pack several samples into each sequence; --batch_size counts packs")
    g.add_argument(
        "--max_packed_tokens", type=int, default=defaults.max_packed_tokens, help="tokens per pack at most"
    )
    g.add_argument(
        "--num_images_expected",
        type=int,
        default=defaults.num_images_expected,
        help="video tiles (frames at max_num=1) per pack at most",
    )
    g.add_argument(
        "--max_buffer_size",
        type=int,
        default=defaults.max_buffer_size,
        help="packs kept open while packing; more close the one with the most tiles",
    )
    g.add_argument(
        "--loss_reduction",
        choices=LOSS_REDUCTIONS,
        default="token",
        help="packed loss: mean over tokens, mean of per-sample means, or per-sample means weighted by sqrt(tokens)",
    )
    add_bool_flag(
        g,
        "--loss_reduction_all_gather",
        "divide the packed loss by the mean over ranks of the loss-weight sums instead of this rank's",
    )


def _part_of(name: str) -> str:
    if name.startswith("model.vision_tower."):
        return "backbone"
    if name.startswith("model.multi_modal_projector."):
        return "mlp"
    return "llm"  # embeddings, decoder layers, final norm, lm_head


def _inject_lora(model: nn.Module, targets: str, rank: int) -> None:
    """Rank-``rank`` adapters (alpha 2 x rank, InternVL's choice) on the modules matching ``targets``."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=LORA_DROPOUT, target_modules=targets)
    with warnings.catch_warnings():
        # peft warns on a second injection; LLM and vision targets are disjoint, so nothing is shared
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(config, model)


def configure_trainable(
    model: nn.Module,
    freeze_backbone: bool = False,
    freeze_mlp: bool = False,
    freeze_llm: bool = False,
    lora_rank: int = 0,
    backbone_lora_rank: int = 0,
) -> list[str]:
    """Apply the freeze flags and LoRA (LLM, vision encoder); returns the names of the trainable parameters.

    A part with LoRA has its own weights frozen (as peft does in the original) and only the
    adapters train there.
    """
    if lora_rank < 0 or backbone_lora_rank < 0:
        raise ValueError(
            f"LoRA ranks must be >= 0, got --use_llm_lora {lora_rank} --use_backbone_lora {backbone_lora_rank}"
        )
    if lora_rank > 0:
        _inject_lora(model, LLM_LORA_TARGETS, lora_rank)
    if backbone_lora_rank > 0:
        _inject_lora(model, BACKBONE_LORA_TARGETS, backbone_lora_rank)
    frozen = {
        "backbone": freeze_backbone or backbone_lora_rank > 0,
        "mlp": freeze_mlp,
        "llm": freeze_llm or lora_rank > 0,
    }
    for name, param in model.named_parameters():
        param.requires_grad = "lora_" in name or not frozen[_part_of(name)]
    trainable = [name for name, param in model.named_parameters() if param.requires_grad]
    if not trainable:
        raise ValueError(
            "every parameter is frozen: drop a --freeze_* flag or set --use_llm_lora/--use_backbone_lora"
        )
    return trainable


def enable_grad_checkpointing(model: nn.Module) -> None:
    """InternVL's ``--grad_checkpoint``: recompute LLM decoder layers and InternViT layers in the backward.

    transformers flags every checkpointable module of the model, the LLM's decoder layers and the
    vision encoder's layers alike (and, as peft asks, makes the token embeddings' output require
    grad). Non-reentrant checkpointing propagates gradients to parameters inside a layer whatever
    its inputs require, which LoRA in a frozen vision encoder needs: its patch embeddings are frozen.
    """
    model.activation_checkpointing_enable({"use_reentrant": False})


def zero3_options(args: argparse.Namespace) -> dict | None:
    """InternVL's ``zero_stage3_config.json`` communication switches under ZeRO-3 (None otherwise);
    ``--stage3_param_persistence_threshold`` reaches DeepSpeed through ``backend_from_args``.

    The released export gathers the partitioned weights itself (:mod:`.whole_weights`), so
    ``stage3_gather_16bit_weights_on_model_save`` is not needed.
    """
    if not (args.enable_deepspeed and args.zero_stage == 3):
        return None
    return {"overlap_comm": True, "contiguous_gradients": True}


def sft_step(
    model: nn.Module,
    batch: dict,
    backend,
    loss_reduction: str = "token",
    loss_reduction_all_gather: bool = False,
) -> tuple[torch.Tensor, dict]:
    """LM loss on the answer tokens: of a padded batch (the model averages over labelled tokens), or
    of a packed one (``sample_ids`` present), reduced by ``loss_reduction`` as InternVL does and
    normalised over all ranks with ``loss_reduction_all_gather``."""
    if "sample_ids" in batch:
        keys = ("input_ids", "pixel_values", "sample_ids", "position_ids", "labels")
        input_ids, pixel_values, sample_ids, position_ids, labels = (backend.prepare(batch[k]) for k in keys)
        # the mask's form comes from the unwrapped model's config (model may be a DDP / DeepSpeed wrapper)
        mask = attention_mask_for(backend.module, block_causal_mask(sample_ids))
        logits = packed_logits(model, input_ids, pixel_values, mask, position_ids)
        return packed_lm_loss(logits, labels, sample_ids, loss_reduction, loss_reduction_all_gather), {}
    inputs = {k: backend.prepare(batch[k]) for k in ("input_ids", "attention_mask", "labels", "pixel_values")}
    return model(**inputs).loss, {}


def build_dataset(
    args: argparse.Namespace, model, tokenizer, config
) -> VideoInstructionDataset | PackedInstructionDataset:
    settings = SFTSettings(
        template=get_template(config.template),
        tokens_per_frame=model.tokens_per_frame,
        local_num_frames=config.local_num_frames,
        num_frames=args.num_frames,
        image_size=config.image_size,
        max_num=args.max_num,
        max_length=args.max_seq_length,
        backend=args.video_backend,
    )
    samples = VideoInstructionDataset(load_instruction_data(args.data, args.video_root), tokenizer, settings)
    if not args.use_packed_ds:
        return samples
    limits = PackingLimits(args.max_packed_tokens, args.num_images_expected, args.max_buffer_size)
    return PackedInstructionDataset(samples, limits, seed=args.seed)


def check_packing_args(args: argparse.Namespace) -> None:
    """InternVL ignores ``--loss_reduction_all_gather`` on unpacked batches; here asking for it
    without packing is an error rather than a silent no-op."""
    if args.loss_reduction_all_gather and not args.use_packed_ds:
        raise ValueError("--loss_reduction_all_gather normalises the packed loss: it needs --use_packed_ds")


def describe_dataset(dataset: VideoInstructionDataset | PackedInstructionDataset) -> str:
    if isinstance(dataset, PackedInstructionDataset):
        return f"{len(dataset.samples)} conversations in {len(dataset)} packs"
    return f"{len(dataset)} conversations"


def run_finetuning(args: argparse.Namespace) -> Path:
    """Fine-tune ``--model`` on ``--data``; returns the released-layout directory written at the end."""
    check_packing_args(args)
    dist = init_distributed(args.device)
    seed_everything(args.seed, dist.rank)
    model, tokenizer, config = load_pretrained(args.model)
    trainable = configure_trainable(
        model,
        args.freeze_backbone,
        args.freeze_mlp,
        args.freeze_llm,
        args.use_llm_lora,
        args.use_backbone_lora,
    )
    if args.grad_checkpoint:
        enable_grad_checkpointing(model)
    dataset = build_dataset(args, model, tokenizer, config)
    collator = PackedCollator if args.use_packed_ds else SFTCollator
    loader = build_loader(
        dataset,
        args.batch_size,
        train=True,
        num_workers=args.num_workers,
        seed=args.seed,
        collate_fn=collator(tokenizer.pad_token_id),
    )
    per_epoch = updates_per_epoch_or_fail(loader, args, dist)
    global_batch = global_batch_size(args, dist)
    optimizer = optimizer_from_args(args, model, global_batch)
    backend = backend_from_args(args, model, optimizer, dist, zero3_options(args))
    scheduler, wd_schedule = schedules_from_args(args, optimizer, per_epoch, global_batch)
    step = functools.partial(
        sft_step,
        loss_reduction=args.loss_reduction,
        loss_reduction_all_gather=args.loss_reduction_all_gather,
    )
    trainer = Trainer(backend, loader, step, trainer_config_from_args(args), dist, scheduler, wd_schedule)
    if is_main_process():
        trainable_names = set(trainable)
        count = parameter_count(p for n, p in model.named_parameters() if n in trainable_names)
        print(f"{describe_dataset(dataset)}; {count / 1e6:.2f}M trainable parameters", flush=True)
    trainer.fit()
    out = Path(args.output_dir) / RELEASED_DIR
    weights = merged_state_dict(backend.module)  # every rank: ZeRO-3 gathers its partitions collectively
    if is_main_process():
        save_released(backend.module, config, out, tokenizer, state_dict=weights)
        print(f"wrote the fine-tuned model to {out}", flush=True)
    return out
