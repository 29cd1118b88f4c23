"""A demo people can click: a modeling-ade model in a Gradio page (a Hugging Face Space, or on your machine).

    python app.py --model runs/demo/model          # a local train.py output folder
    python app.py --model USER/NAME --revision SHA  # a Hub model, pinned

On a Space (written by ``push_to_hub.py space``), MODEL_REPO and MODEL_REVISION below name the model. The page
shows the text with its entities highlighted by type and, for a joint NER + relation model (the ``ade-extraction``
pipeline), a table of the relations found (head entity -> tail entity, type, score). The model runs its own code
(``trust_remote_code=True``), so MODEL_REVISION pins a reviewed commit. Needs ``gradio``, ``transformers``,
``torch`` and ``sentencex``; not modeling-ade.
"""

from __future__ import annotations

import argparse
import os

import gradio as gr
from transformers import AutoConfig, pipeline

MODEL_REPO = None  # written by push_to_hub.py space
MODEL_REVISION = None  # the model repository's commit this Space was made for

EXAMPLES = {
    "en": [
        "Intravenous azithromycin-induced ototoxicity was observed in a patient with AIDS.",
        "We describe a case of severe hepatotoxicity after methotrexate and an urticarial rash attributed to "
        "amoxicillin.",
    ],
    "zh": ["患者服用阿斯匹靈後出現胃痛，並有頭暈的症狀。", "醫師建議每天量血壓並減少攝取鈉。"],
}
RELATION_HEADERS = ["relation", "head", "tail", "score"]


def load(model: str, revision: str | None):
    """``(kind, extractor, language)``: the ``ade-extraction`` pipeline for a joint model (its config names it in
    ``custom_pipelines``), else token classification with entities grouped."""
    config = AutoConfig.from_pretrained(model, revision=revision, trust_remote_code=True)
    if "ade-extraction" in (getattr(config, "custom_pipelines", None) or {}):
        extractor = pipeline("ade-extraction", model=model, revision=revision, trust_remote_code=True)
        return "relations", extractor, getattr(config, "language", None) or "en"
    extractor = pipeline(
        "token-classification",
        model=model,
        revision=revision,
        trust_remote_code=True,
        aggregation_strategy="simple",
    )
    return (
        "entities",
        extractor,
        getattr(config, "language", None) or "zh",
    )  # BERT-CRF here: Chinese HealthNER


def extract(kind: str, extractor, text: str) -> tuple[dict, list[list]]:
    """The page's two outputs: the text with its entity spans (``HighlightedText``), and the relation rows."""
    if not text.strip():
        return {"text": text, "entities": []}, []
    if kind == "entities":
        found = [{"entity": e["entity_group"], "start": e["start"], "end": e["end"]} for e in extractor(text)]
        return {"text": text, "entities": found}, []
    result = extractor(text)
    found = [{"entity": e["type"], "start": e["start"], "end": e["end"]} for e in result["entities"]]
    rows = []
    for relation in result["relations"]:
        head, tail = ((k, v) for k, v in relation.items() if isinstance(v, dict))  # keyed by the entity types
        rows.append(
            [
                relation["type"],
                f"{head[1]['text']} ({head[0]})",
                f"{tail[1]['text']} ({tail[0]})",
                round(float(relation["score"]), 3),
            ]
        )
    return {"text": text, "entities": found}, rows


def build(kind: str, extractor, language: str, title: str) -> gr.Blocks:
    with gr.Blocks(title=title) as demo:
        gr.Markdown(f"# {title}\nType or paste text, then **Extract**.")
        text = gr.Textbox(label="Text", lines=4, elem_id="text")
        button = gr.Button("Extract", variant="primary", elem_id="extract")
        entities = gr.HighlightedText(label="Entities", elem_id="entities", combine_adjacent=False)
        relations = gr.Dataframe(
            headers=RELATION_HEADERS,
            label="Relations",
            elem_id="relations",
            visible=kind == "relations",
            interactive=False,
        )
        gr.Examples(EXAMPLES.get(language, EXAMPLES["en"]), inputs=text)

        def run(value: str):
            return extract(kind, extractor, value)

        button.click(run, inputs=text, outputs=[entities, relations])
        text.submit(run, inputs=text, outputs=[entities, relations])
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=MODEL_REPO, help="model folder or Hub id (default: MODEL_REPO)")
    parser.add_argument(
        "--revision", default=None, help="Hub commit of --model (default: MODEL_REVISION, for MODEL_REPO)"
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME"), help="address to serve on")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860)")
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("--model is required (a train.py output folder or a Hub model id)")
    if args.revision is None and args.model == MODEL_REPO:
        args.revision = MODEL_REVISION
    try:
        kind, extractor, language = load(args.model, args.revision)
    except (
        OSError,
        ValueError,
    ) as err:  # no such folder or repo, not a model, no network: one line, no traceback
        parser.error(f"--model {args.model}: cannot load the model: {str(err).splitlines()[0]}")
    title = f"{args.model.rstrip('/')}: " + ("entities and relations" if kind == "relations" else "entities")
    build(kind, extractor, language, title).launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
