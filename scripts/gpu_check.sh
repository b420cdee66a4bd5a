#!/usr/bin/env bash
# GPU check (about 3 minutes on an H200): the reduced GPU matrix, our whole-model medians beside
# torch.utils.benchmark's, stage sum / whole, CV, and the resnet50 mode table. Prints the tables and leaves the JSON
# in $OUT_DIR. For a smoke test of the script itself on a CPU:
#   DEVICE=cpu MODELS=resnet18 INPUTS=1x3x64x64 MODE_INPUTS=1x3x64x64 COMPILE=0 scripts/gpu_check.sh
# (TRACE=0 skips the traced resnet50 run at the end; it traces the first of MODE_INPUTS, or TRACE_INPUTS.)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
MODELS=${MODELS:-resnet18,resnet34,resnet50,resnet101}
INPUTS=${INPUTS:-cityscapes,pascal}
MODE_INPUTS=${MODE_INPUTS:-cityscapes,pascal}
COMPILE=${COMPILE:-1}
OUT_DIR=${OUT_DIR:-${OUT:-reports}/gpu_check}
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/*.json
export PYTHONUNBUFFERED=1
common=(benchmarks/test_latency.py -p no:cacheprovider -q --bench-devices "$DEVICE" --benchmark-columns median,iqr,rounds)
start=$SECONDS

echo "== fp32 eager: whole model, stages and blocks in situ"
"$PY" -m pytest "${common[@]}" --bench-models "$MODELS" --bench-inputs "$INPUTS" \
  --benchmark-json "$OUT_DIR/fp32.json" >"$OUT_DIR/fp32.log" 2>&1 || { tail -40 "$OUT_DIR/fp32.log"; exit 1; }
sed -n '/resnet-profile ====/,$p' "$OUT_DIR/fp32.log"

echo "== modes: resnet50, bf16/fp16 x channels_last x eager/cuda_graph"
graph=eager,cuda_graph; [ "$DEVICE" = cuda ] || graph=eager
"$PY" -m pytest "${common[@]}" --bench-models resnet50 --bench-inputs "$MODE_INPUTS" --bench-scopes model \
  --bench-dtypes fp32,bf16,fp16 --bench-formats contiguous,channels_last --bench-executors "$graph" \
  --benchmark-json "$OUT_DIR/modes.json" >"$OUT_DIR/modes.log" 2>&1 || { tail -40 "$OUT_DIR/modes.log"; exit 1; }

if [ "$COMPILE" = 1 ]; then
  echo "== modes: resnet50, torch.compile (reduce-overhead: CUDA graphs) with BatchNorm folded, bf16/fp16 channels_last"
  "$PY" -m pytest "${common[@]}" --bench-models resnet50 --bench-inputs "$MODE_INPUTS" --bench-scopes model \
    --bench-dtypes bf16,fp16 --bench-formats channels_last --bench-executors compile \
    --bench-compile-mode reduce-overhead --bench-fold-bn on --bench-cudnn-benchmark on \
    --benchmark-json "$OUT_DIR/compile.json" >"$OUT_DIR/compile.log" 2>&1 || { tail -40 "$OUT_DIR/compile.log"; exit 1; }
fi

"$PY" scripts/gpu_check.py --device "$DEVICE" "$OUT_DIR"/*.json

if [ "${TRACE:-1}" = 1 ]; then
  # The drill-down (docs/drilldown.md): resnet50 traced after its timed passes; the terminal summary's two-clock and
  # slowest-modules tables, then every module's top kernels. Its own folder, so the *.json above stay as they are;
  # the traces (open them in Perfetto) stay in $OUT_DIR/drilldown/traces.
  echo "== drill-down: resnet50 traced with torch.profiler (kernels per module, the two clocks)"
  nvtx=on; [ "$DEVICE" = cuda ] || nvtx=off
  drill="$OUT_DIR/drilldown"
  mkdir -p "$drill"
  "$PY" -m pytest "${common[@]}" --bench-models resnet50 --bench-inputs "${TRACE_INPUTS:-${MODE_INPUTS%%,*}}" \
    --bench-trace "$drill/traces" --bench-nvtx "$nvtx" --benchmark-json "$drill/resnet50.json" \
    >"$drill/run.log" 2>&1 || { tail -40 "$drill/run.log"; exit 1; }
  sed -n '/^drill-down:/,/^=====/p' "$drill/run.log"
  "$PY" -m fixtures.drilldown "$drill/resnet50.json"
fi
echo "gpu_check: $((SECONDS - start)) s"
