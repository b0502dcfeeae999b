"""Start any ``run_*.py`` locally (one process or torchrun) or on SLURM (srun or sbatch).

Examples::

    ivtools-launch run_finetuning.py -- --model internvideo2_small_patch14_224 ...
    ivtools-launch --gpus 8 run_finetuning.py -- ...                  # torchrun on this host
    ivtools-launch --slurm --partition video --nodes 4 --gpus 8 run_pretraining.py -- ...
    ivtools-launch --slurm --sbatch --time 72:00:00 ... run_pretraining.py -- ...
    ivtools-launch --dry-run ...                                       # print, run nothing

The training scripts initialise ``torch.distributed`` from either torchrun's or SLURM's
environment (:func:`ivtools.distributed.init_distributed`), so the same script runs both ways.
Every launch sets ``OMP_NUM_THREADS=1`` (data workers otherwise oversubscribe the CPUs) and a
``MASTER_PORT`` of 12000 plus a random offset, so that jobs sharing a node do not collide.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

BASE_PORT = 12000


@dataclass
class LaunchPlan:
    """What a launch runs: environment additions, the command, and an sbatch script if any."""

    env: dict[str, str]
    command: list[str]
    sbatch_script: str | None = None
    notes: list[str] = field(default_factory=list)

    def shell_line(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return f"{env} {shlex.join(self.command)}".strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivtools-launch",
        description="Run a training/evaluation script locally, with torchrun, or on SLURM.",
        usage="%(prog)s [options] SCRIPT [-- SCRIPT_ARGS ...]",
    )
    parser.add_argument("script", help="the run_*.py (or any python file) to start")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments after '--' go to the script")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs (processes) per node")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--slurm", action="store_true", help="launch through SLURM instead of locally")
    parser.add_argument("--sbatch", action="store_true", help="with --slurm: write and submit a batch script")
    parser.add_argument("--partition", "-p", default=None)
    parser.add_argument("--job-name", default=None, help="default: the script's name")
    parser.add_argument("--cpus-per-task", type=int, default=14)
    parser.add_argument("--time", default=None, help="SLURM time limit, e.g. 72:00:00")
    parser.add_argument("--quotatype", default=None, help="SLURM --quotatype (clusters that have it)")
    parser.add_argument("--log-dir", default="logs", help="where sbatch writes its script and output")
    parser.add_argument("--master-port", type=int, default=None, help="default: 12000 + random(0, 20000)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the script")
    parser.add_argument("--dry-run", action="store_true", help="print what would run and exit")
    return parser


def _script_args(raw: list[str]) -> list[str]:
    return raw[1:] if raw and raw[0] == "--" else raw


def plan_launch(args: argparse.Namespace) -> LaunchPlan:
    """Turn parsed options into the exact command (pure: nothing runs here)."""
    if args.gpus < 1 or args.nodes < 1:
        raise ValueError(f"--gpus and --nodes must be positive, got {args.gpus} and {args.nodes}")
    if args.sbatch and not args.slurm:
        raise ValueError("--sbatch needs --slurm")
    if args.nodes > 1 and not args.slurm:
        raise ValueError("several nodes need --slurm (or start torchrun on each node yourself)")
    port = args.master_port if args.master_port is not None else BASE_PORT + random.randint(0, 20000)
    env = {"MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
    script = [args.script, *_script_args(args.script_args)]
    if not args.slurm:
        if args.gpus == 1:
            return LaunchPlan(env, [args.python, "-u", *script])
        torchrun = [
            args.python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={args.gpus}",
        ]
        return LaunchPlan(env, [*torchrun, f"--master_port={port}", *script])
    job = args.job_name or Path(args.script).stem
    srun = ["srun", *_slurm_options(args, job), "--kill-on-bad-exit=1", args.python, "-u", *script]
    if not args.sbatch:
        return LaunchPlan(env, srun)
    return _sbatch_plan(args, job, env, srun)


def _slurm_options(args: argparse.Namespace, job: str) -> list[str]:
    options = [f"--job-name={job}"]
    if args.partition:
        options.append(f"--partition={args.partition}")
    options += [
        f"--nodes={args.nodes}",
        f"--ntasks={args.nodes * args.gpus}",
        f"--ntasks-per-node={args.gpus}",
        f"--gres=gpu:{args.gpus}",
        f"--cpus-per-task={args.cpus_per_task}",
    ]
    if args.time:
        options.append(f"--time={args.time}")
    if args.quotatype:
        options.append(f"--quotatype={args.quotatype}")
    return options


def _sbatch_plan(args: argparse.Namespace, job: str, env: dict[str, str], srun: list[str]) -> LaunchPlan:
    log_dir = Path(args.log_dir)
    script_path = log_dir / f"{job}.sbatch"
    header = [f"#SBATCH {opt}" for opt in _slurm_options(args, job)]
    header.append(f"#SBATCH --output={log_dir / f'{job}-%j.out'}")
    exports = [f"export {k}={v}" for k, v in env.items()]
    # Inside the allocation srun inherits the job's geometry; repeating it would only conflict.
    body = ["srun", "--kill-on-bad-exit=1", *srun[srun.index(args.python) :]]
    text = "\n".join(["#!/usr/bin/env bash", *header, "set -euo pipefail", *exports, shlex.join(body), ""])
    return LaunchPlan(
        env, ["sbatch", str(script_path)], sbatch_script=text, notes=[f"batch script: {script_path}"]
    )


def execute(plan: LaunchPlan) -> int:
    if plan.sbatch_script is not None:
        path = Path(plan.command[-1])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(plan.sbatch_script)
    return subprocess.call(plan.command, env={**os.environ, **plan.env})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        plan = plan_launch(args)
    except ValueError as err:
        parser.error(str(err))
    if args.dry_run:
        if plan.sbatch_script is not None:
            print(plan.sbatch_script, end="")
        print(plan.shell_line())
        return 0
    for note in plan.notes:
        print(f"[ivtools-launch] {note}", file=sys.stderr)
    print(f"[ivtools-launch] {plan.shell_line()}", file=sys.stderr)
    return execute(plan)


if __name__ == "__main__":
    sys.exit(main())
