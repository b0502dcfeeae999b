"""Random-number and optimizer state around a resume."""

import random

import numpy as np
import pytest
import torch

from ivtools.train.resume import rng_state, set_rng_state, steps_beside_parameters


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_rng_state_round_trip_repeats_every_generator():
    state = rng_state()
    first = _draws()
    set_rng_state(state)
    second = _draws()
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])


@pytest.mark.gpu
def test_cuda_rng_state_is_the_current_device_only():
    # One state per rank's own device: a run resumed with another number of visible GPUs loads it.
    state = rng_state()
    assert isinstance(state["cuda"], torch.Tensor)
    first = torch.rand(4, device="cuda")
    set_rng_state(state)
    assert torch.equal(first, torch.rand(4, device="cuda"))


def test_step_counters_move_to_their_parameters_device():
    # What DeepSpeed's universal-checkpoint loader leaves behind: counters on the CPU, parameters
    # elsewhere (meta stands in for a GPU here).
    param = torch.nn.Parameter(torch.zeros(3, device="meta"))
    optimizer = torch.optim.AdamW([param])
    optimizer.state[param] = {"step": torch.tensor(7.0), "exp_avg": torch.zeros(3, device="meta")}
    steps_beside_parameters(optimizer)
    step = optimizer.state[param]["step"]
    assert step.device.type == "meta" and step.shape == ()
