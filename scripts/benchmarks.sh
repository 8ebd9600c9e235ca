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
# (the estimate in src/mmtricks/bench/profiles.py). Standard order: core runs, the fp32 gate, then the
# optional comparisons (POOL, FUSIONS, HOOKS) when asked, then the ablation. Env SEEDS / MISSING_SEEDS /
# STANDARD_SEEDS narrow the seeds; SKIP_STANDARD=1 leaves the standard runs out.
# Optional additions (off by default; docs/benchmarks.md, "Pool comparison"):
#   WITH_STACK=1  adds the autogluon_stack peer (AutoGluon's multimodal stack) to the core runs of
#                 both profiles (the core list itself is unchanged).
#   FUSIONS=1     the fusion presets in the standard profile (lf_llm on cloth only), into docs/bench/standard
#                 beside the core runs they are read against (baseline_plus).
#   HOOKS=1       the alignment and augmentation presets, the same way.
#   POOL=1        the pool preset `best` and the autogluon_stack peer, the same way (POOL_SEEDS, default
#                 0,1,2); the core runs hold the rest of the comparison.
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
mmtricks bench report "$QUICK" --data-dir "$DATA" --doc "$DOC"
mmtricks bench report "$MISSING" --data-dir "$DATA" --doc "$DOC"
if [ "${SKIP_STANDARD:-0}" != 1 ]; then
  # Core runs first (peers included), then the bf16 gate: an interrupted run resumes.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs "$CORE" --out "$STANDARD"
  # The bf16 gate (bench/profiles.py): Baseline+ in 32-bit, same rows and limits, its own folder.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs baseline_plus --set env.precision=32-true --out "$STANDARD_FP32"
  mmtricks bench report "$STANDARD_FP32" --data-dir "$DATA" --doc "$DOC"
  python "$(dirname "$0")/bf16_gate.py" "$STANDARD" "$STANDARD_FP32"  # the verdict on env.precision=auto
fi
# The optional comparisons below write into the standard folder too: their reference runs
# (baseline_plus, linear, the AutoGluon peers) are the core runs above, made once on the same
# rows and limits, not repeated per comparison.
if [ "${POOL:-0}" = 1 ]; then
  # Pool comparison: the pool preset and AutoGluon's multimodal stack, same rows and limits.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${POOL_SEEDS:-0,1,2}" --threads 2 \
    --configs best,autogluon_stack --out "$STANDARD"
fi
if [ "${FUSIONS:-0}" = 1 ]; then
  # Fusions against Baseline+ (issue: the fusion family); lf_aligned needs CLIP weights, none install here.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs lf_transformer,lf_sf,early_fusion,convert_categorical,convert_numerical --out "$STANDARD"
  # LF-LLM (SmolLM2-135M) on one data set: cloth, where steps are cheapest (no image encoder). Its own limit:
  # 14.2 s a step (scripts/step_cost.py) buys 28 steps in cloth's 400 s; 1,900 s buy the 128-step floor.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs lf_llm --datasets cloth --time-limit 1900 --out docs/bench/lf_llm
  mmtricks bench report docs/bench/lf_llm --data-dir "$DATA" --doc "$DOC"
fi
if [ "${HOOKS:-0}" = 1 ]; then
  # Alignment and augmentation hooks against Baseline+.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs align_pos_only,align_pos_neg,input_aug,input_aug_numeric,manifold_mixup,lemda --out "$STANDARD"
fi
if [ "${SKIP_STANDARD:-0}" != 1 ]; then
  # The one-trick ablation last: the comparisons above are read against the core runs alone.
  mmtricks bench --profile standard --data-dir "$DATA" --seeds "${STANDARD_SEEDS:-0,1,2}" --threads 2 \
    --configs "$ABLATION" --out "$STANDARD"
fi
if [ "${SKIP_STANDARD:-0}${FUSIONS:-0}${HOOKS:-0}${POOL:-0}" != 1000 ]; then
  mmtricks bench report "$STANDARD" --data-dir "$DATA" --doc "$DOC"
fi
