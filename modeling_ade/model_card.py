"""Model cards for trained model folders: YAML metadata and the Markdown body (not Hub code).

``push_to_hub.py model`` calls :func:`~modeling_ade.model_run.read_model_run` on a ``train.py`` output folder and
:func:`build_model_card` to write the repository's ``README.md``:

- metadata: ``license`` (from the encoder's licence when known), ``language``, ``tags`` (with
  ``custom_code``), ``pipeline_tag``, ``datasets``, ``base_model`` (the encoder's Hub id), ``widget``
  examples and a ``model-index`` whose values are those of ``metrics.json``: every convention of the
  evaluation contract (NER micro / macro, RE strict / boundaries / gold entities), with overlapping
  entities kept and removed; for a fold of a ``--cv`` run also the cross-validation means;
- sections: what the model does, how to use it (pinned ``revision``, ``trust_remote_code=True``),
  Inference Endpoints, training data and protocol, evaluation, limitations, licence, citations.

Two model kinds are known (``config.model_type``): ``joint_ner_re`` (ADE corpus, ``ade-extraction``
pipeline) and ``bert_crf`` (Chinese HealthNER, ``token-classification`` pipeline). A PEFT adapter folder
(``adapter_config.json``) gets a card that names its base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from .card_metrics import eval_results, evaluation_blocks, evaluation_table, evaluation_text
from .model_run import (
    ADE_HUB_DATASET,
    ENCODER_LICENCES,
    MODEL_KINDS,
    UNKNOWN_LICENCE,
    Licence,
    ModelRun,
    encoder_name,
    hub_id_or_none,
)

# --------------------------------------------------------------------------------------------------------
# The card
# --------------------------------------------------------------------------------------------------------


def _limitations_text(run: ModelRun, encoder: str | None, licence: Licence) -> str:
    what = "entities and relations" if run.model_type == "joint_ner_re" else "entities"
    corpus = (
        "see the training dataset's own card"
        if run.corpus == "custom"
        else "**unknown — research use**; the corpus authors ask to be cited (below)"
    )
    return f"""\
- **Research use only. Not a medical device: do not use it for clinical or pharmacovigilance decisions
  without qualified human review.** It was trained on a small corpus of one domain and will miss or invent
  {what} in other text.
- Training corpus licence: {corpus}.
- Encoder licence ({encoder or "unknown encoder"}): {licence.text}. The `license` field of this card follows
  the encoder where its licence is known (`unknown` otherwise); this project's code is Apache-2.0.
- `trust_remote_code=True` executes this repository's Python files: pin a reviewed revision.
"""


METHOD_CITATIONS = {
    "joint_ner_re": [
        "Shanchan Wu and Yifan He. 2019. Enriching Pre-trained Language Model with Entity Information for "
        "Relation Classification. CIKM 2019. arXiv:1905.08284 (the R-BERT relation head).",
        "Jacob Devlin, Ming-Wei Chang, Kenton Lee and Kristina Toutanova. 2019. BERT: Pre-training of Deep "
        "Bidirectional Transformers for Language Understanding. NAACL 2019.",
    ],
    "bert_crf": [
        "John Lafferty, Andrew McCallum and Fernando Pereira. 2001. Conditional Random Fields: Probabilistic "
        "Models for Segmenting and Labeling Sequence Data. ICML 2001.",
        "Chi Sun, Xipeng Qiu, Yige Xu and Xuanjing Huang. 2019. How to Fine-Tune BERT for Text "
        "Classification? CCL 2019 (layer-wise decreasing learning rate).",
        "Jacob Devlin, Ming-Wei Chang, Kenton Lee and Kristina Toutanova. 2019. BERT: Pre-training of Deep "
        "Bidirectional Transformers for Language Understanding. NAACL 2019.",
    ],
}


LANGUAGES = {"ade": "en", "chinese_healthner": "zh"}


def _corpus_info(run: ModelRun) -> tuple[str, str, list[str]]:
    """``(pretty name, dataset id for model-index, citation texts)`` of the training corpus."""
    corpus = run.corpus
    if corpus == "custom":
        given = str(run.training_args["dataset"])
        hub = hub_id_or_none(given)
        return (f"`{hub}`" if hub else f"local dataset `{Path(given).name}`"), hub or "custom", []
    if corpus == "ade":
        from datasets_scripts.ade_card import CITATION, SPLIT_CITATION

        return "ADE corpus V2 (SpERT 10-fold split)", ADE_HUB_DATASET, [CITATION, SPLIT_CITATION]
    if corpus == "chinese_healthner":
        from datasets_scripts.healthner_card import CITATION

        return "Chinese HealthNER family (project train/dev split)", "chinese_healthner", [CITATION.strip()]
    return "the evaluation data", "unknown", []


def _training_table(args: dict[str, Any]) -> str:
    hidden = {"output_dir", "data_dir", "report_to", "logging_steps"}  # local paths and logging only
    rows = []
    for key, value in args.items():
        if key in hidden:
            continue
        if key == "model":
            value = hub_id_or_none(str(value)) or f"local folder `{Path(str(value)).name}`"
        rows.append(f"| `{key}` | {value} |")
    return "| argument | value |\n|---|---|\n" + "\n".join(rows) + "\n" if rows else ""


def _protocol_text(run: ModelRun) -> str:
    args, metrics = run.training_args, run.metrics or {}
    corpus = run.corpus
    lines = []
    if corpus == "ade":
        lines.append(
            "Trained on the ADE corpus V2 (Gurulingappa et al., 2012; 4,272 PubMed case-report sentences with "
            "drug, adverse-effect and drug → adverse-effect relation annotations) with the standard 10-fold "
            "split of Eberts & Ulges (SpERT), used by nearly every joint extraction paper since 2018."
        )
        if args.get("no_negatives") in (True, "True"):
            lines.append(
                "It was trained on the sentences with relations only (the literature's setting, "
                "`--no-negatives`): on real text, where most sentences state no adverse event, it flags many of "
                "them (see `neg_false_positive_rate` below)."
            )
        elif "real_text" in metrics or "negatives_per_positive" in args:
            ner_on_negatives = args.get("negatives_ner_loss") in (True, "True")
            gate = (run.config or {}).get("sentence_gate")
            lines.append(
                "Besides the sentences with relations it was trained on the corpus's negative sentences "
                "(`ADE-NEG.txt`, no adverse event; the nine of ten PubMed-disjoint parts not held out for this "
                f"fold, {args.get('negatives_per_positive', 1.0)} negative per positive sentence in each epoch): "
                + ("as all-`O` sentences for the NER head, " if ner_on_negatives else "")
                + (
                    "to train a sentence gate that rejects sentences stating no adverse event, "
                    if gate
                    else ""
                )
                + "and as sentences without relations for the relation head, which also learned to say no to "
                "pairs with its own non-gold entity predictions "
                f"(`--relation-negatives {args.get('relation_negatives', 'predicted-entities')}`)."
            )
        if run.fold is not None:
            lines.append(
                f"This model was trained on the train part of fold {run.fold} and evaluated on its test part "
                "(the literature's, unchanged); `neg_false_positive_rate` and the sentence-level scores add the "
                "fold's held-out part of the negative sentences."
            )
        config = run.config or {}
        if config.get("train_max_length"):
            lines.append(
                f"Window: the pipeline splits documents into sentences (`sentencex`, language "
                f"`{config.get('language', 'en')}`) and reads at most {config['train_max_length']} tokens at a "
                f"time, the training length; relation threshold {config.get('relation_threshold', 0.5)}."
            )
        if run.cv_metrics:
            folds = run.cv_metrics.get("folds") or []
            lines.append(
                f"It is one fold of a {len(folds)}-fold cross-validation run (folds {folds}); the evaluation "
                "below also gives the mean over all folds, which is the number to compare with papers."
            )
    elif corpus == "chinese_healthner":
        lines.append(
            "Trained on the Chinese HealthNER family (HealthNER official test split + ROCLING 2023 "
            "MultiNER-Health FT/SM/WA test sets; Traditional Chinese, 10 healthcare entity types, "
            "character-level BIO)."
        )
        lines.append(
            "**The `train` / `dev` split is this project's development protocol, not the official "
            "HealthNER/ROCLING protocol**: the official HealthNER training split was not available, so all "
            "9,155 labelled sentences were split 90/10 (seeded, stratified by source). Numbers on `dev` are "
            "not comparable with published results, and the model has seen parts of the upstream test sets: "
            "do not evaluate it on them."
        )
        if metrics.get("eval_held_out") is False:
            n = metrics.get("num_train_sentences")
            lines.append(
                "**This is the final model: its recipe was tuned on `dev`, then it was retrained on all "
                + (f"{n:,} " if isinstance(n, int) else "")
                + "labelled sentences (`train` + `dev`, `--train-split train+dev`), as the paper used all of its "
                "data. It has no held-out score of its own**; the recipe's `dev` score (trained on `train` only) is "
                "in the project's BENCHMARKS.md (section 10)."
            )
    elif corpus == "custom":
        lines.append(
            f"Trained on {_corpus_info(run)[0]} (`train.py {args.get('task', 'ner')} --dataset`, split "
            f"`{args.get('train_split') or 'train'}`); evaluated on its `{args.get('eval_split') or 'validation'}` "
            "split. See that dataset's card for its licence."
        )
    if metrics.get("data"):
        lines.append(f"Data as logged by the run: {metrics['data']}.")
    if run.model_type == "bert_crf":
        head = metrics.get("head", args.get("head"))
        decay = metrics.get("layer_decay", args.get("layer_decay"))
        lines.append(
            f"Head: `{head}`; layer-wise learning-rate decay factor {decay} (a layer's rate is the rate of the "
            "layer above times this factor; 1 = off)."
        )
    n_train = metrics.get("num_train_sentences")
    if isinstance(n_train, int):
        lines.append(f"Training sentences: {n_train:,}.")
    if args.get("max_train_samples"):
        lines.append(
            f"**Only the first {args['max_train_samples']} training sentences were used** "
            "(`--max-train-samples`): a quick run, not the full protocol."
        )
    if args.get("max_eval_samples"):
        lines.append(f"**Only the first {args['max_eval_samples']} evaluation sentences were scored.**")
    text = "\n\n".join(lines)
    table = _training_table(args)
    if table:
        text += "\n\nThe run's arguments (`training_args.json`, also in this repository):\n\n" + table
    return text


def _joint_output_note(config: dict[str, Any]) -> str:
    """The ``ade-extraction`` output, as a comment, with the model's own first entity and relation types."""
    from .hub.pipeline_ade_extraction import relation_key

    entity = (config.get("entity_types") or ["Drug"])[0]
    relation = (config.get("relation_labels") or ["none", "ADE"])[1]
    head, tail = (config.get("relation_candidate_types") or [["Adverse-Effect", "Drug"]])[0]
    head_key, tail_key = relation_key(head, tail)
    return (
        f"# {{'entities': [{{'type': {entity!r}, 'text': ..., 'start': ..., 'end': ..., 'score': ...}}, ...],\n"
        f"#  'relations': [{{'type': {relation!r}, {head_key!r}: {{...}}, {tail_key!r}: {{...}}, 'score': ...}}]}}"
    )


def _usage_text(run: ModelRun, repo_id: str, base_model: str | None) -> str:
    if run.is_adapter:
        base = base_model or "BASE_MODEL_ID_OR_FOLDER"
        return f"""\
This repository holds a PEFT (LoRA) adapter, not a full model: the LoRA weights of the encoder and the
fully trained heads. Rebuild the task model from this repository's configuration, give it the pre-trained
encoder's weights (cut to the saved configuration), then load the adapter:

```python
from peft import PeftModel
from transformers import AutoConfig, {run.auto_class}

REVISION = "main"  # pin the commit hash you reviewed: trust_remote_code runs the repository's Python files
config = AutoConfig.from_pretrained("{repo_id}", revision=REVISION, trust_remote_code=True)
base = {run.auto_class}.from_config(config, trust_remote_code=True)  # heads come from the adapter
base.load_pretrained_encoder("{base}")  # the pre-trained encoder, cut to the saved configuration
model = PeftModel.from_pretrained(base, "{repo_id}", revision=REVISION).eval()
model = model.merge_and_unload()  # optional: a plain model, as fast as the original
```

`python push_to_hub.py model ADAPTER_DIR --merge` (modeling-ade) uploads the merged, self-contained model
instead, which also works with `pipeline(...)` and Inference Endpoints.
"""
    task = run.pipeline_task
    custom = task != "token-classification"
    pipe_note = (
        f"`{task}` is a **custom pipeline** shipped in this repository (`config.json` → `custom_pipelines`); "
        "the `pipeline_tag` of the metadata says `token-classification` because the Hub has no tag for joint "
        "entity + relation extraction."
        if custom
        else "The model's code (configuration and model classes) is shipped in this repository (`auto_map`)."
    )
    example = (
        MODEL_KINDS[run.model_type].widget[0] if run.kind and run.corpus != "custom" else "Your text here."
    )
    output_note = (
        _joint_output_note(run.config)
        if run.model_type == "joint_ner_re"
        else "# [{'entity_group': ..., 'word': ..., 'start': ..., 'end': ..., 'score': ...}, ...]"
    )
    extra = ', aggregation_strategy="simple"' if not custom else ""
    return f"""\
The model runs its own code, so loading needs `trust_remote_code=True`. Review the Python files of this
repository and **pin the revision** you reviewed (a commit hash from *Files and versions → History*): a later
commit could change the code that runs on your machine.

```python
from transformers import {run.auto_class}, AutoTokenizer, pipeline

REVISION = "main"  # replace with the commit hash you reviewed

extract = pipeline("{task}", model="{repo_id}", revision=REVISION, trust_remote_code=True{extra})
extract({example!r})
{output_note}

model = {run.auto_class}.from_pretrained("{repo_id}", revision=REVISION, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{repo_id}", revision=REVISION, trust_remote_code=True)
```

{pipe_note} Needs `transformers` ≥ 5 and `torch`; the package `modeling-ade` is not needed.
"""


ENDPOINT_TEXT = """\
The Hub's hosted inference widget does not run custom code, so the widget examples above are not served
there. Deploy the repository as an **Inference Endpoint** instead: `handler.py` (a custom handler) and
`requirements.txt` are included. The endpoint takes

```json
{"inputs": "a text" , "parameters": {}}
```

or a list of texts as `inputs`, and returns the pipeline's output (a dict per text for `ade-extraction`,
a list of entities per text for `token-classification`). Locally:

```python
from handler import EndpointHandler  # run in a clone of this repository
handler = EndpointHandler(".")
handler({"inputs": ["first text", "second text"]})
```
"""


def build_model_card(
    run: ModelRun,
    repo_id: str,
    *,
    datasets: list[str] | None = None,
    base_model: str | None = None,
    merged_adapter: str | None = None,
    space: str | None = None,
) -> ModelCard:
    """The ``README.md`` of the repository for ``run``.

    Args:
        run: the model folder (see :func:`read_model_run`).
        repo_id: ``owner/name`` the card is written for (usage snippets).
        datasets: Hub dataset ids for the ``datasets`` metadata (default: the ADE corpus on the Hub for ADE
            models, none otherwise).
        base_model: for an adapter, its base model (default: ``adapter_config.json``'s
            ``base_model_name_or_path``).
        merged_adapter: set when the folder is the merge of an adapter into its base (the adapter's name).
        space: a Hub Space (``owner/name``, from ``push_to_hub.py space``) where visitors can try the model.
    """
    kind = run.kind
    corpus_name, dataset_id, corpus_citations = _corpus_info(run)
    if datasets is None:
        datasets = (
            [ADE_HUB_DATASET]
            if run.corpus == "ade"
            else [dataset_id]
            if run.corpus == "custom" and "/" in dataset_id
            else []
        )
    if datasets:
        dataset_id = datasets[0]
    encoder = encoder_name(run)
    encoder_hub = hub_id_or_none(encoder)
    licence = ENCODER_LICENCES.get(encoder_hub or "", UNKNOWN_LICENCE)

    adapter_base = None
    if run.is_adapter:
        adapter_base = base_model or run.adapter_config.get("base_model_name_or_path")
    base_hub = hub_id_or_none(adapter_base) if run.is_adapter else encoder_hub

    blocks = evaluation_blocks(run)
    custom = run.corpus == "custom"
    kind_tags = (kind.custom_tags if custom and kind.custom_tags else kind.tags) if kind else ()
    tags = ["custom_code", *kind_tags, "modeling-ade"]
    if run.is_adapter:
        tags += ["peft", "lora", "adapter"]
    if merged_adapter:
        tags += ["lora", "merged"]
    card_data = ModelCardData(
        license=licence.hub_id,
        license_name=licence.name,
        license_link=licence.link,
        language=[LANGUAGES[run.corpus]]
        if run.corpus in LANGUAGES
        else [run.config["language"]]
        if run.config.get("language")
        else None,
        library_name="peft" if run.is_adapter else "transformers",
        tags=tags,
        pipeline_tag="token-classification",
        datasets=datasets or None,
        base_model=base_hub,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(blocks, dataset_id, corpus_name) or None,
        widget=[{"text": t} for t in kind.widget] if kind and run.corpus != "custom" else None,
    )

    title = (
        (kind.custom_title if custom and kind.custom_title else kind.title)
        if kind
        else "token classification"
    )
    encoder_text = (
        f"[`{encoder_hub}`](https://huggingface.co/{encoder_hub})"
        if encoder_hub
        else f"`{encoder or 'unknown'}`"
    )
    what = [f"# {repo_id.split('/')[-1]}", ""]
    what.append(
        f"A model for {title}, fine-tuned from the encoder {encoder_text} with modeling-ade's `train.py`."
    )
    if run.is_adapter:
        base_text = f"[`{base_hub}`](https://huggingface.co/{base_hub})" if base_hub else f"`{adapter_base}`"
        if adapter_base and not base_hub:
            base_text = f"`{Path(adapter_base).name}` (a local model folder when the adapter was trained)"
        what.append(f"\n**This is a PEFT adapter. Base model: {base_text}.**")
    if merged_adapter:
        what.append(f"\nThe weights are a LoRA adapter (`{merged_adapter}`) merged into its base model.")
    if kind:
        what += [
            "",
            "## What it does",
            "",
            kind.custom_summary if custom and kind.custom_summary else kind.summary,
        ]
    labels = run.config.get("entity_types") or sorted(
        {lab.split("-", 1)[1] for lab in (run.config.get("id2label") or {}).values() if "-" in lab}
    )
    if labels:
        what.append(f"\nEntity types: {', '.join(f'`{t}`' for t in labels)}.")
    if run.config.get("relation_labels"):
        rels = [r for r in run.config["relation_labels"][1:]]
        what.append(f"Relation types: {', '.join(f'`{r}`' for r in rels)} (plus the no-relation class).")
        pairs = run.config.get("relation_candidate_types") or []
        what.append(
            f"Candidate pairs (head type → tail type): {', '.join(f'`{h}` → `{t}`' for h, t in pairs)}."
        )
        if run.config.get("symmetric_relations"):
            symmetric = ", ".join(f"`{r}`" for r in run.config["symmetric_relations"])
            what.append(f"Symmetric (reported once, head = the entity that comes first): {symmetric}.")
        if run.config.get("relation_multi_label"):
            what.append("Several relation types may hold between one pair (a sigmoid per relation type).")

    citations = "\n\n".join(
        [
            *METHOD_CITATIONS.get(run.model_type or "", []),
            *[f"```bibtex\n{c}\n```" if c.startswith("@") else c for c in corpus_citations],
        ]
    )
    body = (
        "\n".join(what)
        + f"""

## How to use

{f"Try it in the browser: [{space}](https://huggingface.co/spaces/{space}) (a Gradio demo of this model).{chr(10)}{chr(10)}" if space else ""}{_usage_text(run, repo_id, adapter_base)}
## Inference Endpoints

{ENDPOINT_TEXT if not run.is_adapter else "Inference Endpoints need the full model: push the merged model (`--merge`)."}
## Training data and protocol

{_protocol_text(run)}
## Evaluation

{evaluation_text(blocks, run.corpus)}

{evaluation_table(blocks)}
## Limitations

{_limitations_text(run, encoder, licence)}
## Citation

{citations}
"""
    )
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")
