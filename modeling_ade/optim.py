"""Optimizer parameter groups with layer-wise learning-rate decay (LLRD), and warm-up schedules.

Every training task builds its optimizer the same way::

    groups = build_param_groups(model, learning_rate=4e-5, weight_decay=0.01, layer_decay=1 / 1.2)
    logger.info("parameter groups:\\n%s", describe_param_groups(groups))
    optimizer = torch.optim.AdamW(groups, fused=True)
    scheduler = build_scheduler(optimizer, total_steps=n, warmup_steps=w, schedule="linear")

The task models keep their pre-trained encoder (built with ``AutoModel``) at the attribute ``encoder``;
every other parameter is *head*, and parameters of modules whose qualified name contains ``crf`` are
the *CRF*. The rules (like nanoGPT's ``configure_optimizers``, stated once, here):

**Depth** of an encoder parameter (:func:`encoder_layer_depths`). The encoder's blocks are its
``nn.ModuleList`` holding the most parameters (``encoder.layer`` for BERT / RoBERTa / XLM-R / ELECTRA /
DeBERTa-v2, ``transformer.layer`` for DistilBERT, ``block`` for T5 ...). With ``L`` blocks:

- ``0``: encoder parameters registered before the first block: the embeddings, ELECTRA's
  ``embeddings_project``, ALBERT's ``embedding_hidden_mapping_in``;
- ``i + 1``: parameters of block ``i`` (0-based, as in the module name ``layer.i``);
- ``L + 1``: encoder parameters registered after the last block: the pooler, final norms,
  DeBERTa-v2's ``rel_embeddings`` shared by every block (as BEiT puts its shared ``rel_pos_bias``).

"Registered" means the order of ``named_parameters()``, which in Hugging Face encoders is the order
of the forward pass. ALBERT shares one block (group) across all its layers: its blocks are the
``num_hidden_groups`` distinct groups (usually 1), so ``L`` counts distinct weights, not applications,
and LLRD on ALBERT has only three levels (embeddings, shared block, pooler).

**Learning rate** (the BEiT / MAE convention): an encoder parameter at depth ``d`` gets ::

    learning_rate * layer_decay ** (L + 1 - d)

so the pooler (depth ``L + 1``) gets ``learning_rate``, the top block ``learning_rate * layer_decay``,
each block below it ``layer_decay`` times the rate of the block above, and the embeddings
``learning_rate * layer_decay ** (L + 1)``. The head gets ``head_learning_rate`` (default
``learning_rate``, i.e. the head sits at depth ``L + 1``), the CRF ``crf_learning_rate`` (default the
head's rate). The BERT-CRF paper divides each lower block's rate by ``k = 1.2`` from a base of 4e-5:
``learning_rate=4e-5, layer_decay=1/1.2`` (~0.8333). ``layer_decay=1.0`` turns LLRD off.

**Weight decay** applies to every trainable parameter except: parameters with fewer than two
dimensions (biases, norm scales), parameters named ``*bias``, parameters of norm modules
(``nn.LayerNorm`` or any module whose class name contains ``Norm``: ``RMSNorm``, ``T5LayerNorm``...),
and all CRF parameters (the transition scores are log-potentials, not weights to shrink to 0).
Embedding matrices are decayed, as in nanoGPT and the ``transformers`` Trainer.

Only parameters with ``requires_grad=True`` are grouped, so a PEFT / LoRA model gets groups for its
adapters (and ``modules_to_save``) alone; the encoder is found at ``encoder_attr`` even under a
wrapper prefix such as PEFT's ``base_model.model.``, and depths are assigned by module identity, so
``base_model.model.encoder.encoder.layer.3.attention.self.query.lora_A.default.weight`` is in block 3.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "SCHEDULES",
    "EncoderDepths",
    "build_param_groups",
    "build_scheduler",
    "describe_param_groups",
    "encoder_layer_depths",
    "lr_multiplier",
    "resolve_warmup_steps",
]

SCHEDULES = ("linear", "cosine", "constant")


# ----------------------------------------------------------------------------------------------------
# encoder depths


@dataclass(frozen=True)
class EncoderDepths:
    """Depth of every encoder parameter (see the module docstring for the numbering).

    Attributes:
        depths: full parameter name (as in ``model.named_parameters()``) -> depth in ``[0, L + 1]``,
            for every encoder parameter, trainable or not.
        num_layers: ``L``, the number of blocks in the encoder's block list.
        encoder_name: qualified name of the encoder module in the model (``""`` for the model itself).
        blocks_name: qualified name of the block ``nn.ModuleList`` inside the model.
    """

    depths: dict[str, int]
    num_layers: int
    encoder_name: str
    blocks_name: str

    @property
    def top_depth(self) -> int:
        """``L + 1``: the depth of the pooler / final norms, the exponent base of the lr formula."""
        return self.num_layers + 1


def _qualified_name(model: nn.Module, module: nn.Module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError(f"module {type(module).__name__} is not a submodule of {type(model).__name__}")


def _is_stack_of_bare_encoder(model: nn.Module, name: str) -> bool:
    """Whether ``name`` is the block stack of a bare ``AutoModel`` (``BertModel.encoder``), whose
    embeddings are its sibling: a ``transformers`` model that is its own ``base_model`` and has an
    ``embeddings`` child."""
    parent_name, _, _ = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    return getattr(parent, "base_model", None) is parent and isinstance(
        getattr(parent, "embeddings", None), nn.Module
    )


def _resolve_encoder(model: nn.Module, encoder_attr: str) -> tuple[str, nn.Module]:
    """Find the encoder at ``encoder_attr``, also under a wrapper prefix (``base_model.model.``)."""
    hint = ""
    prefix = getattr(model, "base_model_prefix", "")
    if prefix and isinstance(getattr(model, prefix, None), nn.Module):
        hint = f"; for a transformers head model pass encoder_attr=model.base_model_prefix ({prefix!r})"
    try:
        encoder = model.get_submodule(encoder_attr)
    except AttributeError:
        # Outermost module whose qualified name ends with the attribute: PEFT's
        # base_model.model.encoder, not the encoder's own inner base_model.model.encoder.encoder;
        # never the block stack of a bare encoder (BertForMaskedLM's bert.encoder).
        matches = [
            (name, module)
            for name, module in model.named_modules()
            if name.endswith("." + encoder_attr) and not _is_stack_of_bare_encoder(model, name)
        ]
        if not matches:
            children = ", ".join(name for name, _ in model.named_children()) or "none"
            raise ValueError(
                f"encoder_attr={encoder_attr!r}: {type(model).__name__} has no submodule named "
                f"{encoder_attr!r}, directly or under a wrapper prefix (its children: {children}){hint}"
            ) from None
        return min(matches, key=lambda item: item[0].count("."))
    name = _qualified_name(model, encoder)
    if name and _is_stack_of_bare_encoder(model, name):
        raise ValueError(
            f"encoder_attr={encoder_attr!r} names the block stack {name!r} of the bare encoder "
            f"{type(model.get_submodule(name.rpartition('.')[0])).__name__}, without its embeddings: "
            "pass the encoder itself (encoder_attr='' for a bare encoder)"
        )
    return name, encoder


def _find_block_list(encoder: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The encoder's ``nn.ModuleList`` holding the most parameters (outermost on ties), or None."""
    best: tuple[tuple[int, int], str, nn.ModuleList] | None = None
    for name, module in encoder.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        numel = sum(p.numel() for p in module.parameters())
        if numel == 0:
            continue
        key = (numel, -name.count("."))
        if best is None or key > best[0]:
            best = (key, name, module)
    return None if best is None else (best[1], best[2])


def encoder_layer_depths(model: nn.Module, encoder_attr: str = "encoder") -> EncoderDepths:
    """Depth of each encoder parameter: embeddings 0, block ``i`` is ``i + 1``, above the blocks ``L + 1``.

    Args:
        model: the task model; its encoder is the submodule at ``encoder_attr`` (found also under a
            wrapper prefix such as PEFT's ``base_model.model.``).
        encoder_attr: attribute (or dotted path) of the encoder; ``""`` for a bare encoder. For a
            ``transformers`` head model (``BertForMaskedLM``) pass ``model.base_model_prefix``.
            Do not pass a bare ``BertModel`` with ``"encoder"``: that is its ``BertEncoder``, and the
            embeddings would count as head.

    Returns:
        :class:`EncoderDepths`; ``depths`` covers every encoder parameter (frozen ones too), keyed by
        its name in ``model.named_parameters()``. Head parameters are not in it.

    Raises:
        ValueError: no submodule at ``encoder_attr``, or the encoder has no ``nn.ModuleList`` of blocks.
    """
    encoder_name, encoder = _resolve_encoder(model, encoder_attr)
    found = _find_block_list(encoder)
    if found is None:
        raise ValueError(
            f"cannot identify the transformer blocks of encoder {encoder_name!r} "
            f"({type(encoder).__name__}): it has no nn.ModuleList of blocks with parameters, so "
            "layer-wise lr decay is undefined for it; pass layer_decay=1.0"
        )
    blocks_rel_name, blocks = found
    num_layers = len(blocks)

    block_depth: dict[int, int] = {}  # id(param) -> i + 1
    for index, block in enumerate(blocks):
        for param in block.parameters():
            block_depth.setdefault(id(param), index + 1)

    depth_by_id: dict[int, int] = {}
    seen_block = False
    for param in encoder.parameters():
        if id(param) in block_depth:
            seen_block = True
            depth_by_id[id(param)] = block_depth[id(param)]
        else:
            depth_by_id[id(param)] = num_layers + 1 if seen_block else 0

    depths = {name: depth_by_id[id(p)] for name, p in model.named_parameters() if id(p) in depth_by_id}
    prefix = f"{encoder_name}." if encoder_name else ""
    return EncoderDepths(
        depths=depths,
        num_layers=num_layers,
        encoder_name=encoder_name,
        blocks_name=prefix + blocks_rel_name,
    )


# ----------------------------------------------------------------------------------------------------
# parameter groups


def _check_rate(argument: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{argument} must be a finite number >= 0, got {value!r}")


def _owning_modules(model: nn.Module) -> dict[int, nn.Module]:
    """id(param) -> the module that registers it directly."""
    owners: dict[int, nn.Module] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            owners.setdefault(id(param), module)
    return owners


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "norm" in type(module).__name__.lower()


def build_param_groups(
    model: nn.Module,
    *,
    learning_rate: float,
    weight_decay: float,
    layer_decay: float = 1.0,
    head_learning_rate: float | None = None,
    crf_learning_rate: float | None = None,
    encoder_attr: str = "encoder",
) -> list[dict]:
    """Optimizer parameter groups: encoder by depth (LLRD), head, CRF; decay / no-decay split.

    Rates (``L`` encoder blocks, depth ``d`` as in :func:`encoder_layer_depths`):

    - encoder parameter at depth ``d``: ``learning_rate * layer_decay ** (L + 1 - d)``; pooler
      ``learning_rate``, top block ``learning_rate * layer_decay``, embeddings
      ``learning_rate * layer_decay ** (L + 1)``. Paper (BERT-CRF, k = 1.2): ``learning_rate=4e-5,
      layer_decay=1/1.2``. With ``layer_decay=1.0`` the whole encoder gets ``learning_rate`` and its
      blocks need not be identifiable;
    - head (outside the encoder, not CRF): ``head_learning_rate``, default ``learning_rate``;
    - CRF (a module whose qualified name contains ``crf``, outside the encoder):
      ``crf_learning_rate``, default the head's rate.

    Weight decay ``weight_decay`` except 0 for: < 2-D parameters, ``*bias``, parameters of norm
    modules (``nn.LayerNorm`` or a class name containing ``Norm``), every CRF parameter.

    Only ``requires_grad`` parameters are grouped; each is in exactly one group, in
    ``model.named_parameters()`` order. Parameters of one section and depth with equal (lr, weight
    decay) share a group; with ``layer_decay=1.0`` the encoder is one section at all depths. No
    group is empty.

    Args:
        model: the task model (PEFT-wrapped or not).
        learning_rate: base rate (>= 0), that of the level above the top encoder block.
        weight_decay: decoupled weight decay (>= 0) for the decayed parameters.
        layer_decay: multiplicative decay per block, in ``(0, 1]``; ``1/k`` for "divide by k".
        head_learning_rate: rate of the head; ``None`` means ``learning_rate``.
        crf_learning_rate: rate of the CRF; ``None`` means the head's rate.
        encoder_attr: attribute of the encoder (found also under a wrapper prefix).

    Returns:
        A list of dicts for ``torch.optim`` with keys ``params`` (list of tensors), ``param_names``
        (their names, kept by torch in the optimizer state), ``lr``, ``weight_decay`` and ``name``
        (``encoder.embeddings.decay``, ``encoder.layer_3.no_decay`` (block ``layer.3``),
        ``encoder.top.decay``, ``encoder.decay`` without LLRD, ``head.decay``, ``crf.no_decay``).

    Raises:
        ValueError: a bad argument (named, with its value), no trainable parameter, no encoder at
            ``encoder_attr``, or ``layer_decay != 1`` with unidentifiable encoder blocks.
    """
    _check_rate("learning_rate", learning_rate)
    _check_rate("weight_decay", weight_decay)
    _check_rate("head_learning_rate", head_learning_rate)
    _check_rate("crf_learning_rate", crf_learning_rate)
    if not (0.0 < layer_decay <= 1.0):
        raise ValueError(
            f"layer_decay must be in (0, 1], got {layer_decay!r} "
            "(to divide each lower block's rate by k, pass layer_decay=1/k)"
        )

    head_lr = learning_rate if head_learning_rate is None else head_learning_rate
    crf_lr = head_lr if crf_learning_rate is None else crf_learning_rate

    encoder_name, encoder = _resolve_encoder(model, encoder_attr)
    encoder_ids = {id(p) for p in encoder.parameters()}
    use_llrd = layer_decay != 1.0
    depths = encoder_layer_depths(model, encoder_attr) if use_llrd else None
    owners = _owning_modules(model)

    # (section order, depth, label, lr, wd) -> group; sorted at the end for a stable, readable order.
    groups: dict[tuple, dict] = {}
    trainable = 0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        trainable += 1
        module_path = name.rpartition(".")[0].lower()
        no_decay = param.ndim < 2 or name.endswith("bias") or _is_norm(owners[id(param)])
        if id(param) in encoder_ids:
            if depths is None:
                order, depth, label, lr = 0, 0, "encoder", learning_rate
            else:
                depth = depths.depths[name]
                lr = learning_rate * layer_decay ** (depths.top_depth - depth)
                if depth == 0:
                    label = "encoder.embeddings"
                elif depth == depths.top_depth:
                    label = "encoder.top"
                else:
                    label = f"encoder.layer_{depth - 1}"
                order = 0
        elif "crf" in module_path:
            order, depth, label, lr, no_decay = 2, 0, "crf", crf_lr, True
        else:
            order, depth, label, lr = 1, 0, "head", head_lr
        wd = 0.0 if no_decay else weight_decay
        key = (order, depth, label, lr, wd)
        group = groups.get(key)
        if group is None:
            suffix = "decay" if wd > 0 else "no_decay"
            group = groups[key] = {
                "name": f"{label}.{suffix}",
                "params": [],
                "param_names": [],
                "lr": lr,
                "weight_decay": wd,
            }
        group["params"].append(param)
        group["param_names"].append(name)

    if trainable == 0:
        raise ValueError(f"{type(model).__name__} has no parameter with requires_grad=True to optimize")
    # Within a section and depth: decayed group first.
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], -k[4], -k[3]))]


def describe_param_groups(groups: list[dict]) -> str:
    """A table of the groups (name, tensors, parameters, lr, weight decay) for the training log.

    Works on :func:`build_param_groups`' output and on ``optimizer.param_groups``.
    """
    rows = []
    for index, group in enumerate(groups):
        params = list(group["params"])
        rows.append(
            (
                str(group.get("name", f"group_{index}")),
                f"{len(params):,}",
                f"{sum(p.numel() for p in params):,}",
                f"{group['lr']:.3e}",
                f"{group.get('weight_decay', 0.0):g}",
            )
        )
    total_tensors = sum(len(list(g["params"])) for g in groups)
    total_numel = sum(p.numel() for g in groups for p in g["params"])
    header = ("group", "tensors", "params", "lr", "weight_decay")
    footer = ("total", f"{total_tensors:,}", f"{total_numel:,}", "", "")
    table = [header, *rows, footer]
    widths = [max(len(row[col]) for row in table) for col in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows), rule, fmt(footer)])


# ----------------------------------------------------------------------------------------------------
# schedules


def _check_steps(total_steps: int, warmup_steps: int) -> None:
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
    if not (0 <= warmup_steps <= total_steps):
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps!r}")


def _check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {schedule!r}")


def lr_multiplier(step: int, *, total_steps: int, warmup_steps: int, schedule: str = "linear") -> float:
    """Factor on each group's rate for the update made at ``step`` (0-based).

    - warm-up, ``step < warmup_steps``: ``(step + 1) / (warmup_steps + 1)``, rising linearly, never 0
      (as nanoGPT's ``get_lr``: no update is wasted at lr 0);
    - then, with ``progress = (step - warmup_steps) / (total_steps - warmup_steps)`` clipped to
      ``[0, 1]``: ``linear`` ``1 - progress``; ``cosine`` ``(1 + cos(pi * progress)) / 2``;
      ``constant`` ``1``.

    So ``step == warmup_steps`` gives 1.0, ``total_steps`` (and beyond) 0.0 for ``linear`` / ``cosine``;
    the last update (``total_steps - 1``) still has a positive rate.
    """
    _check_schedule(schedule)
    _check_steps(total_steps, warmup_steps)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step!r}")
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    decay_steps = total_steps - warmup_steps
    progress = 1.0 if decay_steps == 0 else min(1.0, (step - warmup_steps) / decay_steps)
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def resolve_warmup_steps(total_steps: int, warmup_steps: int | None, warmup_ratio: float | None) -> int:
    """Warm-up length from ``--warmup-steps`` or ``--warmup-ratio`` (at most one): 0 when neither.

    ``warmup_ratio`` in ``[0, 1]`` gives ``ceil(warmup_ratio * total_steps)`` (as ``transformers``).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
    if warmup_steps is not None and warmup_ratio is not None:
        raise ValueError(
            f"give warmup_steps or warmup_ratio, not both (got warmup_steps={warmup_steps!r}, "
            f"warmup_ratio={warmup_ratio!r})"
        )
    if warmup_ratio is not None:
        if not (0.0 <= warmup_ratio <= 1.0):
            raise ValueError(f"warmup_ratio must be in [0, 1], got {warmup_ratio!r}")
        return math.ceil(warmup_ratio * total_steps)
    if warmup_steps is None:
        return 0
    _check_steps(total_steps, warmup_steps)
    return warmup_steps


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int, schedule: str = "linear"
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` multiplying each group's own initial lr by :func:`lr_multiplier`.

    One factor for all groups, so the LLRD ratios between groups hold at every step. Call
    ``scheduler.step()`` after each ``optimizer.step()``.
    """
    _check_schedule(schedule)
    _check_steps(total_steps, warmup_steps)
    multiplier = functools.partial(
        lr_multiplier, total_steps=total_steps, warmup_steps=warmup_steps, schedule=schedule
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
