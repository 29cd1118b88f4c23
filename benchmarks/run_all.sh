#!/usr/bin/env bash
# `make bench`: the measurements behind BENCHMARKS.md. Long on 2 CPU cores (about an hour in all);
# pick one with `make bench BENCH=crf` (crf | crf-step | ade | ade-real-text | splitters | ner-ablation | scale | bulk | onnx | ner-train). Results go to runs/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=runs/bench
mkdir -p "$OUT"
which=${BENCH:-all}

if [[ $which == all || $which == crf ]]; then
  echo "== CRF vs pytorch-crf (installed for the benchmark only) =="
  $PY -m pip install -q pytorch-crf==0.7.2
  $PY benchmarks/bench_crf.py --threads 1 --repeats 50 --output "$OUT/crf.json"
fi

if [[ $which == all || $which == crf-step ]]; then
  echo "== BERT-CRF training step with and without decoding (one thread) =="
  OMP_NUM_THREADS=1 $PY benchmarks/bench_crf_step.py --threads 1 --output "$OUT/crf_step.json"
fi

if [[ $which == all || $which == ade ]]; then
  echo "== ADE fold 0, all-MiniLM-L6-v2, the paper's settings (5 epochs) =="
  /usr/bin/time -v $PY train.py ade --fold 0 --output-dir "$OUT/ade_fold0" --overwrite-output-dir --report-to none 2>&1 \
    | grep -v "it/s\]" | tee "$OUT/ade_fold0.log" | tail -n 40
fi

if [[ $which == ade-real-text ]]; then  # hours: only when asked for by name
  bash benchmarks/ade_real_text.sh
fi

if [[ $which == all || $which == splitters ]]; then
  echo "== Sentence splitters on abstracts rebuilt from the ADE corpus (alternatives installed aside) =="
  $PY -m pip install -q --target "$OUT/splitters" pysbd==0.3.4 syntok==1.4.4 blingfire==0.1.8 nupunkt==0.8.0
  PYTHONPATH="$OUT/splitters" $PY benchmarks/sentence_splitters.py | tee "$OUT/splitters.md"
fi

if [[ $which == all || $which == ner-ablation ]] && [[ -f benchmarks/ner_ablation.sh ]]; then
  bash benchmarks/ner_ablation.sh
fi

if [[ $which == all || $which == scale ]]; then
  echo "== Throughput, MFU, memory and growth against the stock Trainer / pipeline (one thread) =="
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false \
    $PY benchmarks/bench_scale.py --threads 1 --output "$OUT/scale.json"
fi

if [[ $which == all || $which == bulk ]]; then
  echo "== predict.py --output-dir: 1 vs 2 processes, the single-file path, memory growth (BENCHMARKS 9) =="
  test -f "$OUT/ade_fold0/config.json" || BENCH=ade bash benchmarks/run_all.sh
  $PY benchmarks/bench_bulk.py --model "$OUT/ade_fold0" --out "$OUT/bulk" | tee "$OUT/bulk.md"
fi

if [[ $which == all || $which == onnx ]]; then
  echo "== ONNX Runtime fp32 / int8 against PyTorch: equivalence and speed (one thread; BENCHMARKS 11) =="
  test -f "$OUT/ade_fold0/config.json" || BENCH=ade bash benchmarks/run_all.sh
  if [[ ! -f "$OUT/ner_recipe/config.json" ]]; then  # the HealthNER recipe of BENCHMARKS 10.3, trained on train
    $PY train.py ner --output-dir "$OUT/ner_recipe" --learning-rate 1e-4 --epochs 5 --layer-decay 1.0 \
      --report-to none --overwrite-output-dir 2>&1 | grep -v "it/s\]" | tail -n 20
  fi
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false $PY benchmarks/bench_onnx.py \
    --ade-model "$OUT/ade_fold0" --ner-model "$OUT/ner_recipe" --work "$OUT/onnx" --threads 1 --output "$OUT/onnx.json"
fi

if [[ $which == all || $which == ner-train ]]; then
  echo "== BERT-CRF training against the stock Trainer with length grouping (one thread; BENCHMARKS 11.4) =="
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false $PY benchmarks/bench_ner_train.py --threads 1 \
    --output "$OUT/ner_train.json"
fi
