"""Extraction with a trained joint model: a few files to JSONL (and HTML), or a whole literature to Parquet parts.

    python predict.py --model runs/ade notes.txt --output notes.jsonl --html notes.html
    python predict.py --model runs/ade reports.jsonl --text-column abstract --output out.jsonl
    accelerate launch predict.py --model runs/ade pubmed/*.xml.gz --output-dir out/pubmed     # streamed, resumable
    python predict.py signals out/pubmed                                                       # drug -> event table

``--output`` (one file): plain text, one document per line (empty lines are kept as empty documents, so line N of
the input is line N of the output), or JSONL with the text in ``--text-column``; the other fields are copied to
the output. Each output line adds ``entities`` and ``relations`` as returned by the ``ade-extraction`` pipeline
(character offsets into the text).

``--output-dir`` (a literature): any number of text / JSONL / Parquet / PubMed XML files (gzip allowed), folders,
globs or ``datasets`` datasets, streamed in chunks, shared out over the processes of ``accelerate launch``, written
as Parquet parts with a manifest, resumable (:mod:`modeling_ade.bulk_predict`); ``predict.py signals OUT`` then
aggregates the relations (:mod:`modeling_ade.signals`).
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


def read_documents(path: Path, text_fields: list[str], input_format: str) -> list[dict]:
    """Read documents as dicts: ``{"text": line}`` for plain text, the JSONL object itself otherwise (the text
    stays in ``text_fields``); errors name the file, line and field."""
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
            for text_field in text_fields:
                if not isinstance(record, dict) or text_field not in record:
                    raise InputError(f"{path}:{line_no}: field {text_field!r} missing (use --text-column)")
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
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="with --output: one plain-text file (one document per line) or JSONL file; with --output-dir: files "
        "(.txt, .jsonl, .json, .parquet, PubMed .xml, each optionally .gz), folders, globs, a datasets folder or "
        "a Hub dataset id",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="trained model folder (train.py ade|joint output, a full model or a LoRA adapter) or Hub id",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", type=Path, help="JSONL file to write, one line per document (a few files)")
    where.add_argument(
        "--output-dir",
        type=Path,
        help="folder for a literature-scale job: Parquet parts, manifest.json, errors.jsonl; resumable",
    )
    parser.add_argument(
        "--html", type=Path, default=None, help="with --output: also write an HTML page for reviewers"
    )
    parser.add_argument(
        "--format",
        choices=["auto", "text", "jsonl"],
        default="auto",
        help="with --output: input format (default: auto, from the extension: .jsonl/.json = JSONL)",
    )
    parser.add_argument(
        "--text-column",
        "--text-field",
        dest="text_columns",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="field(s) holding the text, joined by a blank line when several (title abstract) (default: text; "
        "title abstract for PubMed XML)",
    )
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
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default="float32",
        help="weights and activations of the model: bfloat16 / float16 for a GPU (scores are computed in float32 "
        "either way) (default: float32)",
    )
    parser.add_argument(
        "--onnx",
        choices=["fp32", "int8"],
        default=None,
        help="run the encoder on ONNX Runtime, from the model's onnx/ folder (written by python -m "
        "modeling_ade.export MODEL [--int8]; needs pip install 'modeling-ade[onnx]'): fp32 gives the same "
        "entities and relations as PyTorch, int8 is faster and close (default: PyTorch)",
    )
    bulk = parser.add_argument_group("literature scale (--output-dir)")
    bulk.add_argument(
        "--id-column",
        default=None,
        help="column holding each document's id (default: FILE:ROW, the 0-based row in its file; PMID for PubMed)",
    )
    bulk.add_argument(
        "--copy-columns", nargs="+", default=(), metavar="COLUMN", help="columns copied to the output rows"
    )
    bulk.add_argument(
        "--chunk-size",
        type=positive_int,
        default=1000,
        help="documents per chunk: the unit of writing and of resuming (default: 1000)",
    )
    bulk.add_argument(
        "--max-chars",
        type=positive_int,
        default=1_000_000,
        help="a longer document is a bad row (errors.jsonl), not extracted (default: 1000000)",
    )
    bulk.add_argument("--dataset-config", default=None, help="configuration of a datasets INPUT")
    bulk.add_argument("--dataset-split", default="train", help="split of a datasets INPUT (default: train)")
    bulk.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an --output-dir that holds another job (its parts are deleted)",
    )
    return parser


def build_signals_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict.py signals",
        description="Aggregate the relations of a predict.py --output-dir into a drug -> event signal table: "
        "signals.parquet, signals.csv and signals.html in OUT.",
    )
    parser.add_argument("out", metavar="OUT", help="the --output-dir of a finished predict.py job")
    parser.add_argument(
        "--synonyms",
        default=None,
        help="file of 'surface<TAB>preferred name' lines mapping drug and event names to one name",
    )
    parser.add_argument(
        "--examples", type=positive_int, default=3, help="example sentences per pair (default: 3)"
    )
    return parser


def check_outputs(args, source: Path) -> None:
    """Refuse outputs that would overwrite the input."""
    for flag, target in (("--output", args.output), ("--html", args.html)):
        if target is not None and target.resolve() == source.resolve():
            raise InputError(
                f"{flag} {target} is the input file: it would be overwritten; choose another path"
            )
        if target is not None and target.is_dir():
            raise InputError(f"{flag} {target} is a folder; give a file path")


def check_model(args) -> None:
    """Refuse a ``--model`` path that is not a model folder."""
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


def load_extractor(args):
    """The ``ade-extraction`` pipeline of ``--model`` (a LoRA folder is merged first); InputError if it cannot
    be loaded."""
    import torch
    from transformers import AutoTokenizer, pipeline

    try:  # installed: use this project's classes; else the model folder's own code (--trust-remote-code)
        from modeling_ade import AdeExtractionPipeline
    except ImportError:
        AdeExtractionPipeline = None
    model = args.model
    if args.onnx and (Path(args.model) / "adapter_config.json").is_file():
        raise InputError(
            f"--onnx: {args.model} is a LoRA adapter; python -m modeling_ade.export {args.model} --output OUT "
            "merges it into its base and exports it: then give --model OUT"
        )
    if args.onnx and args.dtype != "float32":
        raise InputError(f"--onnx {args.onnx} runs in its own precision: leave out --dtype {args.dtype}")
    if args.onnx:  # loaded here, so that a missing or stale export is named in one line
        from transformers import AutoModel

        try:
            model = AutoModel.from_pretrained(
                args.model, trust_remote_code=args.trust_remote_code, onnx=args.onnx
            ).eval()
        except (FileNotFoundError, ValueError, ImportError) as err:  # no export, a stale one, no onnxruntime
            raise InputError(f"--onnx {args.onnx}: {str(err).splitlines()[0]}") from None
        except OSError as err:  # a Hub id that cannot be reached or has no model files
            raise InputError(
                f"--model {args.model}: cannot load the model: {str(err).splitlines()[0]}"
            ) from None
    if (Path(args.model) / "adapter_config.json").is_file():  # a LoRA run's folder: rebuilt and merged
        from modeling_ade.artifacts import load_trained

        model = load_trained(args.model, merge=True).to(getattr(torch, args.dtype))
    try:
        return pipeline(
            "ade-extraction",
            model=model,
            dtype=None if model is not args.model else getattr(torch, args.dtype),
            tokenizer=None if model is args.model else AutoTokenizer.from_pretrained(args.model),
            pipeline_class=None if args.trust_remote_code else AdeExtractionPipeline,
            trust_remote_code=args.trust_remote_code,
        )
    except ImportError as err:  # a package the model's own code needs
        raise InputError(f"--model {args.model}: {str(err).splitlines()[0]}") from None
    except OSError as err:  # a Hub id that cannot be reached or has no model files
        raise InputError(f"--model {args.model}: cannot load the model: {str(err).splitlines()[0]}") from None


BULK_ONLY = ("id_column", "copy_columns", "overwrite", "dataset_config")


def run_signals(argv: list[str]) -> int:
    args = build_signals_parser().parse_args(argv)
    from modeling_ade.signals import run_signals as write

    try:
        return write(args.out, args.synonyms, args.examples)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def run_bulk(args, argv: list[str]) -> int:
    """``--output-dir``: the literature-scale job (:mod:`modeling_ade.bulk_predict`)."""
    from modeling_ade.bulk_predict import BulkRunError, BulkSettings, run_job
    from modeling_ade.doc_sources import SourceError

    settings = BulkSettings(
        text_columns=tuple(args.text_columns or ("text",)),
        id_column=args.id_column,
        copy_columns=tuple(args.copy_columns),
        chunk_size=args.chunk_size,
        chunk_bytes=1 << 18,  # units of plain text / JSONL: 256 KB, so even one file is shared out evenly
        max_chars=args.max_chars,
        max_length=args.max_length,
        stride=args.stride,
        split_sentences=not args.no_sentence_split,
        dataset_config=args.dataset_config,
        dataset_split=args.dataset_split,
        dtype=args.dtype,
        onnx=args.onnx,
    )
    try:
        check_model(args)
        extractor = load_extractor(args)
        command = "predict.py " + " ".join(argv)
        return run_job(
            extractor,
            args.model,
            args.inputs,
            args.output_dir,
            settings,
            args.batch_size,
            args.overwrite,
            command,
        )
    except (InputError, SourceError, BulkRunError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "signals":
        return run_signals(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output_dir is not None:
        if args.html or args.format != "auto":
            parser.error(
                "--html and --format apply to --output (one file); --output-dir writes Parquet parts"
            )
        return run_bulk(args, argv)
    given = [f"--{name.replace('_', '-')}" for name in BULK_ONLY if getattr(args, name)]
    if given:
        parser.error(f"{', '.join(given)} apply to --output-dir only")
    if len(args.inputs) != 1:
        parser.error("--output takes one input file; give --output-dir for many files, folders or globs")
    source = Path(args.inputs[0])
    text_fields = list(args.text_columns or ["text"])
    try:
        check_outputs(args, source)
        check_model(args)
        documents = read_documents(source, text_fields, args.format)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not documents:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("", encoding="utf-8")
        if args.html:
            args.html.write_text(render_html([], []), encoding="utf-8")
        print(f"{source} holds no document: wrote an empty {args.output}", file=sys.stderr)
        return 0
    try:
        extract = load_extractor(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    options = {
        **({"stride": args.stride} if args.stride else {}),
        **({"max_length": args.max_length} if args.max_length else {}),
    }
    if args.no_sentence_split:
        options["split_sentences"] = False
    results = []
    texts = [
        "\n\n".join(doc[f] for f in text_fields) if text_fields[0] in doc else doc["text"]
        for doc in documents
    ]
    # a generator, not the list: the pipeline then yields each document's result as it is done, so the bar moves
    for result in tqdm(
        extract((t for t in texts), batch_size=args.batch_size, **options),
        total=len(documents),
        desc="extract",
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
