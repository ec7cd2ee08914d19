#!/usr/bin/env bash
# The offline-corpus experiment at the paper's scale (recipes/offline_corpus.toml: batch 64, the
# paper's U-Net and DCGAN critics, lr 5e-5) on one GPU, every variant, sized to finish inside about
# 12 minutes: a fixed number of epochs per variant instead of early stopping. Then the report.
#
#   benchmarks/gpu_experiment.sh OUT_DIR [CORPUS_DIR]
#
# OUT_DIR gets <variant>/seed-<n>/ runs (models, curves, evaluations), report.md, report.json,
# timing.tsv (seconds per variant) and device.txt. CORPUS_DIR defaults to ../shared/data/corpus
# beside the repository. Knobs (environment variables):
#   UPDATES=250 EPOCHS=2   separator updates per epoch, epochs per variant (fixed: no early stopping)
#   VARIANTS=baseline,vocals-critic,both-critics,both-critics-js,both-critics-kl   SEEDS=0
#   DEVICE=cuda PRECISION=fp32 (bf16: autocast on CUDA)   EXTRA_SET="--set training.batch_size=2"
# A smoke test on a CPU: DEVICE=cpu UPDATES=1 EPOCHS=1 EXTRA_SET="--set training.batch_size=2" \
#   benchmarks/gpu_experiment.sh /tmp/gpu-smoke
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: benchmarks/gpu_experiment.sh OUT_DIR [CORPUS_DIR]}"
corpus="$(cd "${2:-$here/../shared/data/corpus}" && pwd)"
updates="${UPDATES:-250}"
epochs="${EPOCHS:-2}"
variants="${VARIANTS:-baseline,vocals-critic,both-critics,both-critics-js,both-critics-kl}"
seeds="${SEEDS:-0}"
device="${DEVICE:-cuda}"
precision="${PRECISION:-fp32}"
mkdir -p "$out/logs"
python - "$device" > "$out/device.txt" <<'PY'
import sys, platform, torch
device = sys.argv[1]
name = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else platform.processor() or platform.machine()
print(f"{name}; torch {torch.__version__}; python {platform.python_version()}")
PY
printf 'variant\tseed\tseconds\n' > "$out/timing.tsv"
for seed in ${seeds//,/ }; do
  for variant in ${variants//,/ }; do
    started=$(date +%s.%N)
    # shellcheck disable=SC2086
    sepkit run "$here/recipes/offline_corpus.toml" --variant "$variant" --seeds "$seed" -o "$out" --resume \
      --device "$device" --set "paths.corpus=$corpus" \
      --set "training.updates_per_epoch=$updates" --set "training.max_epochs=$epochs" \
      --set "training.early_stopping=false" --set "training.precision=\"$precision\"" ${EXTRA_SET:-} \
      > "$out/logs/$variant-seed-$seed.log" 2>&1 || { echo "FAILED: $variant seed $seed (see $out/logs/$variant-seed-$seed.log)"; continue; }
    seconds=$(python -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$started" "$(date +%s.%N)")
    printf '%s\t%s\t%s\n' "$variant" "$seed" "$seconds" >> "$out/timing.tsv"
    echo "done: $variant seed $seed in $seconds s"
  done
done
sepkit report "$out" --order "$variants" --markdown "$out/report.md"
sepkit report "$out" --order "$variants" --json > "$out/report.json"
