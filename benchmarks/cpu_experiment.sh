#!/usr/bin/env bash
# The offline-corpus experiment at the `cpu` scale: every variant x every seed, two runs at a time
# with one thread each (on a 2-core CPU that is faster than one run with two threads), resumable:
# rerun the same command after an interruption and finished runs are skipped, stopped ones resumed.
#
#   benchmarks/cpu_experiment.sh [RUN_DIR] [SEEDS] [VARIANTS]
#   benchmarks/cpu_experiment.sh runs/offline-corpus-cpu 0,1,2 baseline,vocals-critic,both-critics
#
# Then: sepkit report RUN_DIR --markdown RUN_DIR/report.md
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
run_dir="${1:-runs/offline-corpus-cpu}"
seeds="${2:-0,1,2}"
variants="${3:-baseline,vocals-critic,both-critics,both-critics-js,both-critics-kl}"
lanes="${LANES:-2}"
recipe="${RECIPE:-$here/recipes/offline_corpus_cpu.toml}"
mkdir -p "$run_dir/logs"
jobs=()
for seed in ${seeds//,/ }; do
  for variant in ${variants//,/ }; do
    jobs+=("$variant $seed")
  done
done
printf '%s\n' "${jobs[@]}" | OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" xargs -P "$lanes" -L 1 sh -c '
  variant=$0 seed=$1
  log="'"$run_dir"'/logs/$variant-seed-$seed.log"
  if sepkit run "'"$recipe"'" --variant "$variant" --seeds "$seed" -o "'"$run_dir"'" --resume '"${EXTRA_SET:-}"' >"$log" 2>&1; then
    echo "done: $variant seed $seed"
  else
    echo "FAILED: $variant seed $seed (see $log)"
  fi'
sepkit report "$run_dir" --order "$variants" --markdown "$run_dir/report.md" || true
