#!/usr/bin/env bash
# Every GPU check of issue 18 in one script, sized for under 10 minutes on one H100/H200 (plus the
# 2-GPU run when two GPUs exist). Figures go to OUT_DIR as JSON and OUT_DIR/summary.md; each step's
# output to OUT_DIR/logs/<step>.log. A failed step is reported and the next one still runs; the
# exit status is the number of failed steps.
#
#   benchmarks/gpu_check.sh OUT_DIR                      # on a GPU machine
#   SIZE=tiny DEVICE=cpu benchmarks/gpu_check.sh OUT_DIR  # the same steps at a tiny size on a CPU
#
# Steps:
#   device     nvidia-smi, torch and CUDA versions, GPU count
#   tests      the test files that exercise CUDA (they skip without it)
#   training   bench_training.py, the paper's both-critics update at batch 64: fp32, bf16, compiled,
#              channels-last (seconds per 1000 updates: the goal is an epoch in under 30 s)
#   sampler    bench_sampler.py on the device (resident features)
#   streaming  bench_streaming.py on the device: a generated corpus, streamed and resident
#   run        a short `sepkit run` at the paper's scale (synthetic data, both critics)
#   torchrun   the same run on 2 GPUs (global batch 64, and 128 = 64 per GPU) when 2 GPUs exist
#              (SIZE=tiny: 2 CPU processes over gloo)
# Knobs: SIZE=paper|tiny  DEVICE=cuda|cpu  UPDATES (run steps, default 200)  STEPS (a subset, e.g.
# "training run"); OMP_NUM_THREADS is honoured.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:?usage: benchmarks/gpu_check.sh OUT_DIR}" && cd "$1" && pwd)"
size="${SIZE:-paper}"
device="${DEVICE:-cuda}"
steps="${STEPS:-device tests training sampler streaming run torchrun}"
mkdir -p "$out/logs"
export SEPKIT_CACHE_DIR="${SEPKIT_CACHE_DIR:-$out/cache}"
failed=0

if [ "$size" = tiny ]; then
  updates="${UPDATES:-2}"; batch=4
  training_args=(--recipe "$here/recipes/demo.toml" --batch 2 --updates 1 --repeats 1 --minutes 0.1)
  sampler_args=(--minutes 0.2 --runs 1 --batches 1)
  streaming_args=(--hours 0.05 --small-hours 0.02 --repeats 1 --updates 1)
else
  updates="${UPDATES:-200}"; batch=64
  training_args=(--batch 64 --updates 10 --repeats 3)
  sampler_args=(--runs 7 --batches 20)
  streaming_args=(--hours 2 --small-hours 0.5 --repeats 5 --updates 10)
fi

step() {  # step NAME COMMAND...: run one check, log it, count a failure
  local name="$1"; shift
  case " $steps " in *" $name "*) ;; *) return 0 ;; esac
  local started=$SECONDS
  echo "== $name"
  if "$@" > "$out/logs/$name.log" 2>&1; then
    echo "   done in $((SECONDS - started)) s"
  else
    echo "   FAILED after $((SECONDS - started)) s (see $out/logs/$name.log)"
    failed=$((failed + 1))
  fi
}

gpus() { python -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"; }

device_info() {
  { nvidia-smi 2>/dev/null || echo "nvidia-smi: not available"; } > "$out/nvidia-smi.txt"
  python - "$device" > "$out/device.json" <<'PY'
import json, platform, sys, torch
cuda = torch.cuda.is_available()
print(json.dumps({"device": sys.argv[1], "torch": torch.__version__, "cuda": torch.version.cuda,
                  "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
                  "cpu": platform.processor() or platform.machine(), "python": platform.python_version()}, indent=2))
PY
  cat "$out/device.json"
}

cuda_tests() {
  cd "$here" && python -m pytest -q tests/test_api.py tests/test_bss_eval.py tests/test_model.py \
    tests/test_contract_representation_divergence.py tests/test_streaming.py tests/test_hot_loop.py
}

training() {
  local tag
  for variant in "fp32" "bf16" "compile" "channels-last"; do
    case "$variant" in
      fp32) extra=() ;;
      bf16) extra=(--precision bf16) ;;
      compile) extra=(--compile) ;;
      channels-last) extra=(--channels-last) ;;
    esac
    if [ "$device" != cuda ] && [ "$variant" = bf16 ]; then continue; fi  # bf16 autocast is CUDA-only
    if [ "$size" = tiny ] && [ "$variant" = compile ]; then continue; fi  # compiling takes minutes on a CPU
    tag="training-$variant"
    python "$here/benchmarks/bench_training.py" --device "$device" "${training_args[@]}" "${extra[@]}" --json \
      > "$out/$tag.json" || return 1
    echo "$variant: $(python -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['seconds_per_1000_updates'], 1), 's per 1000 updates')" "$out/$tag.json")"
  done
}

sampler() {
  python "$here/benchmarks/bench_sampler.py" --device "$([ "$device" = cuda ] && echo cuda || echo cpu)" \
    "${sampler_args[@]}" --json > "$out/sampler.json" && cat "$out/sampler.json"
}

streaming() {
  python "$here/benchmarks/bench_streaming.py" --device "$device" --workdir "$out/streaming-corpus" \
    "${streaming_args[@]}" --json > "$out/streaming.json" && cat "$out/streaming.json"
}

make_recipe() {  # the paper's networks and training (recipes/singing_voice.toml) on generated data
  python - "$here" "$out/paper-synthetic.toml" "$size" <<'PY'
import sys, tomllib
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from sepkit.recipe.dump import dumps_toml
here, target, size = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
raw = tomllib.loads((here / "recipes" / ("demo.toml" if size == "tiny" else "singing_voice.toml")).read_text())
demo = tomllib.loads((here / "recipes" / "demo.toml").read_text())
raw["name"], raw["paths"], raw["data"] = "gpu-check", {}, demo["data"]
raw["variants"] = {"both-critics": raw["variants"]["both-critics"]}
target.write_text(dumps_toml(raw))
PY
}

run_once() {  # run_once NAME NPROC BATCH
  local name="$1" nproc="$2" run_batch="$3" launcher=(python -m sepkit)
  if [ "$nproc" -gt 1 ]; then launcher=(python -m torch.distributed.run --standalone --nproc_per_node="$nproc" -m sepkit); fi
  rm -rf "$out/$name"
  "${launcher[@]}" run "$out/paper-synthetic.toml" -o "$out/$name" --device "$device" --no-evaluate \
    --set training.updates_per_epoch="$updates" --set training.max_epochs=1 --set training.early_stopping=false \
    --set training.batch_size="$run_batch" --set training.log_every=10 || return 1
  python - "$out/$name/both-critics/metrics.jsonl" "$nproc" "$run_batch" > "$out/$name.json" <<'PY'
import json, statistics, sys
records = [json.loads(l) for l in open(sys.argv[1]) if '"updates_per_second"' in l]
steady = records[1:] or records  # the first window holds start-up and compilation
rate = statistics.median(r["updates_per_second"] for r in steady)
print(json.dumps({"processes": int(sys.argv[2]), "global_batch": int(sys.argv[3]), "updates_per_second": rate,
                  "seconds_per_1000_updates": 1000 / rate,
                  "examples_per_second": statistics.median(r["examples_per_second"] for r in steady)}, indent=2))
PY
  cat "$out/$name.json"
}

paper_run() { make_recipe && run_once run-1 1 "$batch"; }

torchrun_runs() {
  local count
  count=$(gpus)
  if [ "$device" = cuda ] && [ "$count" -lt 2 ]; then echo "one GPU: no 2-GPU run"; return 0; fi
  [ -f "$out/paper-synthetic.toml" ] || make_recipe || return 1
  run_once run-2 2 "$batch" && run_once run-2-double-batch 2 $((2 * batch))
}

summary() {
  python - "$out" > "$out/summary.md" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def read(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
lines = ["# GPU check", ""]
device = read("device")
if device:
    lines += [f"Device: {', '.join(device['gpus']) or device['cpu']}; torch {device['torch']}, CUDA {device['cuda']}", ""]
lines += ["| step | figure |", "|---|---|"]
for variant in ("fp32", "bf16", "compile", "channels-last"):
    r = read(f"training-{variant}")
    if r:
        lines.append(f"| bench_training {variant}, batch {r['batch']} | {r['seconds_per_update'] * 1000:.1f} ms per update, "
                     f"{r['seconds_per_1000_updates']:.1f} s per 1000 updates, {r['achieved_tflops']:.1f} TFLOP/s |")
for r in read("sampler") or []:
    lines.append(f"| bench_sampler (resident) on {r['device']} | {r['excerpts_per_second_per_update_mix']:,} excerpts/s per update mix |")
streaming = read("streaming")
for r in (streaming or {}).get("results", []):
    lines.append(f"| bench_streaming {r['residency'][0]}, {r['hours']} h | {r['per_update_excerpts_per_second']:,} excerpts/s per "
                 f"update mix, peak RSS {r['peak_rss_mb']} MB |")
for name in ("run-1", "run-2", "run-2-double-batch"):
    r = read(name)
    if r:
        lines.append(f"| sepkit run, {r['processes']} process(es), global batch {r['global_batch']} | "
                     f"{r['updates_per_second']:.2f} updates/s ({r['seconds_per_1000_updates']:.0f} s per 1000), "
                     f"{r['examples_per_second']:,.0f} examples/s |")
one, two, double = read("run-1"), read("run-2"), read("run-2-double-batch")
if one and two:
    lines.append(f"| 2 vs 1 process, same global batch | {two['updates_per_second'] / one['updates_per_second']:.2f}x updates/s |")
if one and double:
    lines.append(f"| 2 vs 1 process, twice the global batch (the same per process) | {double['examples_per_second'] / one['examples_per_second']:.2f}x examples/s |")
print("\n".join(lines))
PY
  cat "$out/summary.md"
}

step device device_info
step tests cuda_tests
step training training
step sampler sampler
step streaming streaming
step run paper_run
step torchrun torchrun_runs
summary
echo "figures in $out ($failed failed step(s))"
exit "$failed"
