"""``predict.py signals OUT``: the drug -> adverse-event signal table of a bulk extraction (not Hub code).

Every relation of ``OUT/parts/*.parquet`` counts for its pair ``(tail, head)`` of normalised names (NFKC, case
folded, whitespace collapsed, then mapped by an optional synonym file): for an ADE model the tail is the drug and
the head the adverse effect. Per pair: relation type, sentences (distinct (document, sentence) places), distinct
documents, mean score and up to ``examples`` example sentences with their document ids. Written as
``signals.parquet``, ``signals.csv`` and ``signals.html`` (one offline page: a sortable, filterable table and, per
drug, a bar chart of its most reported effects). Parts are read one at a time: memory grows with the number of
pairs, not of documents.
"""

from __future__ import annotations

import csv
import html
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


def normalise(name: str, synonyms: dict[str, str] | None = None) -> str:
    """NFKC, case folding and collapsed whitespace; then the synonym file's preferred name, if it has one."""
    key = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", name)).strip().casefold()
    return (synonyms or {}).get(key, key)


def read_synonyms(path: str | Path) -> dict[str, str]:
    """A synonym file: ``surface<TAB>preferred name`` per line (``#`` comments and blank lines skipped); both sides
    are normalised, so matching ignores case and spacing."""
    synonyms = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise ValueError(f"{path}:{n}: expected 'surface<TAB>preferred name', got {line!r}")
        synonyms[normalise(parts[0])] = normalise(parts[1])
    return synonyms


@dataclass
class Signal:
    relation: str
    drug: str
    event: str
    drug_type: str
    event_type: str
    places: set[tuple[str, int]] = field(default_factory=set)  # (document id, sentence start)
    documents: set[str] = field(default_factory=set)
    score_sum: float = 0.0
    n_relations: int = 0
    examples: list[dict] = field(default_factory=list)


def aggregate(
    rows: Iterable[dict], synonyms: dict[str, str] | None = None, examples: int = 3
) -> list[Signal]:
    """Signals of output rows (``{"id", "relations": [{"type", "head", "tail", "score", "sentence_start",
    "sentence"}]}``), most reported first (sentences, then documents, then names)."""
    table: dict[tuple[str, str, str], Signal] = {}
    for row in rows:
        for relation in row["relations"] or ():
            drug, event = (
                normalise(relation["tail"]["text"], synonyms),
                normalise(relation["head"]["text"], synonyms),
            )
            key = (relation["type"], drug, event)
            signal = table.get(key)
            if signal is None:
                signal = table[key] = Signal(
                    relation["type"], drug, event, relation["tail"]["type"], relation["head"]["type"]
                )
            place = (row["id"], relation["sentence_start"])
            if place not in signal.places and len(signal.examples) < examples:
                signal.examples.append({"id": row["id"], "sentence": relation["sentence"]})
            signal.places.add(place)
            signal.documents.add(row["id"])
            signal.score_sum += relation["score"]
            signal.n_relations += 1
    return sorted(
        table.values(), key=lambda s: (-len(s.places), -len(s.documents), s.drug, s.event, s.relation)
    )


def signal_rows(signals: list[Signal]) -> list[dict]:
    return [
        {
            "relation": s.relation,
            "drug": s.drug,
            "event": s.event,
            "drug_type": s.drug_type,
            "event_type": s.event_type,
            "n_sentences": len(s.places),
            "n_documents": len(s.documents),
            "mean_score": s.score_sum / s.n_relations,
            "examples": s.examples,
        }
        for s in signals
    ]


def read_output_rows(out: Path) -> Iterable[dict]:
    """The ``id`` and ``relations`` of every row of ``out/parts``, one part file at a time."""
    import pyarrow.parquet as pq

    parts = sorted((out / "parts").glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{out}: no parts/part-*.parquet (not the --output-dir of predict.py)")
    for part in parts:
        yield from pq.read_table(part, columns=["id", "relations"]).to_pylist()


def write_signals(out: Path, synonyms_path: str | None = None, examples: int = 3) -> dict[str, Path]:
    """Aggregate ``out`` and write ``signals.parquet``, ``signals.csv`` and ``signals.html`` into it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    synonyms = read_synonyms(synonyms_path) if synonyms_path else None
    rows = signal_rows(aggregate(read_output_rows(out), synonyms, examples))
    paths = {name: out / f"signals.{name}" for name in ("parquet", "csv", "html")}
    example_type = pa.list_(pa.struct([("id", pa.string()), ("sentence", pa.string())]))
    schema = pa.schema(
        [
            ("relation", pa.string()),
            ("drug", pa.string()),
            ("event", pa.string()),
            ("drug_type", pa.string()),
            ("event_type", pa.string()),
            ("n_sentences", pa.int64()),
            ("n_documents", pa.int64()),
            ("mean_score", pa.float64()),
            ("examples", example_type),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), paths["parquet"])
    with paths["csv"].open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*schema.names[:-1], "example_ids", "example_sentences"])
        for r in rows:
            writer.writerow(
                [r[k] for k in schema.names[:-1]]
                + [
                    " | ".join(e["id"] for e in r["examples"]),
                    " | ".join(e["sentence"] for e in r["examples"]),
                ]
            )
    paths["html"].write_text(render_signals_html(rows, out.name), encoding="utf-8")
    return paths


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Signals: __TITLE__</title>
<style>
body{font-family:sans-serif;margin:1.5em;max-width:80em}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{cursor:pointer;background:#f3f4f6;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.num{text-align:right}.ex{color:#555;font-size:85%}#chart .bar{background:#60a5fa;height:14px;display:inline-block}
#chart div.row{display:flex;align-items:center;gap:.5em;font-size:90%}#chart span.label{width:18em;text-align:right}
</style></head><body>
<h1>Drug → event signals</h1>
<p>__COUNT__ pairs from <code>__TITLE__</code>. Click a column header to sort; type to filter; pick a drug for its
most reported events.</p>
<p><input id="filter" placeholder="filter (drug, event, relation)" size="40">
<select id="drug"><option value="">— drug —</option></select></p>
<div id="chart"></div>
<table id="signals"><thead><tr>
<th data-key="drug">drug</th><th data-key="event">event</th><th data-key="relation">relation</th>
<th data-key="n_sentences" data-num="1">sentences</th><th data-key="n_documents" data-num="1">documents</th>
<th data-key="mean_score" data-num="1">mean score</th><th>examples</th></tr></thead><tbody></tbody></table>
<script id="data" type="application/json">__DATA__</script>
<script>
const rows = JSON.parse(document.getElementById("data").textContent);
let sortKey = "n_sentences", sortDesc = true;
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
function render() {
  const q = document.getElementById("filter").value.toLowerCase();
  const shown = rows.filter(r => !q || (r.drug + " " + r.event + " " + r.relation).toLowerCase().includes(q));
  shown.sort((a, b) => (a[sortKey] < b[sortKey] ? -1 : a[sortKey] > b[sortKey] ? 1 : 0) * (sortDesc ? -1 : 1));
  document.querySelector("#signals tbody").innerHTML = shown.map(r =>
    `<tr><td>${esc(r.drug)}</td><td>${esc(r.event)}</td><td>${esc(r.relation)}</td>` +
    `<td class="num">${r.n_sentences}</td><td class="num">${r.n_documents}</td>` +
    `<td class="num">${r.mean_score.toFixed(3)}</td><td class="ex">` +
    r.examples.map(e => `<div><b>${esc(e.id)}</b>: ${esc(e.sentence)}</div>`).join("") + `</td></tr>`).join("");
  document.querySelectorAll("#signals th[data-key]").forEach(th => {
    th.className = th.dataset.key === sortKey ? (sortDesc ? "sorted-desc" : "sorted-asc") : "";
  });
}
function chart() {
  const drug = document.getElementById("drug").value, box = document.getElementById("chart");
  if (!drug) { box.innerHTML = ""; return; }
  const top = rows.filter(r => r.drug === drug).sort((a, b) => b.n_sentences - a.n_sentences).slice(0, 15);
  const most = Math.max(...top.map(r => r.n_sentences));
  box.innerHTML = `<h2>${esc(drug)}: most reported events</h2>` + top.map(r =>
    `<div class="row"><span class="label">${esc(r.event)}</span>` +
    `<span class="bar" style="width:${Math.round(300 * r.n_sentences / most)}px"></span>${r.n_sentences}</div>`).join("");
}
document.querySelectorAll("#signals th[data-key]").forEach(th => th.addEventListener("click", () => {
  sortDesc = th.dataset.key === sortKey ? !sortDesc : !!th.dataset.num; sortKey = th.dataset.key; render();
}));
document.getElementById("filter").addEventListener("input", render);
const select = document.getElementById("drug");
[...new Set(rows.map(r => r.drug))].sort().forEach(d => select.add(new Option(d, d)));
select.addEventListener("change", chart);
render();
</script></body></html>
"""


def render_signals_html(rows: list[dict], title: str) -> str:
    """The offline signals page (no network: the data is embedded as JSON, the script is inline)."""
    data = json.dumps(rows, ensure_ascii=False).replace("</", "<\\/")
    return (
        PAGE.replace("__TITLE__", html.escape(title))
        .replace("__COUNT__", f"{len(rows):,}")
        .replace("__DATA__", data)
    )


def run_signals(out: str, synonyms: str | None, examples: int) -> int:
    paths = write_signals(Path(out), synonyms, examples)
    print(f"signals -> {', '.join(str(p) for p in paths.values())}")
    return 0


__all__ = ["aggregate", "normalise", "read_synonyms", "run_signals", "write_signals"]
