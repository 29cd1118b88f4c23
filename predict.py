"""Batch prediction with a trained ADE model: plain text or JSONL in, JSONL (and optionally HTML) out.

    python predict.py --model runs/ade notes.txt --output notes.jsonl --html notes.html
    python predict.py --model runs/ade reports.jsonl --text-field abstract --output out.jsonl

Plain text: one document per line (empty lines are kept as empty documents, so line N of the input is
line N of the output). JSONL: one object per line with the text in ``--text-field``; the other fields are
copied to the output. Each output line adds ``entities`` and ``relations`` as returned by the
``ade-extraction`` pipeline (character offsets into the text).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

from modeling_ade.settings import positive_int


class InputError(ValueError):
    """A line of the input file cannot be used."""


def read_documents(path: Path, text_field: str, input_format: str) -> list[dict]:
    """Read documents as dicts: ``{"text": line}`` for plain text, the JSONL object itself otherwise (the text
    stays in ``text_field``); errors name the file, line and field."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    fmt = (
        input_format
        if input_format != "auto"
        else ("jsonl" if path.suffix in {".jsonl", ".json"} else "text")
    )
    documents = []
    offset = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise InputError(
                    f"{path}:{line_no}: not UTF-8 (byte 0x{raw[err.start]:02x} at byte offset "
                    f"{offset + err.start} of the file, column {err.start + 1} of the line)"
                ) from None
            offset += len(raw)
            line = line.rstrip("\r\n")
            if fmt == "text":
                documents.append({"text": line})
                continue
            if not line.strip():
                raise InputError(f"{path}:{line_no}: empty line in a JSONL file")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(
                    f"{path}:{line_no}: not valid JSON ({err.msg} at column {err.colno})"
                ) from None
            if not isinstance(record, dict) or text_field not in record:
                raise InputError(f"{path}:{line_no}: field {text_field!r} missing (use --text-field)")
            if not isinstance(record[text_field], str):
                raise InputError(f"{path}:{line_no}: field {text_field!r} is not a string")
            for clash in ("entities", "relations"):
                if clash in record:
                    raise InputError(
                        f"{path}:{line_no}: field {clash!r} would be overwritten by the predictions; rename it"
                    )
            documents.append(record)
    return documents


TYPE_COLOURS = ["#fde68a", "#fca5a5", "#a7f3d0", "#bfdbfe", "#ddd6fe", "#fbcfe8", "#fed7aa", "#e5e7eb"]


def render_html(texts: list[str], results: list[dict]) -> str:
    """One self-contained page: each text with its entities highlighted by type and its relations listed."""
    types = sorted({e["type"] for r in results for e in r["entities"]})
    colour = {t: TYPE_COLOURS[i % len(TYPE_COLOURS)] for i, t in enumerate(types)}
    legend = " ".join(
        f'<span class="ent" style="background:{colour[t]}">{html.escape(t)}</span>' for t in types
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Entity and relation extraction</title><style>"
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.7}"
        ".doc{border-bottom:1px solid #ddd;padding:1em 0}.ent{padding:1px 3px;border-radius:3px}"
        ".ent sub{font-size:65%;color:#555;margin-left:2px}.rels{color:#333;font-size:90%}"
        "</style></head><body>",
        f"<h1>Entity and relation extraction</h1><p>{len(texts)} documents. Entity types: {legend}</p>",
    ]
    for n, (text, result) in enumerate(zip(texts, results), start=1):
        cursor, pieces = 0, []
        for entity in sorted(result["entities"], key=lambda e: (e["start"], -e["end"])):
            if entity["start"] < cursor:  # overlapping prediction: listed in the table below only
                continue
            pieces.append(html.escape(text[cursor : entity["start"]]))
            pieces.append(
                f'<span class="ent" style="background:{colour[entity["type"]]}" '
                f'title="{html.escape(entity["type"])} {entity["score"]:.2f}">{html.escape(entity["text"])}'
                f"<sub>{html.escape(entity['type'])}</sub></span>"
            )
            cursor = entity["end"]
        pieces.append(html.escape(text[cursor:]))
        relations = "".join(
            "<li>"
            + " → ".join(  # tail → head: drug → adverse effect for ADE (head = the effect, tail = the drug)
                f"{html.escape(v['text'])} <small>({html.escape(v['type'])})</small>"
                for v in reversed([v for v in rel.values() if isinstance(v, dict)])
            )
            + f" <small>{html.escape(rel['type'])} {rel['score']:.2f}</small></li>"
            for rel in result["relations"]
        )
        parts.append(
            f'<div class="doc"><b>#{n}</b> {"".join(pieces)}'
            f'<div class="rels">{"<ul>" + relations + "</ul>" if relations else "no relation found"}</div></div>'
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", type=Path, help="plain-text file (one document per line) or JSONL file")
    parser.add_argument(
        "--model",
        required=True,
        help="trained model folder (train.py ade output, a full model or a LoRA adapter) or Hub id",
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="JSONL file to write, one line per document"
    )
    parser.add_argument("--html", type=Path, default=None, help="also write an HTML page for reviewers")
    parser.add_argument(
        "--format",
        choices=["auto", "text", "jsonl"],
        default="auto",
        help="input format (default: auto, from the extension: .jsonl/.json = JSONL)",
    )
    parser.add_argument("--text-field", default="text", help="JSONL field holding the text (default: text)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=16, help="windows per forward pass (default: 16)"
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per window; longer sentences are windowed, never cut (default: the model's training "
        "length, config.train_max_length)",
    )
    parser.add_argument(
        "--no-sentence-split",
        action="store_true",
        help="treat each document as one sentence (default: split documents into sentences with sentencex; "
        "relations never cross a sentence boundary)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        help="tokens shared by neighbouring windows (default: 32, or a quarter of a shorter window)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="load the model's own code from its folder/Hub repo (needed when modeling_ade is not installed)",
    )
    return parser


def check_paths(args) -> None:
    """Refuse outputs that would overwrite the input, and a ``--model`` path that is not a model folder."""
    source = args.input.resolve()
    for flag, target in (("--output", args.output), ("--html", args.html)):
        if target is not None and target.resolve() == source:
            raise InputError(
                f"{flag} {target} is the input file: it would be overwritten; choose another path"
            )
        if target is not None and target.is_dir():
            raise InputError(f"{flag} {target} is a folder; give a file path")
    model = Path(args.model)
    looks_like_path = model.is_absolute() or args.model.startswith((".", "~")) or args.model.count("/") != 1
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if model.exists() or looks_like_path or offline:
        if not model.is_dir():
            raise InputError(
                f"--model {args.model}: no such model folder"
                + (
                    " (and the Hub is offline: HF_HUB_OFFLINE is set)"
                    if offline and not looks_like_path
                    else ""
                )
            )
        if not (model / "config.json").is_file():
            raise InputError(f"--model {args.model}: no config.json in this folder (not a saved model)")
        try:
            json.loads((model / "config.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"--model {args.model}: config.json is not valid JSON ({err})") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_paths(args)
        documents = read_documents(args.input, args.text_field, args.format)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not documents:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("", encoding="utf-8")
        if args.html:
            args.html.write_text(render_html([], []), encoding="utf-8")
        print(f"{args.input} holds no document: wrote an empty {args.output}", file=sys.stderr)
        return 0
    from transformers import pipeline

    try:  # installed: use this project's classes; else the model folder's own code (--trust-remote-code)
        from modeling_ade import AdeExtractionPipeline
    except ImportError:
        AdeExtractionPipeline = None
    model = args.model
    if (Path(args.model) / "adapter_config.json").is_file():  # a LoRA run's folder: rebuilt and merged
        from transformers import AutoTokenizer

        from modeling_ade.artifacts import load_trained

        model = load_trained(args.model, merge=True)
    try:
        extract = pipeline(
            "ade-extraction",
            model=model,
            tokenizer=None if model is args.model else AutoTokenizer.from_pretrained(args.model),
            pipeline_class=None if args.trust_remote_code else AdeExtractionPipeline,
            trust_remote_code=args.trust_remote_code,
        )
    except OSError as err:  # a Hub id that cannot be reached or has no model files
        print(
            f"error: --model {args.model}: cannot load the model: {str(err).splitlines()[0]}", file=sys.stderr
        )
        return 2
    options = {
        **({"stride": args.stride} if args.stride else {}),
        **({"max_length": args.max_length} if args.max_length else {}),
    }
    if args.no_sentence_split:
        options["split_sentences"] = False
    results = []
    texts = [doc[args.text_field] if args.text_field in doc else doc["text"] for doc in documents]
    for result in tqdm(
        extract(texts, batch_size=args.batch_size, **options), total=len(documents), desc="extract"
    ):
        results.append(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as handle:
        for doc, result in zip(documents, results):
            handle.write(json.dumps({**doc, **result}, ensure_ascii=False) + "\n")
    if args.html:
        args.html.write_text(render_html(texts, results), encoding="utf-8")
    n_ent = sum(len(r["entities"]) for r in results)
    n_rel = sum(len(r["relations"]) for r in results)
    print(
        f"{len(documents)} documents, {n_ent} entities, {n_rel} relations -> {args.output}"
        + (f" and {args.html}" if args.html else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
