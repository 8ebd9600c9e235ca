#!/usr/bin/env bash
# Fit the default preset on the shared cloth and covid data sets with `mmtricks fit`,
# score the test split, and record fit time and peak memory (GNU time).
# Usage: [DATASETS="cloth covid"] scripts/foundation_bench.sh [DATA_DIR] [OUT_DIR] [TIME_LIMIT_S]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/foundation}
LIMIT=${3:-1800}
mkdir -p "$OUT"
declare -A LABEL=([cloth]=Rating [covid]=finding)
for name in ${DATASETS:-cloth covid}; do
  label=${LABEL[$name]:?unknown data set $name (cloth or covid)}
  echo "== $name: mmtricks fit --train $DATA/$name/train.parquet --label $label --time-limit $LIMIT"
  /usr/bin/time -v -o "$OUT/$name.time" mmtricks fit --train "$DATA/$name/train.parquet" --label "$label" \
    --time-limit "$LIMIT" --out "$OUT/$name-model" --test "$DATA/$name/test.parquet" --quiet \
    > "$OUT/$name.log" 2>&1
  grep -E "Elapsed|Maximum resident" "$OUT/$name.time"
  tail -n 12 "$OUT/$name.log"
done
