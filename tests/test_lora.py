"""LoRA fine-tuning (``train.py ade|ner --lora-r``, ``modeling_ade/lora.py``).

Only the LoRA matrices (inside the encoder) and the heads train; OUT is an adapter folder that reloads on a
freshly built base with the in-process outputs (also in a process without ``modeling_ade``, by the README
recipe); ``push_to_hub.py model OUT`` packages it and ``--merge`` gives a full model with the same outputs.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import tiny_encoder_config

import push_to_hub
import train
from modeling_ade import lora as lora_module
from modeling_ade.lora import (
    LoraSettings,
    apply_lora,
    default_target_modules,
    head_modules,
    load_adapter_model,
    save_adapter,
)
from modeling_ade.ner_data import load_tokenizer

TEXT = "Intravenous azithromycin-induced ototoxicity after cisplatin."
COMMON = ["--epochs", "1", "--batch-size", "4", "--learning-rate", "1e-3", "--report-to", "none"]


def ade_inputs(tokenizer) -> dict:
    """One sentence, its word index and two entities with one candidate pair: NER and relation logits."""
    ids = tokenizer(TEXT, return_tensors="pt")
    word_index = torch.tensor([[0 if w is None else w + 1 for w in ids.word_ids()]])
    spans = torch.tensor([[[4, 5, 0], [1, 2, 1]]])  # (B, E, 3): first token, last token, type index
    return {
        **ids,
        "word_index": word_index,
        "entity_spans": spans,
        "relation_pairs": torch.tensor([[[0, 1]]]),
    }


def ade_outputs(model, tokenizer) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model.eval()(**ade_inputs(tokenizer))
    return {"ner_logits": out.ner_logits, "relation_logits": out.relation_logits}


def ner_outputs(model, tokenizer) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model.eval()(**tokenizer(TEXT.split(), is_split_into_words=True, return_tensors="pt"))
    return {"logits": out.logits, "tags": out.tags}


def assert_same(got: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert torch.allclose(got[key].float(), value.float(), atol=1e-5), key


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory, minilm_tokenizer):
    """A random 2-layer BERT with MiniLM's vocabulary and tokenizer, saved as an encoder folder."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(0)
    BertModel(tiny_encoder_config(minilm_tokenizer.vocab_size), add_pooling_layer=False).save_pretrained(
        folder
    )
    minilm_tokenizer.save_pretrained(folder)
    return folder


def train_and_capture(argv: list[str], forward) -> dict:
    """Run ``train.main(argv)``; at the moment the adapter is saved, record the trained model's trainable
    parameter names, its LoRA B matrices and ``forward(model, tokenizer)`` (the in-process outputs)."""
    captured = {}

    def spy(model, output_dir, tokenizer, pipeline_task=None):
        captured["trainable"] = [n for n, p in model.named_parameters() if p.requires_grad]
        captured["lora_B"] = [p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n]
        captured["outputs"] = forward(model, tokenizer)
        save_adapter(model, output_dir, tokenizer, pipeline_task)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lora_module, "save_adapter", spy)  # training.save_run looks it up there
        captured["metrics"] = train.main(argv)
    return captured


@pytest.fixture(scope="module")
def ade_run(tmp_path_factory, tiny_encoder, ade_data_dir, minilm_tokenizer):
    out = tmp_path_factory.mktemp("ade") / "run"
    argv = ["ade", "--model", str(tiny_encoder), "--output-dir", str(out), "--data-dir", str(ade_data_dir)]
    argv += ["--max-train-samples", "16", "--max-eval-samples", "8", *COMMON, "--lora-r", "4"]
    return out, train_and_capture(argv, ade_outputs)


# --------------------------------------------------------------------------------------------------------
# flags


@pytest.mark.parametrize("task", ["ade", "ner"])
def test_lora_flags_are_in_help_and_checked(task, capsys, tmp_path):
    parser = train.build_parser()
    sub = next(a for a in parser._actions if a.dest == "task").choices[task]
    text = sub.format_help()
    for flag in ("--lora-r", "--lora-alpha", "--lora-dropout", "--lora-target-modules"):
        assert flag in text
    out = str(tmp_path / "never")
    for bad, message in (
        (["--lora-alpha", "8"], "--lora-alpha applies only with --lora-r"),
        (["--lora-r", "0"], "--lora-r must be an integer >= 1, got 0"),
        (["--lora-r", "4", "--lora-dropout", "1.5"], "--lora-dropout must be in [0, 1), got 1.5"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            train.main([task, "--output-dir", out, *bad])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
    assert train.parse_settings([task, "--output-dir", out]).lora is None  # default: full fine-tuning


# --------------------------------------------------------------------------------------------------------
# what is trained


def test_only_lora_inside_the_encoder_and_the_heads_are_trainable(tiny_encoder, minilm_tokenizer):
    from modeling_ade import BertCrfForTokenClassification, JointNerReForAdeExtraction

    joint = JointNerReForAdeExtraction.from_encoder(str(tiny_encoder))
    crf = BertCrfForTokenClassification.from_encoder(
        str(tiny_encoder), tokenizer=minilm_tokenizer, id2label={0: "O", 1: "B-X", 2: "I-X"}
    )
    assert head_modules(joint) == ["ner_classifier", "relation_head"]
    assert head_modules(crf) == ["hidden_layer", "classifier", "crf"]
    assert default_target_modules("bert") == ["query", "value"]
    for model in (joint, crf):
        heads = head_modules(model)
        peft_model = apply_lora(model, LoraSettings(r=2), base_model_name_or_path=str(tiny_encoder))
        trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
        lora = [n for n in trainable if "lora_" in n]
        assert lora and all(".encoder." in n and (".query." in n or ".value." in n) for n in lora)
        assert len(lora) == 2 * 2 * 2  # 2 layers x (query, value) x (A, B)
        head_params = [n for n in trainable if ".modules_to_save." in n]
        assert sorted(lora + head_params) == sorted(trainable)
        assert {n.split(".")[2] for n in head_params} == set(heads)  # base_model.model.<head>...
        saved = {n.split(".")[2] for n, _ in peft_model.named_parameters() if ".modules_to_save." in n}
        assert saved == set(heads)  # every head parameter is trained, no head is left frozen


def test_target_modules_stay_inside_the_encoder(tiny_encoder):
    from modeling_ade import JointNerReForAdeExtraction

    model = JointNerReForAdeExtraction.from_encoder(str(tiny_encoder))
    settings = LoraSettings(r=2, target_modules=("attention.output.dense",))
    assert settings.lora_alpha == 4.0  # default alpha: 2 * r
    peft_model = apply_lora(model, settings)
    adapted = {n.rsplit(".lora_", 1)[0] for n, _ in peft_model.named_parameters() if "lora_A" in n}
    assert adapted == {f"base_model.model.encoder.encoder.layer.{i}.attention.output.dense" for i in (0, 1)}
    fresh = JointNerReForAdeExtraction.from_encoder(str(tiny_encoder))
    with pytest.raises(ValueError, match=r"no such module in the encoder .*named .*query"):
        apply_lora(fresh, LoraSettings(r=2, target_modules=("qkv",)))
    with pytest.raises(ValueError, match="pass --lora-target-modules"):
        default_target_modules("no-such-encoder-type")


# --------------------------------------------------------------------------------------------------------
# train.py ade --lora-r: the adapter folder


@pytest.mark.data
def test_ade_run_saves_an_adapter_that_reloads_with_the_same_outputs(ade_run, tiny_encoder, minilm_tokenizer):
    out, captured = ade_run
    names = {p.name for p in out.iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "config.json",
        "configuration_joint_ner_re.py",
        "modeling_joint_ner_re.py",
        "pipeline_ade_extraction.py",
        "tokenizer.json",
        "tokenizer_config.json",
        "metrics.json",
        "training_args.json",
    } <= names
    assert not names & {"model.safetensors", "README.md"}
    config = json.loads((out / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel"}
    assert (
        config["custom_pipelines"]["ade-extraction"]["impl"]
        == "pipeline_ade_extraction.AdeExtractionPipeline"
    )
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_encoder)
    assert (
        adapter["modules_to_save"] == ["ner_classifier", "relation_head", "sentence_classifier"]
        and adapter["r"] == 4
    )

    # what trained: LoRA matrices and heads only, and the LoRA matrices moved away from B = 0
    assert captured["trainable"] and all(
        "lora_" in n or ".modules_to_save." in n for n in captured["trainable"]
    )
    assert all(b.abs().sum() > 0 for b in captured["lora_B"])
    lora = json.loads((out / "metrics.json").read_text())["lora"]
    assert lora["trainable_parameters"] == lora["lora_parameters"] + lora["head_parameters"]
    assert 0 < lora["trainable_share"] < 0.1 and lora == captured["metrics"]["lora"]
    assert json.loads((out / "training_args.json").read_text())["lora_r"] == 4

    reloaded = load_adapter_model(out)  # fresh base: config.json + the encoder's weights, then the adapter
    assert_same(ade_outputs(reloaded, minilm_tokenizer), captured["outputs"])


@pytest.mark.data
def test_load_trained_and_predict_take_the_adapter_folder(ade_run, minilm_tokenizer, tmp_path):
    """``load_trained`` rebuilds the adapter (merged: a plain task model, same outputs) and ``predict.py`` runs
    on the adapter folder as on a full model's."""
    from transformers import pipeline

    import predict
    from modeling_ade.artifacts import load_trained

    out, captured = ade_run
    merged = load_trained(out, merge=True)
    assert type(merged).__name__ == "JointNerReForAdeExtraction" and not merged.training
    assert_same(ade_outputs(merged, minilm_tokenizer), captured["outputs"])
    texts = ["Severe hepatotoxicity developed after isoniazid.", "No adverse event here."]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert (
        predict.main([str(tmp_path / "in.txt"), "--model", str(out), "--output", str(tmp_path / "out.jsonl")])
        == 0
    )
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    expected = pipeline("ade-extraction", model=merged, tokenizer=minilm_tokenizer)(texts)

    def rounded(value):  # scores agree to float noise (another batch, another padding)
        if isinstance(value, dict):
            return {k: round(v, 4) if k == "score" else rounded(v) for k, v in value.items()}
        return [rounded(v) for v in value] if isinstance(value, list) else value

    assert rounded([{k: r[k] for k in ("entities", "relations")} for r in rows]) == rounded(expected)
    assert any(r["entities"] for r in rows)  # the comparison compares something


@pytest.mark.data
def test_adapter_loads_by_the_readme_recipe_without_modeling_ade(ade_run, minilm_tokenizer, tmp_path):
    out, captured = ade_run
    inputs = {k: v.tolist() for k, v in ade_inputs(minilm_tokenizer).items()}
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["modeling_ade"] = None  # importing it must be impossible here
        import torch
        from peft import PeftConfig, PeftModel
        from transformers import AutoConfig, AutoModel

        OUT = {str(out)!r}
        config = AutoConfig.from_pretrained(OUT, trust_remote_code=True)
        base = AutoModel.from_config(config, trust_remote_code=True)
        base.load_pretrained_encoder(PeftConfig.from_pretrained(OUT).base_model_name_or_path)
        model = PeftModel.from_pretrained(base, OUT).eval()

        inputs = {{k: torch.tensor(v) for k, v in json.loads({json.dumps(inputs)!r}).items()}}
        with torch.no_grad():
            output = model(**inputs)
        print("RESULT:" + json.dumps({{"ner_logits": output.ner_logits.tolist(),
                                      "relation_logits": output.relation_logits.tolist()}}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.split("RESULT:")[1])
    assert_same({k: torch.tensor(v) for k, v in got.items()}, captured["outputs"])


@pytest.mark.data
def test_push_to_hub_packages_the_adapter_and_merges_it(ade_run, minilm_tokenizer, tmp_path):
    from transformers import AutoModel

    out, captured = ade_run
    assert push_to_hub.main(["model", str(out), "--repo-id", "u/x", "--dry-run", str(tmp_path / "a")]) == 0
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "config.json",
        "modeling_joint_ner_re.py",
    } <= names
    assert {"pipeline_ade_extraction.py", "tokenizer.json", "metrics.json", "training_args.json"} <= names
    assert "model.safetensors" not in names

    merged_dir = tmp_path / "m"
    args = ["model", str(out), "--repo-id", "u/x", "--merge", "--dry-run", str(merged_dir)]
    assert push_to_hub.main(args) == 0
    assert (merged_dir / "model.safetensors").is_file() and not (merged_dir / "adapter_config.json").exists()
    merged = AutoModel.from_pretrained(merged_dir, trust_remote_code=True)
    assert_same(ade_outputs(merged, minilm_tokenizer), captured["outputs"])


# --------------------------------------------------------------------------------------------------------
# train.py ner --lora-r: the CRF is a trained head; a cut real encoder (--num-hidden-layers)


@pytest.mark.slow
def test_ner_run_on_a_cut_minilm_keeps_the_crf_and_reloads(tmp_path, minilm_tokenizer):
    from transformers import AutoModelForTokenClassification

    from modeling_ade.encoders import MINILM, resolve_model_name

    drugs, effects = (
        ["aspirin", "cisplatin", "ibuprofen", "warfarin"],
        ["nausea", "rash", "bleeding", "fever"],
    )
    rows = [
        {
            "tokens": ["patient", "took", drug, "and", "developed", effect, "."],
            "ner_tags": ["O", "O", "B-DRUG", "O", "O", "B-AE", "O"],
        }
        for drug in drugs
        for effect in effects
    ]
    data = tmp_path / "ner.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ner"
    argv = [
        "ner",
        "--model",
        MINILM,
        "--num-hidden-layers",
        "1",
        "--output-dir",
        str(out),
        "--dataset",
        str(data),
    ]
    argv += ["--train-split", "train", "--eval-split", "train[:8]", "--max-length", "32", *COMMON]
    captured = train_and_capture([*argv, "--lora-r", "2", "--lora-alpha", "8"], ner_outputs)

    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["modules_to_save"] == ["hidden_layer", "classifier", "crf"] and adapter["lora_alpha"] == 8
    assert adapter["base_model_name_or_path"] == MINILM
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForTokenClassification"].endswith("BertCrfForTokenClassification")
    assert config["encoder_config"]["num_hidden_layers"] == 1
    assert any(".crf.modules_to_save." in n for n in captured["trainable"])
    assert all("lora_" in n or ".modules_to_save." in n for n in captured["trainable"])

    tokenizer = load_tokenizer(MINILM, resolve_model_name(MINILM))
    assert_same(ner_outputs(load_adapter_model(out), tokenizer), captured["outputs"])

    # --merge rebuilds the base from the encoder named in adapter_config.json, cut to the saved configuration
    merged_dir = tmp_path / "merged"
    args = ["model", str(out), "--repo-id", "u/n", "--merge", "--dry-run", str(merged_dir)]
    assert push_to_hub.main(args) == 0
    merged = AutoModelForTokenClassification.from_pretrained(merged_dir, trust_remote_code=True)
    assert_same(ner_outputs(merged, tokenizer), captured["outputs"])
