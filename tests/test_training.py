"""training.py: the schedule keeps its length when Accelerate runs several processes."""

import argparse

import torch
from accelerate import Accelerator, debug_launcher

from modeling_ade.training import make_optimizer


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 2)


def half_way_learning_rate() -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # a forked child inherits the parent's state
    accelerator = Accelerator(cpu=True)
    args = argparse.Namespace(
        learning_rate=1e-3,
        weight_decay=0.0,
        layer_decay=1.0,
        warmup_steps=None,
        warmup_ratio=None,
        scheduler="linear",
    )
    optimizer, scheduler = make_optimizer(Toy(), args, 10, accelerator)  # 10 optimizer steps per process
    optimizer, scheduler = accelerator.prepare(optimizer, scheduler)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    lr = optimizer.param_groups[0]["lr"]
    assert accelerator.num_processes == 2
    assert abs(lr - 0.5e-3) < 1e-9, f"after 5 of 10 steps the linear schedule should be at half, got {lr}"


def test_schedule_length_is_in_optimizer_steps_under_two_processes():
    debug_launcher(half_way_learning_rate, num_processes=2)
