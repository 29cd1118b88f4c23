"""Tests for modeling_ade.optim: LLRD parameter groups and warm-up schedules, on tiny random encoders."""

from __future__ import annotations

import io
import math
import re

import pytest
import torch
from torch import nn
from transformers import (
    AlbertConfig,
    AutoModel,
    BertConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
    XLMRobertaConfig,
)

from modeling_ade.optim import (
    build_param_groups,
    build_scheduler,
    describe_param_groups,
    encoder_layer_depths,
    lr_multiplier,
    resolve_warmup_steps,
)

NUM_LAYERS = 4
TINY = dict(
    vocab_size=99, hidden_size=32, num_hidden_layers=NUM_LAYERS, num_attention_heads=2, intermediate_size=37
)
ENCODER_CONFIGS = {
    "bert": lambda: BertConfig(**TINY),
    "roberta": lambda: RobertaConfig(**TINY),
    "xlm-roberta": lambda: XLMRobertaConfig(**TINY),
    "electra": lambda: ElectraConfig(embedding_size=16, **TINY),
    "deberta-v2": lambda: DebertaV2Config(relative_attention=True, pos_att_type=["p2c", "c2p"], **TINY),
    "distilbert": lambda: DistilBertConfig(
        vocab_size=99, dim=32, n_layers=NUM_LAYERS, n_heads=2, hidden_dim=37
    ),
}
# Encoder modules (names relative to the encoder) outside the blocks, and their expected depth.
EXTRA_DEPTHS = {
    "embeddings.": 0,
    "embeddings_project.": 0,  # ELECTRA: with the embeddings
    "pooler.": NUM_LAYERS + 1,
    "encoder.rel_embeddings.": NUM_LAYERS + 1,  # DeBERTa-v2: shared by all blocks, above them
}
BLOCK = re.compile(r"(?:^|\.)layer\.(\d+)\.")

LR, WD = 4e-5, 0.01
DECAY = 1 / 1.2  # the paper's k = 1.2


class LinearChainCrf(nn.Module):
    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.transitions = nn.Parameter(torch.randn(num_tags, num_tags))
        self.start_transitions = nn.Parameter(torch.randn(num_tags))


class ToyTagger(nn.Module):
    """Encoder at ``.encoder``, a head, a CRF: the layout of the project's task models."""

    def __init__(self, encoder: nn.Module, hidden_size: int = 32, num_tags: int = 5) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(hidden_size, num_tags)
        self.head_norm = nn.LayerNorm(num_tags)
        self.crf = LinearChainCrf(num_tags)


def make_model(family: str = "bert") -> ToyTagger:
    torch.manual_seed(0)
    return ToyTagger(AutoModel.from_config(ENCODER_CONFIGS[family]()))


def expected_depth(relative_name: str) -> int:
    match = BLOCK.search(relative_name)
    if match:
        return int(match.group(1)) + 1
    prefixes = [prefix for prefix in EXTRA_DEPTHS if relative_name.startswith(prefix)]
    assert len(prefixes) == 1, f"no expected depth for {relative_name}"
    return EXTRA_DEPTHS[prefixes[0]]


def group_of(groups: list[dict]) -> dict[str, dict]:
    """Parameter name -> its group; asserts every name appears once."""
    by_name: dict[str, dict] = {}
    for group in groups:
        assert group["params"], group["name"]
        assert len(group["params"]) == len(group["param_names"])
        for name in group["param_names"]:
            assert name not in by_name, f"{name} in two groups"
            by_name[name] = group
    return by_name


def check_partition(model: nn.Module, groups: list[dict]) -> dict[str, dict]:
    by_name = group_of(groups)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert set(by_name) == set(trainable)
    for name, group in by_name.items():
        assert any(p is trainable[name] for p in group["params"])
    return by_name


# ----------------------------------------------------------------------------------------------------
# depths and groups across encoder families


@pytest.mark.parametrize("family", list(ENCODER_CONFIGS))
def test_depths_and_llrd_rates(family):
    model = make_model(family)
    depths = encoder_layer_depths(model)
    assert depths.num_layers == NUM_LAYERS
    assert depths.encoder_name == "encoder"
    encoder_names = {f"encoder.{n}" for n, _ in model.encoder.named_parameters()}
    assert set(depths.depths) == encoder_names
    for name, depth in depths.depths.items():
        assert depth == expected_depth(name.removeprefix("encoder.")), name

    groups = build_param_groups(model, learning_rate=LR, weight_decay=WD, layer_decay=DECAY)
    by_name = check_partition(model, groups)
    modules = dict(model.named_modules())
    for name, _ in model.named_parameters():
        group = by_name[name]
        module = modules[name.rpartition(".")[0]]
        if name.startswith("encoder."):
            assert group["lr"] == pytest.approx(LR * DECAY ** (NUM_LAYERS + 1 - depths.depths[name]))
        else:  # head and CRF default to the base rate
            assert group["lr"] == LR
        no_decay = name.endswith("bias") or isinstance(module, nn.LayerNorm) or name.startswith("crf.")
        assert group["weight_decay"] == (0.0 if no_decay else WD), name
        assert group["name"].endswith(".no_decay" if no_decay else ".decay")
    # The top block gets lr * decay, the embeddings lr * decay ** (L + 1).
    top_block_param = next(n for n in by_name if f".layer.{NUM_LAYERS - 1}." in n)
    assert by_name[top_block_param]["lr"] == pytest.approx(LR * DECAY)
    assert by_name["encoder.embeddings.word_embeddings.weight"]["lr"] == pytest.approx(
        LR * DECAY ** (NUM_LAYERS + 1)
    )
    assert by_name["encoder.embeddings.word_embeddings.weight"]["weight_decay"] == WD


def test_group_names_and_order():
    model = make_model("bert")
    groups = build_param_groups(model, learning_rate=LR, weight_decay=WD, layer_decay=DECAY)
    names = [g["name"] for g in groups]
    expected = ["encoder.embeddings.decay", "encoder.embeddings.no_decay"]
    for i in range(NUM_LAYERS):
        expected += [f"encoder.layer_{i}.decay", f"encoder.layer_{i}.no_decay"]
    expected += ["encoder.top.decay", "encoder.top.no_decay", "head.decay", "head.no_decay", "crf.no_decay"]
    assert names == expected
    by_name = group_of(groups)
    assert by_name["encoder.encoder.layer.2.attention.self.query.weight"]["name"] == "encoder.layer_2.decay"
    assert by_name["crf.transitions"]["weight_decay"] == 0.0  # 2-D, but the CRF is never decayed
    assert by_name["head.weight"]["name"] == "head.decay"
    assert by_name["head_norm.weight"]["name"] == "head.no_decay"


def test_layer_decay_off_gives_one_encoder_rate():
    model = make_model("bert")
    groups = build_param_groups(model, learning_rate=LR, weight_decay=WD)
    check_partition(model, groups)
    assert [g["name"] for g in groups] == [
        "encoder.decay",
        "encoder.no_decay",
        "head.decay",
        "head.no_decay",
        "crf.no_decay",
    ]
    assert {g["lr"] for g in groups} == {LR}


def test_layer_decay_off_needs_no_blocks():
    model = ToyTagger(nn.Sequential(nn.Linear(8, 32), nn.Linear(32, 32)))
    groups = build_param_groups(model, learning_rate=LR, weight_decay=WD)
    check_partition(model, groups)
    with pytest.raises(ValueError, match=r"cannot identify the transformer blocks of encoder 'encoder'"):
        build_param_groups(model, learning_rate=LR, weight_decay=WD, layer_decay=0.9)


def test_head_and_crf_rates():
    model = make_model("bert")
    groups = build_param_groups(
        model, learning_rate=LR, weight_decay=WD, layer_decay=DECAY, head_learning_rate=1e-3
    )
    by_name = group_of(groups)
    assert by_name["head.weight"]["lr"] == 1e-3
    assert by_name["crf.transitions"]["lr"] == 1e-3  # the CRF follows the head by default
    groups = build_param_groups(
        model, learning_rate=LR, weight_decay=WD, head_learning_rate=1e-3, crf_learning_rate=5e-2
    )
    by_name = group_of(groups)
    assert by_name["head.bias"]["lr"] == 1e-3
    assert by_name["crf.transitions"]["lr"] == 5e-2
    assert by_name["crf.start_transitions"]["lr"] == 5e-2


def test_zero_weight_decay_merges_decay_and_no_decay():
    model = make_model("bert")
    groups = build_param_groups(model, learning_rate=LR, weight_decay=0.0, layer_decay=DECAY)
    check_partition(model, groups)
    names = [g["name"] for g in groups]
    assert names[:2] == ["encoder.embeddings.no_decay", "encoder.layer_0.no_decay"]
    assert len(names) == NUM_LAYERS + 2 + 2  # encoder depths, head, crf
    assert all(g["weight_decay"] == 0.0 for g in groups)


def test_frozen_parameters_are_left_out():
    model = make_model("bert")
    for param in model.encoder.embeddings.parameters():
        param.requires_grad_(False)
    groups = build_param_groups(model, learning_rate=LR, weight_decay=WD, layer_decay=DECAY)
    check_partition(model, groups)
    assert not any(g["name"].startswith("encoder.embeddings") for g in groups)


def test_albert_shared_block_is_one_level():
    model = ToyTagger(AutoModel.from_config(AlbertConfig(embedding_size=16, **TINY)))
    depths = encoder_layer_depths(model)
    assert depths.num_layers == 1  # one shared group, applied NUM_LAYERS times
    assert depths.blocks_name == "encoder.encoder.albert_layer_groups"
    assert depths.depths["encoder.encoder.embedding_hidden_mapping_in.weight"] == 0
    assert depths.depths["encoder.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight"] == 1
    assert depths.depths["encoder.pooler.weight"] == 2
    check_partition(model, build_param_groups(model, learning_rate=LR, weight_decay=WD, layer_decay=DECAY))


def test_truncated_encoder_counts_kept_layers():
    model = make_model("bert")
    model.encoder.encoder.layer = model.encoder.encoder.layer[:2]  # as --num-hidden-layers 2
    depths = encoder_layer_depths(model)
    assert depths.num_layers == 2
    assert depths.depths["encoder.pooler.dense.weight"] == 3


def test_encoder_attr_other_name_and_missing():
    model = make_model("bert")
    renamed = nn.Module()
    renamed.bert = model.encoder
    renamed.classifier = nn.Linear(32, 2)
    groups = build_param_groups(
        renamed, learning_rate=LR, weight_decay=WD, layer_decay=0.5, encoder_attr="bert"
    )
    by_name = check_partition(renamed, groups)
    assert by_name["bert.pooler.dense.weight"]["lr"] == LR
    assert by_name["classifier.weight"]["name"] == "head.decay"
    with pytest.raises(ValueError, match=r"encoder_attr='roberta': Module has no submodule named 'roberta'"):
        build_param_groups(renamed, learning_rate=LR, weight_decay=WD, encoder_attr="roberta")


def test_masked_lm_with_base_model_prefix_and_bare_encoder():
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(**TINY))
    groups = build_param_groups(
        mlm, learning_rate=LR, weight_decay=WD, layer_decay=DECAY, encoder_attr=mlm.base_model_prefix
    )
    by_name = check_partition(mlm, groups)
    # The decoder weight is tied to the word embeddings: one parameter, grouped once, at depth 0.
    assert by_name["bert.embeddings.word_embeddings.weight"]["name"] == "encoder.embeddings.decay"
    assert by_name["cls.predictions.transform.dense.weight"]["name"] == "head.decay"
    with pytest.raises(ValueError, match=r"pass encoder_attr=model.base_model_prefix \('bert'\)"):
        build_param_groups(mlm, learning_rate=LR, weight_decay=WD, layer_decay=DECAY)  # not bert.encoder
    bare = mlm.bert
    with pytest.raises(ValueError, match=r"names the block stack 'encoder' of the bare encoder BertModel"):
        encoder_layer_depths(bare)
    depths = encoder_layer_depths(bare, encoder_attr="")
    assert depths.encoder_name == "" and depths.blocks_name == "encoder.layer"
    assert depths.depths["embeddings.word_embeddings.weight"] == 0
    assert depths.depths["encoder.layer.0.output.dense.weight"] == 1


# ----------------------------------------------------------------------------------------------------
# PEFT / LoRA


def test_lora_wrapped_model_groups_only_trainable_with_right_depths():
    peft = pytest.importorskip("peft")
    model = make_model("bert")
    config = peft.LoraConfig(r=2, target_modules=["query", "value"], modules_to_save=["head", "crf"])
    peft_model = peft.get_peft_model(model, config)
    name = "base_model.model.encoder.encoder.layer.3.attention.self.query.lora_A.default.weight"
    depths = encoder_layer_depths(peft_model)
    assert depths.encoder_name == "base_model.model.encoder"
    assert depths.num_layers == NUM_LAYERS
    assert depths.depths[name] == 4

    groups = build_param_groups(peft_model, learning_rate=LR, weight_decay=WD, layer_decay=DECAY)
    by_name = check_partition(peft_model, groups)
    assert by_name[name]["name"] == "encoder.layer_3.decay"
    assert by_name[name]["lr"] == pytest.approx(LR * DECAY)
    for param_name, group in by_name.items():
        if ".lora_" in param_name:
            block = int(BLOCK.search(param_name).group(1))
            assert group["lr"] == pytest.approx(LR * DECAY ** (NUM_LAYERS - block)), param_name
    encoder_params = [n for n in by_name if n.startswith("base_model.model.encoder.")]
    assert encoder_params and all(".lora_" in n for n in encoder_params)
    crf_name = "base_model.model.crf.modules_to_save.default.transitions"
    assert by_name[crf_name]["name"] == "crf.no_decay"
    assert by_name["base_model.model.head.modules_to_save.default.weight"]["name"] == "head.decay"
    # No encoder group without a trainable parameter.
    assert not any(g["name"].startswith(("encoder.embeddings", "encoder.top")) for g in groups)


# ----------------------------------------------------------------------------------------------------
# logging table


def test_describe_param_groups():
    model = make_model("bert")
    groups = build_param_groups(model, learning_rate=LR, weight_decay=WD, layer_decay=DECAY)
    table = describe_param_groups(groups)
    lines = table.splitlines()
    assert lines[0].split() == ["group", "tensors", "params", "lr", "weight_decay"]
    assert len(lines) == len(groups) + 4  # header, rule, rows, rule, total
    total = sum(p.numel() for p in model.parameters())
    assert lines[-1].split() == ["total", str(sum(len(g["params"]) for g in groups)), f"{total:,}"]
    crf_row = next(line for line in lines if line.startswith("crf.no_decay"))
    assert crf_row.split()[1:] == ["2", "30", "4.000e-05", "0"]
    optimizer = torch.optim.AdamW(groups)
    assert describe_param_groups(optimizer.param_groups) == table


# ----------------------------------------------------------------------------------------------------
# schedules


@pytest.mark.parametrize(
    ("schedule", "middle", "end"),
    [("linear", 0.5, 0.0), ("cosine", 0.5, 0.0), ("constant", 1.0, 1.0)],
)
def test_lr_multiplier_key_steps(schedule, middle, end):
    kwargs = dict(total_steps=110, warmup_steps=10, schedule=schedule)
    assert lr_multiplier(0, **kwargs) == pytest.approx(1 / 11)
    assert lr_multiplier(4, **kwargs) == pytest.approx(5 / 11)
    assert lr_multiplier(9, **kwargs) == pytest.approx(10 / 11)
    assert lr_multiplier(10, **kwargs) == 1.0  # warm-up end
    assert lr_multiplier(60, **kwargs) == pytest.approx(middle)
    assert lr_multiplier(110, **kwargs) == pytest.approx(end, abs=1e-12)
    assert lr_multiplier(500, **kwargs) == pytest.approx(end, abs=1e-12)
    assert lr_multiplier(109, **kwargs) > 0  # the last update is not wasted
    values = [lr_multiplier(s, **kwargs) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_lr_multiplier_shapes():
    assert lr_multiplier(25, total_steps=100, warmup_steps=0, schedule="linear") == pytest.approx(0.75)
    assert lr_multiplier(25, total_steps=100, warmup_steps=0, schedule="cosine") == pytest.approx(
        0.5 * (1 + math.cos(math.pi / 4))
    )
    assert lr_multiplier(0, total_steps=100, warmup_steps=0) == 1.0
    assert lr_multiplier(5, total_steps=5, warmup_steps=5) == 0.0  # all warm-up


def test_resolve_warmup_steps():
    assert resolve_warmup_steps(100, None, None) == 0
    assert resolve_warmup_steps(100, 7, None) == 7
    assert resolve_warmup_steps(100, None, 0.1) == 10
    assert resolve_warmup_steps(95, None, 0.1) == 10  # ceil(9.5)
    with pytest.raises(ValueError, match=r"not both \(got warmup_steps=5, warmup_ratio=0.1\)"):
        resolve_warmup_steps(100, 5, 0.1)
    with pytest.raises(ValueError, match=r"warmup_ratio must be in \[0, 1\], got 1.5"):
        resolve_warmup_steps(100, None, 1.5)
    with pytest.raises(ValueError, match=r"warmup_steps must be in \[0, total_steps=100\], got 101"):
        resolve_warmup_steps(100, 101, None)
    with pytest.raises(ValueError, match=r"total_steps must be >= 1, got 0"):
        resolve_warmup_steps(0, None, None)


def test_scheduler_keeps_group_ratios():
    model = make_model("bert")
    groups = build_param_groups(
        model, learning_rate=LR, weight_decay=WD, layer_decay=DECAY, head_learning_rate=1e-3
    )
    optimizer = torch.optim.AdamW(groups)
    base = [g["lr"] for g in optimizer.param_groups]
    scheduler = build_scheduler(optimizer, total_steps=20, warmup_steps=4, schedule="cosine")
    for step in range(20):
        factor = lr_multiplier(step, total_steps=20, warmup_steps=4, schedule="cosine")
        for group, lr in zip(optimizer.param_groups, base, strict=True):
            assert group["lr"] == pytest.approx(lr * factor)
        optimizer.step()
        scheduler.step()
    assert all(g["lr"] == pytest.approx(0.0, abs=1e-15) for g in optimizer.param_groups)
    assert optimizer.param_groups[0]["param_names"] == groups[0]["param_names"]
    torch.save(scheduler.state_dict(), io.BytesIO())  # checkpointable (accelerate save_state)


# ----------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(layer_decay=0.0), r"layer_decay must be in \(0, 1\], got 0.0"),
        (dict(layer_decay=1.2), r"layer_decay must be in \(0, 1\], got 1.2 .*layer_decay=1/k"),
        (dict(layer_decay=-0.5), r"layer_decay must be in \(0, 1\], got -0.5"),
        (dict(layer_decay=float("nan")), r"layer_decay must be in \(0, 1\], got nan"),
        (dict(learning_rate=-1e-5), r"learning_rate must be a finite number >= 0, got -1e-05"),
        (dict(weight_decay=-0.1), r"weight_decay must be a finite number >= 0, got -0.1"),
        (dict(head_learning_rate=float("inf")), r"head_learning_rate must be a finite number >= 0, got inf"),
        (dict(crf_learning_rate=-1.0), r"crf_learning_rate must be a finite number >= 0, got -1.0"),
    ],
)
def test_build_param_groups_errors(kwargs, message):
    model = ToyTagger(nn.Linear(4, 32))
    arguments = dict(learning_rate=LR, weight_decay=WD) | kwargs
    with pytest.raises(ValueError, match=message):
        build_param_groups(model, **arguments)


def test_no_trainable_parameters():
    model = ToyTagger(nn.Linear(4, 32)).requires_grad_(False)
    with pytest.raises(ValueError, match="ToyTagger has no parameter with requires_grad=True"):
        build_param_groups(model, learning_rate=LR, weight_decay=WD)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(schedule="polynomial"),
            r"schedule must be one of 'linear', 'cosine', 'constant', got 'polynomial'",
        ),
        (dict(total_steps=0), r"total_steps must be >= 1, got 0"),
        (dict(warmup_steps=-1), r"warmup_steps must be in \[0, total_steps=10\], got -1"),
        (dict(warmup_steps=11), r"warmup_steps must be in \[0, total_steps=10\], got 11"),
        (dict(step=-1), r"step must be >= 0, got -1"),
    ],
)
def test_schedule_errors(kwargs, message):
    arguments = dict(step=0, total_steps=10, warmup_steps=2, schedule="linear") | kwargs
    with pytest.raises(ValueError, match=message):
        lr_multiplier(**arguments)
    if "step" not in kwargs:
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        arguments.pop("step")
        with pytest.raises(ValueError, match=message):
            build_scheduler(optimizer, **arguments)
