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
import time
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from tqdm.auto import tqdm

from .checkpointing import (
    CheckpointError,
    TrainerState,
    checkpoint_dir,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
    verify_checkpoint,
)
from .optim import build_param_groups, build_scheduler, describe_param_groups, resolve_warmup_steps
from .settings import TrainSettings

logger = get_logger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the run stops and saves nothing final."""


def check_finite(loss_sum: torch.Tensor, where: str) -> None:
    """Raise :class:`NonFiniteLossError` when ``loss_sum`` (a running sum of batch losses) is NaN or infinite."""
    value = float(loss_sum)
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"the training loss became {value} ({where}); the run stopped and saved no model and no metrics. "
            "Lower --learning-rate, check --max-length and the data, or try --mixed-precision no."
        )


class LaunchError(RuntimeError):
    """The processes of a launch would not train together (see :func:`check_launch`)."""


def check_launch(num_processes: int, environ=os.environ) -> None:
    """Refuse N processes that would each train alone.

    ``torchrun`` (or ``accelerate launch`` with a config that does not say CPU) sets ``WORLD_SIZE=N``; on a
    machine without GPUs a plain ``Accelerator()`` then does not join the process group and every process
    trains its own copy on all the data, silently. ``num_processes`` is what Accelerate ended up with.
    """
    world_size = int(environ.get("WORLD_SIZE", "1") or 1)
    if world_size > 1 and num_processes != world_size:
        raise LaunchError(
            f"this run was launched as {world_size} processes (WORLD_SIZE={world_size}) but Accelerate sees "
            f"{num_processes} per process, so each would train its own copy of the model. Without GPUs, "
            "distributed training needs ACCELERATE_USE_CPU=true, e.g. `ACCELERATE_USE_CPU=true torchrun "
            "--nproc_per_node 2 train.py ...` (README: Scaling up); with GPUs, check that they are visible "
            "(CUDA_VISIBLE_DEVICES)."
        )


def make_accelerator(settings: TrainSettings) -> Accelerator:
    """The run's ``Accelerator``: mixed precision, gradient accumulation, ``torch.compile`` and, when asked
    for and installed, TensorBoard. Options left unset (``None``) come from ``accelerate launch`` / its config.
    Raises :class:`LaunchError` for a multi-process launch that would not train together."""
    log_with = None
    if settings.report_to == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "--report-to tensorboard needs the `tensorboard` package (pip install tensorboard)"
            )
        log_with = "tensorboard"
    if not torch.distributed.is_initialized():
        # Accelerate keeps its state in a process-wide singleton that ignores the options of every later
        # Accelerator: a second run in the same process (a notebook, a test) would inherit the first run's
        # torch.compile and mixed precision. One process and no process group yet: start from a clean state.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(
        mixed_precision=settings.mixed_precision,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        dynamo_backend="inductor" if settings.torch_compile else None,
        log_with=log_with,
        project_dir=str(Path(settings.output_dir) / "logs"),
    )
    check_launch(accelerator.num_processes)
    logger.info(
        f"{accelerator.num_processes} process(es), {accelerator.distributed_type}, device {accelerator.device}, "
        f"mixed precision {accelerator.mixed_precision}, gradient accumulation "
        f"{settings.gradient_accumulation_steps}, torch.compile {'on' if settings.torch_compile else 'off'}",
        main_process_only=True,
    )
    return accelerator


def make_optimizer(
    model: torch.nn.Module,
    settings: TrainSettings,
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
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        layer_decay=settings.layer_decay,
        head_learning_rate=settings.head_learning_rate,
        crf_learning_rate=settings.crf_learning_rate,
        encoder_attr=encoder_attr,
    )
    if accelerator.is_main_process:
        logger.info("parameter groups:\n" + describe_param_groups(groups))
    # fused: one kernel for every parameter (what the stock Trainer's default adamw_torch_fused does); 6x faster
    # per step than the for-each loop on one CPU thread (BENCHMARKS 11.3), same update up to rounding
    fused = all(p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate, fused=fused)
    warmup = resolve_warmup_steps(num_training_steps, settings.warmup_steps, settings.warmup_ratio)
    # `accelerator.prepare` makes the scheduler step `num_processes` times per optimizer step (it assumes a
    # schedule counted in single-process steps), so count the schedule in those units.
    scale = accelerator.num_processes
    scheduler = build_scheduler(
        optimizer,
        total_steps=num_training_steps * scale,
        warmup_steps=warmup * scale,
        schedule=settings.scheduler,
    )
    return optimizer, scheduler


def _set_epoch(loader, epoch: int) -> None:
    """Give the epoch to the prepared loader (it re-applies its own count on every ``iter``) and to our batch
    sampler, which Accelerate's ``set_epoch`` does not reach inside a ``BatchSamplerShard`` (several processes)."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    sampler = getattr(loader, "batch_sampler", None)
    sampler = getattr(sampler, "batch_sampler", sampler)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def _resume(accelerator: Accelerator, settings: TrainSettings, batches_per_epoch: int) -> TrainerState:
    """``--resume-from``: load the checkpoint into the prepared objects and return where the run stands (a fresh
    state when ``latest`` finds no checkpoint yet). Every file is verified first (:func:`verify_checkpoint`): a
    damaged named checkpoint is refused; with ``latest`` the newest intact one is used, and the log says which
    was skipped and why."""
    if settings.resume_from == "latest":
        candidates = list(reversed(list_checkpoints(settings.output_dir)))
        if not candidates:
            logger.info(
                f"--resume-from latest: no checkpoint in {checkpoint_dir(settings.output_dir)} yet, training from the "
                "start",
                main_process_only=True,
            )
            return TrainerState()
    else:
        candidates = [find_checkpoint(settings.output_dir, settings.resume_from)]
    for number, path in enumerate(candidates):
        try:
            verify_checkpoint(path)
        except CheckpointError as err:
            if number + 1 == len(candidates):
                raise CheckpointError(f"{err}; no intact checkpoint to resume from") from None
            logger.warning(
                f"--resume-from latest: {err}; falling back to the previous checkpoint {candidates[number + 1]}",
                main_process_only=True,
            )
            continue
        state = load_checkpoint(accelerator, path)
        logger.info(
            f"resumed from {path}: step {state.global_step}, epoch {state.epoch + 1}, "
            f"{state.batches_done} of its {batches_per_epoch} batches done",
            main_process_only=True,
        )
        return state
    raise AssertionError("unreachable")


def fit(
    accelerator: Accelerator,
    model: torch.nn.Module,
    train_loader,
    settings: TrainSettings,
    *,
    description: str = "train",
    on_epoch_end: Callable[[int], dict] | None = None,
    encoder_attr: str = "encoder",
) -> list[dict]:
    """Train ``settings.epochs`` epochs; returns one log dict per epoch (mean loss, seconds, and what ``on_epoch_end``
    adds).

    ``train_loader`` is not yet prepared; the model is prepared here together with optimizer and scheduler.
    ``encoder_attr`` goes to :func:`make_optimizer`. Gradient accumulation is Accelerate's
    (``accelerator.accumulate``); one *step* is one optimizer step. With ``--checkpoint-every N`` the full
    state is saved every N steps (:mod:`modeling_ade.checkpointing`); with ``--resume-from`` the run goes on
    from a checkpoint: same batches, same RNG, so it ends where an uninterrupted run ends.
    """
    accumulation = settings.gradient_accumulation_steps
    batches_per_epoch = math.ceil(len(train_loader) / max(accelerator.num_processes, 1))  # per process
    steps_per_epoch = math.ceil(batches_per_epoch / accumulation)
    optimizer, scheduler = make_optimizer(
        model, settings, steps_per_epoch * settings.epochs, accelerator, encoder_attr=encoder_attr
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)

    state = _resume(accelerator, settings, batches_per_epoch) if settings.resume_from else TrainerState()
    for epoch in range(state.epoch, settings.epochs):
        model.train()
        _set_epoch(train_loader, epoch)
        loader, pending_rng = train_loader, None
        if state.batches_done >= batches_per_epoch:  # saved after the epoch's last batch
            loader = []
        elif state.batches_done:
            loader = accelerator.skip_first_batches(train_loader, state.batches_done)
            # Starting a data loader draws a seed from the global RNG; the uninterrupted run drew it at the
            # start of the epoch, so the checkpoint's RNG state is put back once the loader has started.
            pending_rng = rng_states()
            accelerator.step = state.batches_done % accumulation
        started = time.perf_counter()
        total = torch.tensor(state.loss_sum / accelerator.num_processes, device=accelerator.device)
        count = state.loss_count
        bar = tqdm(
            loader,
            desc=f"{description} epoch {epoch + 1}/{settings.epochs}",
            initial=state.batches_done,
            total=batches_per_epoch,
            disable=not accelerator.is_local_main_process,
        )
        for batch in bar:
            if pending_rng is not None:
                set_rng_states(pending_rng)
                pending_rng = None
            with accelerator.accumulate(model):
                outputs = model(**batch)
                accelerator.backward(outputs.loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            total += outputs.loss.detach()
            count += 1
            state.batches_done += 1
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            if state.global_step % settings.logging_steps == 0:
                check_finite(total, f"epoch {epoch + 1}, step {state.global_step}")
                logs = {"train/loss": outputs.loss.item(), "train/lr": scheduler.get_last_lr()[0]}
                for key in ("ner_loss", "relation_loss"):
                    if getattr(outputs, key, None) is not None:
                        logs[f"train/{key}"] = getattr(outputs, key).item()
                accelerator.log(logs, step=state.global_step)
                bar.set_postfix(loss=f"{logs['train/loss']:.4f}")
            if settings.checkpoint_every and state.global_step % settings.checkpoint_every == 0:
                check_finite(total, f"epoch {epoch + 1}, step {state.global_step}, before a checkpoint")
                state.loss_sum, state.loss_count = accelerator.reduce(total.clone(), "sum").item(), count
                save_checkpoint(accelerator, settings.output_dir, state, settings.keep_checkpoints)
        check_finite(accelerator.reduce(total.clone(), "sum"), f"epoch {epoch + 1}")
        epoch_log = {
            "epoch": epoch + 1,
            "train_loss": accelerator.reduce(total, "mean").item() / max(count, 1),
            "epoch_seconds": time.perf_counter() - started,  # of this process; a resumed epoch's rest only
        }
        if on_epoch_end is not None:
            epoch_log.update(on_epoch_end(epoch))
        accelerator.log({f"epoch/{k}": v for k, v in epoch_log.items()}, step=state.global_step)
        logger.info(f"{description} epoch {epoch + 1}: {epoch_log}", main_process_only=True)
        state.history.append(epoch_log)
        state.epoch, state.batches_done, state.loss_sum, state.loss_count = epoch + 1, 0, 0.0, 0
    return state.history


def save_run(
    accelerator: Accelerator,
    model,
    tokenizer,
    settings: TrainSettings,
    metrics: dict,
    *,
    pipeline_task: str | None = None,
) -> None:
    """The end of every task's run; call it on every process.

    The state dict is gathered with ``accelerator.get_state_dict`` on every process (as Accelerate needs under
    sharded training), then the main process writes to ``settings.output_dir``: the full model (its code, and
    for a custom ``pipeline_task`` the pipeline's code and ``custom_pipelines``, as ``pipeline(...).save_pretrained``
    writes them) or, for a LoRA-wrapped model, the adapter folder (:func:`modeling_ade.lora.save_adapter`); the
    tokenizer; ``metrics.json``; ``training_args.json`` (:func:`run_record`).
    """
    from .artifacts import make_readable
    from .lora import record_custom_pipeline, save_adapter

    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        out = Path(settings.output_dir)
        out.mkdir(parents=True, exist_ok=True)  # a fold's folder of a --cv run is made here
        unwrapped = accelerator.unwrap_model(model)
        if getattr(unwrapped, "peft_config", None) is not None:  # the adapter + what rebuilds its base
            save_adapter(unwrapped, out, tokenizer, pipeline_task)
        else:
            if pipeline_task is not None:
                record_custom_pipeline(unwrapped.config, pipeline_task, out)
            unwrapped.save_pretrained(out, state_dict=state_dict)
            tokenizer.save_pretrained(out)
        write_json(out / "metrics.json", metrics)
        write_json(out / "training_args.json", run_record(settings))
        make_readable(out)
    accelerator.wait_for_everyone()
    accelerator.end_training()


def loggable(values: dict) -> dict:
    """Arguments as JSON / tracker friendly scalars (``None`` left out, others as strings)."""
    return {
        k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in values.items() if v is not None
    }


LOCAL_PATH_ARGUMENTS = ("output_dir", "data_dir", "resume_from")
"""Arguments that hold paths of this machine: left out of the ``training_args.json`` that travels with a model."""


def run_record(settings: TrainSettings) -> dict:
    """The run's settings for ``training_args.json``: :func:`loggable`, without :data:`LOCAL_PATH_ARGUMENTS`."""
    return loggable({k: v for k, v in settings.record().items() if k not in LOCAL_PATH_ARGUMENTS})


def write_json(path: str | os.PathLike, payload: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
