"""Checkpoints of a ``train.py`` run: written atomically, found again, pruned, resumed (not Hub code).

Layout: ``OUT/checkpoints/step_00000100/`` holds what ``accelerator.save_state`` writes (model, optimizer,
scheduler, gradient scaler, the RNG states of every process) plus ``trainer_state.json`` (epoch, batches
of that epoch already consumed, optimizer steps, the epoch's running loss, the finished epochs' logs).

A checkpoint is written to ``OUT/checkpoints/.tmp-step_00000100``, its files are synced to disk, and only
then is the folder renamed; a crash while saving leaves at most a ``.tmp-*`` folder, which is never picked
up and is removed by the next save. Checkpoints of a multi-machine run assume a file system every machine
shares (as ``accelerator.save_state`` does).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

PREFIX = "step_"
PARTIAL_PREFIX = ".tmp-"
STATE_FILE = "trainer_state.json"


class CheckpointError(ValueError):
    """``--resume-from`` names something that is not a checkpoint of this trainer."""


@dataclass
class TrainerState:
    """Where a run stands; saved next to Accelerate's state in every checkpoint."""

    global_step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch in progress (0-based)
    batches_done: int = 0  # batches of `epoch` each process has consumed
    loss_sum: float = 0.0  # the epoch's batch losses so far, summed over batches and processes
    loss_count: int = 0  # batches per process behind `loss_sum`
    history: list[dict] = field(default_factory=list)  # one log per finished epoch


def checkpoint_dir(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run, oldest first (partial ``.tmp-*`` folders never count)."""
    root = checkpoint_dir(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def find_checkpoint(output_dir: str | os.PathLike, resume_from: str) -> Path | None:
    """``--resume-from``: ``latest`` -> the newest complete checkpoint in OUT (``None`` when there is none yet,
    so a job script can always pass it); a folder -> that folder, which must be a checkpoint."""
    if resume_from == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume_from)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(
            f"--resume-from {resume_from}: not a checkpoint of train.py (no {STATE_FILE} in it); give a folder "
            f"such as {checkpoint_dir(output_dir) / (PREFIX + '00000100')} or `latest`"
        )
    return path


def _sync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def prune(checkpoint: Path) -> None:
    """Delete a checkpoint atomically: rename it to a ``.tmp-*`` name first (never counted as complete, removed
    by the next save), then delete; an interruption cannot leave a half-deleted checkpoint that still counts."""
    doomed = checkpoint.parent / f"{PARTIAL_PREFIX}pruned-{checkpoint.name}"
    os.replace(checkpoint, doomed)
    shutil.rmtree(doomed)


def save_checkpoint(
    accelerator: Accelerator, output_dir: str | os.PathLike, state: TrainerState, keep: int
) -> Path:
    """Save the run's full state (every process takes part); keep the newest ``keep`` checkpoints (0 = all)."""
    root = checkpoint_dir(output_dir)
    name = f"{PREFIX}{state.global_step:08d}"
    final, partial = root / name, root / f"{PARTIAL_PREFIX}{name}"
    if accelerator.is_main_process:
        for leftover in root.glob(f"{PARTIAL_PREFIX}*"):  # from a crash during an earlier save
            shutil.rmtree(leftover)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
        _sync_tree(partial)
        if final.exists():  # the same step saved by an earlier, interrupted attempt
            shutil.rmtree(final)
        os.replace(partial, final)
        if keep > 0:
            for old in list_checkpoints(output_dir)[:-keep]:
                prune(old)
    accelerator.wait_for_everyone()
    return final


def verify_checkpoint(path: Path) -> None:
    """Read every file of a checkpoint once (the trainer state, safetensors headers and tensors, pickled optimizer /
    scheduler / RNG states) and raise :class:`CheckpointError` naming the first that is damaged. Accelerate skips
    an unreadable RNG state with an info line; a resume that promises identical results cannot."""
    from safetensors import safe_open

    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        try:
            if file.name == STATE_FILE:
                TrainerState(**json.loads(file.read_text(encoding="utf-8")))
            elif file.suffix == ".safetensors":
                with safe_open(str(file), framework="pt") as handle:
                    for key in handle.keys():
                        handle.get_tensor(key)
            elif file.suffix in (".bin", ".pkl", ".pt", ".pth"):
                torch.load(file, map_location="cpu", weights_only=False)
        except Exception as err:  # any reader's error: the file is damaged
            raise CheckpointError(f"{file}: damaged checkpoint file ({type(err).__name__}: {err})") from None


def load_checkpoint(accelerator: Accelerator, path: Path) -> TrainerState:
    """Restore model, optimizer, scheduler and RNG states (after ``accelerator.prepare``) and the run's place."""
    accelerator.load_state(str(path))
    return TrainerState(**json.loads((path / STATE_FILE).read_text(encoding="utf-8")))


def rng_states() -> dict:
    """Every global RNG a training step may draw from (for :func:`set_rng_states`)."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])
