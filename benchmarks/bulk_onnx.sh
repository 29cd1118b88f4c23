#!/usr/bin/env bash
# BENCHMARKS 9.2: predict.py --output-dir on the rebuilt abstracts, 1 process, 1 thread: PyTorch, ONNX fp32, ONNX int8,
# and how many documents each backend gives exactly PyTorch's entities and relations.
#   bash benchmarks/bulk_onnx.sh MODEL ABSTRACTS_JSONL WORK     (ABSTRACTS_JSONL: bench_bulk.py's abstracts.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 abstracts=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
.venv/bin/python -m modeling_ade.export "$model" --int8 --output "$work/model" > "$work/export.log" 2>&1
for backend in pytorch fp32 int8; do
  extra=(); [[ $backend != pytorch ]] && extra=(--onnx "$backend")
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false /usr/bin/time -v .venv/bin/python \
    predict.py "$abstracts" --model "$work/model" --id-column id --output-dir "$work/out_$backend" "${extra[@]}" \
    > "$work/$backend.out" 2> "$work/$backend.err"
  echo "$backend $(grep -E 'Elapsed|Maximum resident' "$work/$backend.err" | tr -s ' ' | tr '\n' ' ')"
done
.venv/bin/python - "$work" <<'PY'
import glob, json, sys
import pyarrow.parquet as pq

work = sys.argv[1]
def rows(backend):
    found = {}
    for path in sorted(glob.glob(f"{work}/out_{backend}/parts/*.parquet")):
        for row in pq.read_table(path).to_pylist():
            entities = [(e["type"], e["start"], e["end"]) for e in row["entities"]]
            relations = sorted((r["type"], r["head"]["start"], r["tail"]["start"]) for r in row["relations"])
            found[row["id"]] = (entities, relations)
    return found
reference = rows("pytorch")
for backend in ("pytorch", "fp32", "int8"):
    got = rows(backend)
    totals = json.load(open(f"{work}/out_{backend}/manifest.json"))["totals"]
    same = sum(got.get(k) == v for k, v in reference.items())
    print(backend, "documents", len(got), "identical to pytorch", same, "totals", json.dumps(totals))
PY
