#!/usr/bin/env bash
# Regenerate the generated tables of docs/benchmarks.md in one command.
#
#   PATH=.venv/bin:$PATH scripts/benchmarks.sh [DATA_DIR]
#
# Runs whatever is missing of the quick-profile and standard-profile benchmarks (the runs
# already in the results.jsonl files under docs/bench/ are not redone; runs flagged as
# contended are), then rewrites docs/bench/*/report.md with its plots and splices the result
# tables into docs/benchmarks.md between its "bench-report" markers. With every run present
# it only rewrites the reports (seconds). From nothing on a 2-core CPU: about 2 hours for the
# quick peers and ablation, about an hour per seed of the missingness grid, and for the
# standard profile about 6.3-7.1 hours for its core runs plus about 7.1 hours for its ablation
# (the estimate in src/mmtricks/bench/profiles.py). Env SEEDS / MISSING_SEEDS /
# STANDARD_SEEDS narrow the seeds; SKIP_STANDARD=1 leaves the standard runs out.
set -euo pipefail
DATA=${1:-../shared/data}
DOC=docs/benchmarks.md
QUICK=docs/bench/quick
MISSING=docs/bench/missing
STANDARD=docs/bench/standard
CORE=baseline,baseline_plus,linear,autogluon_tabular,autogluon_mm
ABLATION=baseline+greedy_soup,baseline+grad_clip,baseline+warmup,baseline+layer_decay
MISSING_CONFIGS=baseline_plus,modality_dropout,learnable_embed,modality_dropout_learnable

mmtricks bench --profile quick --data-dir "$DATA" --seeds "${SEEDS:-0,1,2}" --threads 2 \
  --configs "$CORE,$ABLATION" --out "$QUICK"
mmtricks bench --profile quick --data-dir "$DATA" --seeds "${MISSING_SEEDS:-0,1,2}" --threads 2 \
  --configs "$MISSING_CONFIGS" --missing-train 0.1,0.3,0.5 --missing-test 0.1,0.3,0.5 --out "$MISSING"
mmtricks bench report "$QUICK" --doc "$DOC"
mmtricks bench report "$MISSING" --doc "$DOC"
if [ "${SKIP_STANDARD:-0}" != 1 ]; then
  # Core runs first (peers included), then the one-trick ablation: an interrupted run resumes.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs "$CORE" --out "$STANDARD"
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs "$ABLATION" --out "$STANDARD"
  mmtricks bench report "$STANDARD" --doc "$DOC"
fi
