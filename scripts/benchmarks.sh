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
# standard profile about 5.5 hours for its core runs (bf16), 1.3 hours for its fp32 gate and about 5.8 hours for its ablation
# (the estimate in src/mmtricks/bench/profiles.py). Env SEEDS / MISSING_SEEDS /
# STANDARD_SEEDS narrow the seeds; SKIP_STANDARD=1 leaves the standard runs out.
# Optional additions (off by default; docs/benchmarks.md, "Pool comparison"):
#   WITH_STACK=1  adds the autogluon_stack peer (AutoGluon's multimodal stack) to the core runs of
#                 both profiles (the core list itself is unchanged).
#   FUSIONS=1     the fusion presets against baseline_plus in the standard profile, into docs/bench/fusions.
#   HOOKS=1       the alignment and augmentation presets against baseline_plus, into docs/bench/hooks.
#   POOL=1        runs the pool comparison into docs/bench/pool: mmtricks' pool preset `best` next to
#                 baseline_plus, linear and the three AutoGluon peers (POOL_PROFILE, default standard;
#                 POOL_SEEDS, default 0,1,2), then splices its report into docs/benchmarks.md.
set -euo pipefail
DATA=${1:-../shared/data}
DOC=docs/benchmarks.md
QUICK=docs/bench/quick
MISSING=docs/bench/missing
STANDARD=docs/bench/standard
STANDARD_FP32=docs/bench/standard_fp32
CORE=baseline,baseline_plus,linear,autogluon_tabular,autogluon_mm
ABLATION=baseline+greedy_soup,baseline+grad_clip,baseline+warmup,baseline+layer_decay
MISSING_CONFIGS=baseline_plus,modality_dropout,learnable_embed,modality_dropout_learnable
if [ "${WITH_STACK:-0}" = 1 ]; then CORE="$CORE,autogluon_stack"; fi  # optional, see the header

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
  # The bf16 gate (bench/profiles.py): Baseline+ in 32-bit, same rows and limits, its own folder.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs baseline_plus --set env.precision=32-true --out "$STANDARD_FP32"
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs "$ABLATION" --out "$STANDARD"
  mmtricks bench report "$STANDARD" --doc "$DOC"
  mmtricks bench report "$STANDARD_FP32" --doc "$DOC"
fi
if [ "${FUSIONS:-0}" = 1 ]; then
  # Fusions against Baseline+ (issue: the fusion family), same rows and limits; lf_aligned needs CLIP weights.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs baseline_plus,lf_transformer,lf_sf,early_fusion,convert_categorical,convert_numerical,lf_llm \
    --out docs/bench/fusions
  mmtricks bench report docs/bench/fusions --doc "$DOC"
fi
if [ "${HOOKS:-0}" = 1 ]; then
  # Alignment and augmentation hooks against Baseline+.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs baseline_plus,align_pos_only,align_pos_neg,input_aug,input_aug_numeric,manifold_mixup,lemda \
    --out docs/bench/hooks
  mmtricks bench report docs/bench/hooks --doc "$DOC"
fi
if [ "${POOL:-0}" = 1 ]; then
  # Pool comparison (optional): the pool preset and AutoGluon's multimodal stack, same rows and limits.
  POOL_DIR=docs/bench/pool
  POOL_CONFIGS=best,baseline_plus,linear,autogluon_tabular,autogluon_mm,autogluon_stack
  mmtricks bench --profile "${POOL_PROFILE:-standard}" --data-dir "$DATA" --seeds "${POOL_SEEDS:-0,1,2}" \
    --threads 2 --configs "$POOL_CONFIGS" --out "$POOL_DIR"
  mmtricks bench report "$POOL_DIR" --doc "$DOC"
fi
