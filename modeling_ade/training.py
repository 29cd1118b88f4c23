"""The Accelerate-driven training loop shared by every task of ``train.py`` (not Hub code).

One loop, task-agnostic: the task gives a model whose ``forward(**batch)`` returns ``.loss``, a training
``DataLoader`` and an evaluation callback. It runs unchanged under ``python train.py`` and
``accelerate launch train.py`` (data sharded by ``accelerator.prepare``; logging and saving on the main
process only).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from tqdm.auto import tqdm

from .optim import build_param_groups, build_scheduler, describe_param_groups, resolve_warmup_steps

logger = get_logger(__name__)


def make_accelerator(args) -> Accelerator:
    """An ``Accelerator`` with the run's mixed precision and, when installed and asked for, TensorBoard."""
    log_with = None
    if args.report_to == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "--report-to tensorboard needs the `tensorboard` package (pip install tensorboard)"
            )
        log_with = "tensorboard"
    return Accelerator(
        mixed_precision=args.mixed_precision,
        log_with=log_with,
        project_dir=str(Path(args.output_dir) / "logs"),
    )


def make_optimizer(
    model: torch.nn.Module,
    args,
    num_training_steps: int,
    accelerator: Accelerator,
    encoder_attr: str = "encoder",
):
    """AdamW over the shared parameter groups (layer-wise decay, no decay on biases/norms) + schedule.

    ``num_training_steps`` counts optimizer steps of one process; warm-up ``--warmup-steps`` too.

    ``encoder_attr`` names the pre-trained encoder inside ``model`` (``model.base_model_prefix`` for a
    ``transformers`` head model such as ``BertForMaskedLM``; see ``optim.build_param_groups``).
    """
    groups = build_param_groups(
        model,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        layer_decay=args.layer_decay,
        head_learning_rate=getattr(args, "head_learning_rate", None),
        crf_learning_rate=getattr(args, "crf_learning_rate", None),
        encoder_attr=encoder_attr,
    )
    if accelerator.is_main_process:
        logger.info("parameter groups:\n" + describe_param_groups(groups))
    optimizer = torch.optim.AdamW(groups, lr=args.learning_rate)
    warmup = resolve_warmup_steps(num_training_steps, args.warmup_steps, args.warmup_ratio)
    # `accelerator.prepare` makes the scheduler step `num_processes` times per optimizer step (it assumes a
    # schedule counted in single-process steps), so count the schedule in those units.
    scale = accelerator.num_processes
    scheduler = build_scheduler(
        optimizer,
        total_steps=num_training_steps * scale,
        warmup_steps=warmup * scale,
        schedule=args.scheduler,
    )
    return optimizer, scheduler


def fit(
    accelerator: Accelerator,
    model: torch.nn.Module,
    train_loader,
    args,
    *,
    description: str = "train",
    on_epoch_end: Callable[[int], dict] | None = None,
    encoder_attr: str = "encoder",
) -> list[dict]:
    """Train ``args.epochs`` epochs; returns one log dict per epoch (mean loss, and what ``on_epoch_end`` adds).

    ``train_loader`` is not yet prepared; the model is prepared here together with optimizer and scheduler.
    ``encoder_attr`` goes to :func:`make_optimizer`.
    """
    steps_per_epoch = math.ceil(len(train_loader) / max(accelerator.num_processes, 1))
    optimizer, scheduler = make_optimizer(
        model, args, steps_per_epoch * args.epochs, accelerator, encoder_attr=encoder_attr
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    history, step = [], 0
    for epoch in range(args.epochs):
        model.train()
        sampler = getattr(train_loader, "batch_sampler", None)
        sampler = getattr(sampler, "batch_sampler", sampler)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        total, count = torch.zeros((), device=accelerator.device), 0
        bar = tqdm(
            train_loader,
            desc=f"{description} epoch {epoch + 1}/{args.epochs}",
            disable=not accelerator.is_local_main_process,
        )
        for batch in bar:
            outputs = model(**batch)
            accelerator.backward(outputs.loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            total += outputs.loss.detach()
            count += 1
            if step % args.logging_steps == 0:
                logs = {"train/loss": outputs.loss.item(), "train/lr": scheduler.get_last_lr()[0]}
                for key in ("ner_loss", "relation_loss"):
                    if getattr(outputs, key, None) is not None:
                        logs[f"train/{key}"] = getattr(outputs, key).item()
                accelerator.log(logs, step=step)
                bar.set_postfix(loss=f"{logs['train/loss']:.4f}")
        epoch_log = {
            "epoch": epoch + 1,
            "train_loss": accelerator.reduce(total, "mean").item() / max(count, 1),
        }
        if on_epoch_end is not None:
            epoch_log.update(on_epoch_end(epoch))
        accelerator.log({f"epoch/{k}": v for k, v in epoch_log.items()}, step=step)
        logger.info(f"{description} epoch {epoch + 1}: {epoch_log}", main_process_only=True)
        history.append(epoch_log)
    return history


def loggable(values: dict) -> dict:
    """Arguments as JSON / tracker friendly scalars (``None`` left out, others as strings)."""
    return {
        k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in values.items() if v is not None
    }


def write_json(path: str | os.PathLike, payload: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
