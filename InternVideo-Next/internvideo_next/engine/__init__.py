"""Training loops of the two pretraining stages (built on ``ivtools.train.Trainer``)."""

from .pretrain import build_student, prepare_run, run_pretraining
from .stage1 import Stage1Step, run_stage1
from .stage2 import MomentumTeacher, Stage2Step, run_stage2

__all__ = [
    "MomentumTeacher",
    "Stage1Step",
    "Stage2Step",
    "build_student",
    "prepare_run",
    "run_pretraining",
    "run_stage1",
    "run_stage2",
]
