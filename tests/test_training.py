"""training.py: the schedule keeps its length when Accelerate runs several processes."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from modeling_ade.settings import TrainSettings
from modeling_ade.training import make_optimizer


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 2)


def half_way_learning_rate() -> None:
    accelerator = Accelerator(cpu=True)
    args = TrainSettings(
        output_dir="unused", model="unused", epochs=1, max_length=8, learning_rate=1e-3, weight_decay=0.0
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
    """Run by torchrun in 2 fresh processes (a fork of this pytest process could hang in OpenMP)."""
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", __file__]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


if __name__ == "__main__":
    half_way_learning_rate()
