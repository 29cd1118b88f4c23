#!/usr/bin/env bash
# `make demo`: the main job end to end on a fresh machine (before the negative sentences joined the training
# data it took about 6 minutes on 2 quiet CPU cores; they add one negative per positive sentence to each epoch).
#  1. statistics of both corpora (read from ../shared/data or $ADE_CORPUS_DIR / $CHINESE_HEALTHNER_DIR)
#  2. joint NER + RE on ADE fold 0 with the offline all-MiniLM-L6-v2 encoder (shortened: see EPOCHS below)
#  3. extraction from two example sentences with the trained model, as JSONL and as an HTML page
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${DEMO_OUTPUT_DIR:-runs/demo}
EPOCHS=${DEMO_EPOCHS:-3}   # the paper trains 5 epochs; 3 keep the demo short
TRAIN_ARGS=${DEMO_TRAIN_ARGS:-}   # more train.py ade flags, e.g. a tiny run for tests/test_readme_path.py

echo "== 1/3 corpora =="
$PY -m datasets_scripts.ade_corpus stats
$PY -m datasets_scripts.chinese_healthner stats

echo "== 2/3 train.py ade --fold 0 ($EPOCHS epochs, all-MiniLM-L6-v2) =="
# lr 1e-4 rather than the paper's 2e-5 (tuned for BERT-base): much better for MiniLM (BENCHMARKS.md)
$PY train.py ade --model sentence-transformers/all-MiniLM-L6-v2 --fold 0 --epochs "$EPOCHS" \
    --learning-rate 1e-4 --output-dir "$OUT/model" --overwrite-output-dir --report-to none $TRAIN_ARGS

echo "== 3/3 extraction =="
mkdir -p "$OUT"
cat > "$OUT/examples.txt" <<'TXT'
Intravenous azithromycin-induced ototoxicity was observed in a patient with AIDS.
We describe a case of severe hepatotoxicity after methotrexate and an urticarial rash attributed to amoxicillin.
Patients received methotrexate for rheumatoid arthritis. No adverse events were reported during follow-up.
TXT
$PY predict.py --model "$OUT/model" "$OUT/examples.txt" --output "$OUT/examples.jsonl" --html "$OUT/examples.html"
$PY - "$OUT/examples.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    row = json.loads(line)
    print("\n" + row["text"])
    for e in row["entities"]:
        print(f"  {e['type']:<15} {e['text']!r} [{e['start']}:{e['end']}] {e['score']:.2f}")
    for r in row["relations"]:
        print(f"  ADE: {r['drug']['text']!r} -> {r['adverse_effect']['text']!r} ({r['score']:.2f})")
PY
echo "metrics: $OUT/model/metrics.json; HTML for reviewers: $OUT/examples.html"
