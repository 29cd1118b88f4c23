"""``predict.py --output-dir OUT``: extraction over a whole literature, streamed, on many processes, resumable
(not Hub code).

Work is cut into chunks: each :class:`~modeling_ade.doc_sources.Unit` of the input (the same list in every
process) belongs to process ``unit_index % num_processes`` and is read as consecutive chunks of ``--chunk-size``
documents. A chunk is written atomically as ``OUT/parts/part-UUUUUU-KKKKK.parquet`` (a temporary file, then a
rename), then recorded as ``OUT/chunks/UUUUUU-KKKKK.json`` (its counts and bad rows); a unit read to its end is
recorded as ``OUT/chunks/UUUUUU.done.json``. Running the same command again does only what is not recorded, so no
document is lost or written twice, whatever crashed. ``OUT/manifest.json`` holds the model and its hash, the
inputs, the settings and the unit plan (a different model, input or setting refuses to continue; ``--overwrite``
starts afresh), and at the end the totals; ``OUT/errors.jsonl`` lists every bad row (file, row, id, reason).

Sentences of many documents are batched together, sorted by length (:func:`extract_documents`); each document's
result is exactly the ``ade-extraction`` pipeline's, with every relation's sentence added.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .doc_sources import Columns, Row, Unit, plan_units, read_unit
from .hub.pipeline_ade_extraction import relation_probabilities, sentence_spans

MANIFEST_VERSION = 1


class BulkRunError(RuntimeError):
    """``OUT`` holds another job (model, inputs or settings differ): the message says what and how to proceed."""


# --------------------------------------------------------------------------------------------------------
# Extraction: windows of many documents batched together
# --------------------------------------------------------------------------------------------------------


def _pad(tensors: Sequence[torch.Tensor], value: int) -> torch.Tensor:
    """``(1, T_i)`` tensors -> ``(B, max T)``, right-padded with ``value``."""
    width = max(t.shape[-1] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[-1]), value=value) for t in tensors])


@torch.inference_mode()
def extract_documents(
    extractor, texts: Sequence[str], batch_size: int, timing: dict | None = None, **options
) -> list[dict]:
    """``extractor(texts)`` (an ``ade-extraction`` pipeline), with the windows of all documents sorted by length
    and batched across documents, so short sentences are not padded to long ones. Each result is what the pipeline
    returns for the document, plus ``num_sentences``; every relation gains ``sentence_start`` / ``sentence_end``,
    the character span of the sentence it was found in. ``timing["forward_seconds"]``, when given, adds up the
    time spent in the model's forward passes."""
    preprocess_params = extractor._sanitize_parameters(**options)[0]
    windows: list[tuple[int, dict]] = []
    for d, text in enumerate(texts):
        windows += [(d, inputs) for inputs in extractor.preprocess(text, **preprocess_params)]
    order = sorted(range(len(windows)), key=lambda i: windows[i][1]["input_ids"].shape[-1])
    model, device = extractor.model, extractor.device
    multi_label = getattr(model.config, "relation_multi_label", False)
    outputs: list[dict | None] = [None] * len(windows)
    pad_id = extractor.tokenizer.pad_token_id or 0
    for b0 in range(0, len(order), batch_size):
        batch = [windows[i][1] for i in order[b0 : b0 + batch_size]]
        inputs = {
            "input_ids": _pad([w["input_ids"] for w in batch], pad_id),
            "attention_mask": _pad([w["attention_mask"] for w in batch], 0),
            "word_index": _pad([w["word_index"] for w in batch], 0),
        }
        if "token_type_ids" in batch[0]:
            inputs["token_type_ids"] = _pad([w["token_type_ids"] for w in batch], 0)
        started = time.perf_counter()
        out = model(**{k: v.to(device) for k, v in inputs.items()})
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if timing is not None:
            timing["forward_seconds"] = timing.get("forward_seconds", 0.0) + time.perf_counter() - started
        probs = relation_probabilities(out.relation_logits, multi_label).cpu()
        gate = (
            None
            if out.get("sentence_logits") is None
            else out.sentence_logits.float().softmax(-1)[:, 1].cpu()
        )
        spans, scores, pairs = out.entity_spans.cpu(), out.entity_scores.cpu(), out.relation_pairs.cpu()
        for b, i in enumerate(order[b0 : b0 + batch_size]):
            window = windows[i][1]
            result = {
                "offset_mapping": window["offset_mapping"],
                "num_tokens": window["attention_mask"].sum(-1),
                "entity_spans": spans[b : b + 1],
                "entity_scores": scores[b : b + 1],
                "relation_pairs": pairs[b : b + 1],
                "relation_probs": probs[b : b + 1],
                "text": window["text"],
                "first_window": window["first_window"],
                "last_window": window["last_window"],
            }
            if gate is not None:
                result["sentence_probability"] = gate[b : b + 1]
            outputs[i] = result
    per_doc: list[list[dict]] = [[] for _ in texts]
    for (d, _), output in zip(windows, outputs):
        per_doc[d].append(output)
    results = []
    for text, doc_outputs in zip(texts, per_doc):
        result = extractor.postprocess(doc_outputs)
        result["num_sentences"] = sum(bool(o["first_window"].reshape(-1)[0]) for o in doc_outputs)
        if result["relations"]:
            bounds = (
                sentence_spans(text, preprocess_params.get("language") or model.config.language)
                if preprocess_params.get("split_sentences", True)
                else [(0, len(text))]
            )
            for relation in result["relations"]:
                start = min(v["start"] for v in relation.values() if isinstance(v, dict))
                relation["sentence_start"], relation["sentence_end"] = next(
                    ((s, e) for s, e in bounds if s <= start < e), (0, len(text))
                )
        results.append(result)
    return results


def flat_relation(relation: dict, text: str) -> dict:
    """A pipeline relation (entities keyed by type) as a fixed-schema row: ``head``, ``tail`` (in that order),
    ``type``, ``score``, and the sentence it was found in."""
    head, tail = (v for v in relation.values() if isinstance(v, dict))
    start, end = relation["sentence_start"], relation["sentence_end"]
    return {
        "type": relation["type"],
        "head": head,
        "tail": tail,
        "score": relation["score"],
        "sentence_start": start,
        "sentence_end": end,
        "sentence": text[start:end],
    }


# --------------------------------------------------------------------------------------------------------
# The job: manifest, chunks, resume
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkSettings:
    """What a job's output depends on (compared on resume) and how it runs."""

    text_columns: tuple[str, ...]
    id_column: str | None
    copy_columns: tuple[str, ...]
    chunk_size: int
    chunk_bytes: int
    max_chars: int
    max_length: int | None
    stride: int | None
    split_sentences: bool
    dataset_config: str | None
    dataset_split: str
    dtype: str = "float32"  # the model's weights and activations: scores differ slightly between dtypes
    onnx: str | None = None  # the encoder on ONNX Runtime ("fp32" / "int8"), else PyTorch

    @property
    def columns(self) -> Columns:
        return Columns(self.text_columns, self.id_column, self.copy_columns)

    def pipeline_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"split_sentences": self.split_sentences}
        if self.max_length:
            options["max_length"] = self.max_length
        if self.stride:
            options["stride"] = self.stride
        return options


def model_fingerprint(model: str, onnx: str | None = None) -> dict[str, str]:
    """The model folder (or Hub id) and a SHA-256 over its weight and config files (and the ONNX encoder that
    ``onnx`` names, ``onnx/encoder.onnx`` or ``onnx/encoder_int8.onnx``)."""
    from .hub.onnx_encoder import onnx_file

    folder = Path(model)
    digest = hashlib.sha256()
    if folder.is_dir():
        files = sorted(folder.iterdir()) + ([folder / onnx_file(onnx)] if onnx else [])
        for path in files:
            if path.suffix in {".safetensors", ".bin", ".json", ".onnx"} and path.name not in {
                "metrics.json"
            }:
                digest.update(path.name.encode())
                with path.open("rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(block)
    else:
        digest.update(model.encode())
    return {"model": str(model), "sha256": digest.hexdigest()}


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_json(path: Path, payload: dict) -> None:
    _atomic_write(path, (json.dumps(payload, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))


def prepare_output(out: Path, manifest: dict, overwrite: bool) -> bool:
    """Check ``OUT`` against this job (main process). Returns True when the job is already finished.

    Raises :class:`BulkRunError` when ``OUT`` holds another job and ``overwrite`` is not set."""
    path = out / "manifest.json"
    if path.is_file() and not overwrite:
        old = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(old.get("settings"), dict):  # a job started before --dtype existed ran in float32
            old["settings"].setdefault("dtype", "float32")
            old["settings"].setdefault("onnx", None)  # ... and before --onnx, on PyTorch
        differs = []  # every part that differs, named: --onnx changes the settings and the model's hash
        for key, what in (
            ("model", "model"),
            ("inputs", "inputs"),
            ("settings", "settings"),
            ("units", "input files"),
        ):
            if old.get(key) != manifest[key]:
                if key == "settings":  # name the settings: --dtype float32 there, bfloat16 here
                    before, now = old.get(key) or {}, manifest[key]
                    key = ", ".join(
                        f"{k}: {before.get(k)!r} there, {now.get(k)!r} now"
                        for k in sorted(set(before) | set(now))
                        if before.get(k) != now.get(k)
                    )
                differs.append((what, key))
        if differs:
            raise BulkRunError(
                f"{out} holds a job with other {' and '.join(w for w, _ in differs)} "
                f"({'; '.join(k for _, k in differs)} in {path} differs): give another --output-dir, "
                "or --overwrite to start afresh (its parts are deleted)"
            )
        return old.get("status") == "finished"
    if overwrite and out.exists():
        for sub in ("parts", "chunks"):
            for file in (out / sub).glob("*") if (out / sub).is_dir() else ():
                file.unlink()
        for name in ("manifest.json", "errors.jsonl", "summary.json"):
            (out / name).unlink(missing_ok=True)
    elif out.exists() and any(out.iterdir()) and not path.is_file():
        raise BulkRunError(
            f"{out} is not empty and holds no manifest.json: give an empty or new --output-dir"
        )
    (out / "parts").mkdir(parents=True, exist_ok=True)
    (out / "chunks").mkdir(exist_ok=True)
    _write_json(path, {**manifest, "status": "running"})
    return False


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _part_table(rows: list[Row], results: list[dict], copy_columns: Sequence[str]):
    import pyarrow as pa

    entity = pa.struct(
        [
            ("type", pa.string()),
            ("text", pa.string()),
            ("start", pa.int64()),
            ("end", pa.int64()),
            ("score", pa.float64()),
        ]
    )
    relation = pa.struct(
        [
            ("type", pa.string()),
            ("head", entity),
            ("tail", entity),
            ("score", pa.float64()),
            ("sentence_start", pa.int64()),
            ("sentence_end", pa.int64()),
            ("sentence", pa.string()),
        ]
    )
    columns: dict[str, Any] = {"id": pa.array([r.id for r in rows], pa.string())}
    for name in copy_columns:
        columns[name] = pa.array([r.copied.get(name) for r in rows])
    columns["entities"] = pa.array([res["entities"] for res in results], pa.list_(entity))
    columns["relations"] = pa.array(
        [[flat_relation(rel, row.text) for rel in res["relations"]] for row, res in zip(rows, results)],
        pa.list_(relation),
    )
    return pa.table(columns)


class StopRequested(Exception):
    pass


def return_big_blocks(threshold: int = 4 << 20) -> None:
    """Have glibc serve every allocation of ``threshold`` bytes or more with its own ``mmap``, unmapped as soon as
    it is freed (``mallopt(M_MMAP_THRESHOLD)``; glibc otherwise raises this threshold as big blocks are freed, up to
    32 MiB, and then carves activations from a heap that a chunk's mixed shapes fragment). Keeps the peak within a
    chunk from growing with the job's length (BENCHMARKS.md 9; 4 MiB: no measurable cost in speed, while 1 MiB
    cost 8 %). A no-op where there is no glibc."""
    import ctypes
    import ctypes.util

    m_mmap_threshold = -3
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(m_mmap_threshold, threshold)
    except (OSError, AttributeError, TypeError):
        pass


def release_memory() -> None:
    """Hand freed heap back to the system after a chunk (glibc's ``malloc_trim``): the model's many
    differently shaped temporary tensors otherwise leave glibc holding ever more memory (measured: +32 % RSS
    from 20,000 to 200,000 documents without it, flat with it; BENCHMARKS.md 9). A no-op where there is no glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def run_chunk(
    extractor, rows: list[Row], settings: BulkSettings, batch_size: int
) -> tuple[list[Row], list[dict], dict]:
    """Extract one chunk: good rows and their results, and the chunk's record (counts, bad rows)."""
    bad, good = [], []
    for row in rows:
        if row.error is None and len(row.text) > settings.max_chars:
            row.error = f"document of {len(row.text):,} characters (over --max-chars {settings.max_chars:,})"
        (bad if row.error else good).append(row)
    started, timing = time.perf_counter(), {"forward_seconds": 0.0}
    results = extract_documents(
        extractor, [r.text for r in good], batch_size, timing, **settings.pipeline_options()
    )
    record = {
        "documents": len(good),
        "sentences": sum(r.pop("num_sentences") for r in results),
        "entities": sum(len(r["entities"]) for r in results),
        "relations": sum(len(r["relations"]) for r in results),
        "seconds": time.perf_counter() - started,
        "forward_seconds": timing["forward_seconds"],
        "errors": [{"file": r.source, "row": r.row, "id": r.id, "reason": r.error} for r in bad],
    }
    return good, results, record


def process_device(gpus: int, local_processes: int, local_index: int) -> torch.device:
    """The device of one process of a job: the CPU without GPUs; GPU ``local_index`` with one process per GPU
    (NCCL); with more processes than GPUs (tokenising, splitting and writing need several CPU cores per GPU) the
    processes talk over gloo and share the GPUs round-robin."""
    if gpus == 0:
        return torch.device("cpu")
    return torch.device("cuda", local_index % gpus if local_processes > gpus else local_index)


def run_job(
    extractor,
    model: str,
    inputs: Sequence[str],
    out: Path,
    settings: BulkSettings,
    batch_size: int,
    overwrite: bool,
    command: str,
) -> int:
    """The whole job on this process (see the module docstring); returns the exit status."""
    import pyarrow.parquet as pq
    from accelerate import PartialState

    job_started = time.perf_counter()
    return_big_blocks()
    gpus = torch.cuda.device_count()
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    state = PartialState(cpu=gpus == 0 or local_processes > gpus)
    device = process_device(gpus, local_processes, state.local_process_index)
    if device.type != "cpu":
        torch.cuda.set_device(device)  # so nothing of this process lands on another process's GPU
        extractor.model.to(device)
        extractor.device = device
    units = plan_units(inputs, settings.chunk_bytes, settings.dataset_config, settings.dataset_split)
    manifest = {
        "version": MANIFEST_VERSION,
        "model": model_fingerprint(model, settings.onnx),
        "inputs": list(inputs),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
        "units": [asdict(u) for u in units],
        "num_processes_last_run": state.num_processes,
    }
    finished = [False]
    error: list[str] = []
    if state.is_main_process:
        try:
            finished[0] = prepare_output(out, manifest, overwrite)
        except BulkRunError as err:
            error.append(str(err))
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        shared = broadcast_object_list([finished[0], error[0] if error else None])
        finished[0], error = shared[0], [shared[1]] if shared[1] else []
    if error:
        raise BulkRunError(error[0])
    if finished[0]:
        if state.is_main_process:
            print(f"{out}: this job is finished (manifest.json); nothing to do")
        return 0

    stop = {"requested": False}

    def request_stop(signum, frame):  # Ctrl-C: finish the current chunk, then stop
        stop["requested"] = True

    previous = signal.signal(signal.SIGINT, request_stop)
    chunk_dir, part_dir = out / "chunks", out / "parts"
    mine = [i for i in range(len(units)) if i % state.num_processes == state.process_index]
    bar = tqdm(unit="doc", desc="extract", disable=not state.is_main_process, dynamic_ncols=True)
    tally = Tally(chunk_dir)
    documents_before, sentences_before = tally.update() if state.is_main_process else (0, 0)
    bar.update(documents_before)
    try:
        for index in mine:
            unit = units[index]
            if (chunk_dir / f"{index:06d}.done.json").is_file():
                continue
            for k, rows in enumerate(
                _chunks(
                    read_unit(unit, settings.columns, settings.dataset_config, settings.dataset_split),
                    settings.chunk_size,
                )
            ):
                name = f"{index:06d}-{k:05d}"
                if (chunk_dir / f"{name}.json").is_file():
                    continue  # written by an earlier run
                good, results, record = run_chunk(extractor, rows, settings, batch_size)
                table = _part_table(good, results, settings.copy_columns)
                tmp = part_dir / f".part-{name}.{os.getpid()}.tmp"
                pq.write_table(table, tmp)
                os.replace(tmp, part_dir / f"part-{name}.parquet")
                _write_json(chunk_dir / f"{name}.json", {"unit": index, "chunk": k, **record})
                del good, results, table
                release_memory()
                if state.is_main_process:  # one bar: every process's finished chunks
                    documents, sentences = tally.update()
                    bar.update(documents - bar.n)
                    elapsed = max(bar.format_dict["elapsed"], 1e-9)
                    bar.set_postfix(
                        sentences=f"{sentences:,}",
                        sent_per_s=f"{(sentences - sentences_before) / elapsed:.1f}",
                    )
                if stop["requested"]:
                    raise StopRequested
            _write_json(chunk_dir / f"{index:06d}.done.json", {"unit": index, **asdict(unit)})
    except StopRequested:
        print(
            f"stopped after a chunk (Ctrl-C); run the same command to continue:\n  {command}", file=sys.stderr
        )
        return 130
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    if state.num_processes > 1 and state.device.type == "cpu":
        # gloo: not state.wait_for_everyone(), which in accelerate < 1.16 passes device_ids=[local rank] to gloo too,
        # so with more processes than GPUs the barrier asked for a GPU that is not there (seen on a one-GPU machine)
        torch.distributed.barrier()
    else:
        state.wait_for_everyone()
    if state.is_main_process:
        summary = finish(out, units)
        elapsed = max(time.perf_counter() - job_started, 1e-9)
        done = summary["documents"] - documents_before
        print(
            summary_line(summary, out)
            + f"\nthis run: {done:,} documents in {elapsed:.1f} s ({done / elapsed:.1f} documents/s, "
            f"{(summary['sentences'] - sentences_before) / elapsed:.1f} sentences/s, {state.num_processes} process(es))"
        )
    return 0


class Tally:
    """Documents and sentences of every chunk recorded in ``chunk_dir`` by any process; each record is read once."""

    def __init__(self, chunk_dir: Path):
        self.chunk_dir, self.seen, self.documents, self.sentences = chunk_dir, set(), 0, 0

    def update(self) -> tuple[int, int]:
        for path in self.chunk_dir.glob("*-*.json"):
            if path.name in self.seen:
                continue
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # being written: read next time
            self.seen.add(path.name)
            self.documents += record["documents"]
            self.sentences += record["sentences"]
        return self.documents, self.sentences


def finish(out: Path, units: Sequence[Unit]) -> dict:
    """Main process, after every process is done: totals and errors into ``manifest.json`` and
    ``errors.jsonl``; duplicated ids (across all parts) are reported there too."""

    chunk_dir = out / "chunks"
    records = sorted(
        (json.loads(p.read_text(encoding="utf-8")) for p in chunk_dir.glob("*-*.json")),
        key=lambda r: (r["unit"], r["chunk"]),
    )
    missing = [i for i in range(len(units)) if not (chunk_dir / f"{i:06d}.done.json").is_file()]
    errors = [e for r in records for e in r["errors"]]
    errors += duplicated_ids(sorted((out / "parts").glob("part-*.parquet")))
    with (out / ".errors.jsonl.tmp").open("w", encoding="utf-8") as handle:
        for e in errors:
            handle.write(json.dumps(e, ensure_ascii=False) + "\n")
    os.replace(out / ".errors.jsonl.tmp", out / "errors.jsonl")
    totals = {
        key: sum(r[key] for r in records) for key in ("documents", "sentences", "entities", "relations")
    }
    totals["errors"] = len(errors)
    totals["extract_seconds"] = sum(r["seconds"] for r in records)  # splitting, batching, model, decoding
    totals["forward_seconds"] = sum(r.get("forward_seconds", 0.0) for r in records)  # the model alone
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["status"] = "finished" if not missing else "incomplete"
    manifest["totals"] = totals
    manifest["chunks"] = {
        f"{r['unit']:06d}-{r['chunk']:05d}": {k: r[k] for k in ("documents", "entities", "relations")}
        | {"errors": len(r["errors"])}
        for r in records
    }
    _write_json(out / "manifest.json", manifest)
    return totals


def duplicated_ids(parts: Sequence[Path]) -> list[dict]:
    """An error record for every output row whose id another row has too (Arrow's ``value_counts`` over the
    id columns: compact even for tens of millions of ids), naming the part files that hold it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not parts:
        return []
    ids = pa.chunked_array(
        [pq.read_table(p, columns=["id"]).column("id").combine_chunks() for p in parts], pa.string()
    )
    counts = pc.value_counts(ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return []
    where: dict[str, list[str]] = {}
    for part in parts:
        column = pq.read_table(part, columns=["id"]).column("id")
        for row_id in column.filter(pc.is_in(column, value_set=repeated)).to_pylist():
            where.setdefault(row_id, []).append(part.name)
    return [
        {"file": files[i], "row": None, "id": row_id, "reason": f"duplicated id (also in {files[0]})"}
        for row_id, files in where.items()
        for i in range(1, len(files))
    ]


def summary_line(totals: dict, out: Path) -> str:
    return (
        f"{totals['documents']:,} documents, {totals['sentences']:,} sentences, {totals['entities']:,} entities, "
        f"{totals['relations']:,} relations, {totals['errors']:,} bad rows (errors.jsonl) -> {out}"
    )
