#!/usr/bin/env bash
# The GPU check, in two parts; each prints its own time. Estimates for one H200 (not yet measured on one):
#   part 1, eager (COMPILE=0 runs only this): about 3-4 min — fp32 eager of 4 models x 2 inputs (whole, stages,
#     blocks) beside torch.utils.benchmark, then the resnet50 ladder without compile: dtype, channels_last,
#     cuda_graph, then cuDNN benchmark, then BN folding, each factor in its own run or rows;
#   part 2, compile (COMPILE=1, the default, adds it; COMPILE=only runs it alone): about 2-3 min — torch.compile default,
#     then reduce-overhead, on the ladder's last eager configuration (4 cold compiles of 15-25 s with LADDER_DTYPES=bf16).
# Every figure comes from one run (scripts/gpu_check.py refuses a case measured twice). The check fails with one line
# when it can't run here (no usable CUDA, no compiler for the compile part) or when no case of DEVICE was recorded.
# Smoke test of the script itself on a CPU (about 1 min on a 2-core box):
#   DEVICE=cpu MODELS=resnet18 INPUTS=1x3x64x64 MODE_INPUTS=1x3x64x64 COMPILE=0 scripts/gpu_check.sh
# (TRACE=0 skips the traced resnet50 run at the end; it traces the first of MODE_INPUTS, or TRACE_INPUTS.)
set -euo pipefail
cd "$(dirname "$0")/.."
# The project's venv when there is one (make setup), else python3; PYTHON overrides both.
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
DEVICE=${DEVICE:-cuda}
MODELS=${MODELS:-resnet18,resnet34,resnet50,resnet101}
INPUTS=${INPUTS:-cityscapes,pascal}
MODE_INPUTS=${MODE_INPUTS:-cityscapes,pascal}
LADDER_DTYPES=${LADDER_DTYPES:-bf16}  # the dtypes of the cuDNN-benchmark, BN-folding and compile steps
MODE_MAX_TIME=${MODE_MAX_TIME:-0.5}  # --benchmark-max-time of the ladder's runs (whole model only: 0.5 s is plenty)
COMPILE=${COMPILE:-1}
OUT_DIR=${OUT_DIR:-${OUT:-reports}/gpu_check}
export PYTHONUNBUFFERED=1

case "$COMPILE" in 0|1|only) ;; *) echo "gpu_check: COMPILE must be 0, 1 or only, not '$COMPILE'" >&2; exit 1 ;; esac
"$PY" scripts/gpu_check.py preflight --device "$DEVICE" $([ "$COMPILE" = 0 ] || echo --compile) || exit 1

mkdir -p "$OUT_DIR"
common=(benchmarks/test_latency.py -p no:cacheprovider -q --bench-devices "$DEVICE" --benchmark-columns median,iqr,rounds)
ladder=("${common[@]}" --bench-models resnet50 --bench-inputs "$MODE_INPUTS" --bench-scopes model
        --benchmark-max-time "$MODE_MAX_TIME")
graph=eager,cuda_graph; [[ "$DEVICE" == cuda* ]] || graph=eager
runs=()
start=$SECONDS

run() {  # NAME ARGS...: one pytest run, its JSON in $OUT_DIR/NAME.json and its log beside it
  local name=$1; shift
  local began=$SECONDS
  rm -f "$OUT_DIR/$name.json"
  "$PY" -m pytest "$@" --benchmark-json "$OUT_DIR/$name.json" >"$OUT_DIR/$name.log" 2>&1 \
    || { tail -40 "$OUT_DIR/$name.log"; echo "gpu_check: the $name run failed (log: $OUT_DIR/$name.log)" >&2; exit 1; }
  runs+=("$OUT_DIR/$name.json")
  echo "   $name: $((SECONDS - began)) s"
}

if [ "$COMPILE" != only ]; then
  rm -f "$OUT_DIR"/*.json
  echo "== part 1: eager"
  echo "-- fp32 eager: whole model, stages and blocks in situ"
  run fp32 "${common[@]}" --bench-models "$MODELS" --bench-inputs "$INPUTS"
  sed -n '/resnet-profile ====/,$p' "$OUT_DIR/fp32.log"
  # fp32 contiguous eager resnet50 is the ladder's base: measured once, by the fp32 run when it covers it.
  skip_base=()
  covered=1
  for i in ${MODE_INPUTS//,/ }; do [[ ",$INPUTS," == *",$i,"* ]] || covered=0; done
  if [[ ",$MODELS," == *",resnet50,"* && $covered == 1 ]]; then skip_base=(-k "not $DEVICE-model"); fi
  echo "-- ladder: dtype x channels_last x $graph (cuDNN benchmark off, BN not folded)"
  run modes "${ladder[@]}" --bench-dtypes fp32,bf16,fp16 --bench-formats contiguous,channels_last \
    --bench-executors "$graph" "${skip_base[@]}"
  echo "-- ladder: + cuDNN benchmark ($LADDER_DTYPES channels_last, $graph)"
  run cudnn "${ladder[@]}" --bench-dtypes "$LADDER_DTYPES" --bench-formats channels_last --bench-executors "$graph" \
    --bench-cudnn-benchmark on
  echo "-- ladder: + BatchNorm folded ($LADDER_DTYPES channels_last, $graph, cuDNN benchmark on)"
  run fold "${ladder[@]}" --bench-dtypes "$LADDER_DTYPES" --bench-formats channels_last --bench-executors "$graph" \
    --bench-cudnn-benchmark on --bench-fold-bn on
  echo "gpu_check: part 1 took $((SECONDS - start)) s"
else
  runs=("$OUT_DIR/fp32.json" "$OUT_DIR/modes.json" "$OUT_DIR/cudnn.json" "$OUT_DIR/fold.json")  # an earlier part 1
fi

if [ "$COMPILE" != 0 ]; then
  began=$SECONDS
  echo "== part 2: torch.compile ($LADDER_DTYPES channels_last, cuDNN benchmark on, BN folded)"
  for mode in default reduce-overhead; do
    echo "-- compile $mode"
    run "compile-$mode" "${ladder[@]}" --bench-dtypes "$LADDER_DTYPES" --bench-formats channels_last \
      --bench-executors compile --bench-compile-mode "$mode" --bench-cudnn-benchmark on --bench-fold-bn on
  done
  echo "gpu_check: part 2 took $((SECONDS - began)) s"
fi

"$PY" scripts/gpu_check.py tables --device "$DEVICE" --logs "$OUT_DIR/*.log" "${runs[@]}"

if [ "${TRACE:-1}" = 1 ] && [ "$COMPILE" != only ]; then
  # The drill-down (docs/drilldown.md): resnet50 traced after its timed passes; the terminal summary's two-clock and
  # slowest-modules tables, then every module's top kernels. Its own folder, so the *.json above stay as they are;
  # the traces (open them in Perfetto) stay in $OUT_DIR/drilldown/traces.
  echo "== drill-down: resnet50 traced with torch.profiler (kernels per module, the two clocks)"
  nvtx=on; [[ "$DEVICE" == cuda* ]] || nvtx=off
  drill="$OUT_DIR/drilldown"
  mkdir -p "$drill"
  began=$SECONDS
  "$PY" -m pytest "${common[@]}" --bench-models resnet50 --bench-inputs "${TRACE_INPUTS:-${MODE_INPUTS%%,*}}" \
    --bench-trace "$drill/traces" --bench-nvtx "$nvtx" --benchmark-json "$drill/resnet50.json" \
    >"$drill/run.log" 2>&1 || { tail -40 "$drill/run.log"; exit 1; }
  sed -n '/^drill-down:/,/^=====/p' "$drill/run.log"
  "$PY" -m fixtures.report "$drill/resnet50.json" --no-plots --out "$drill/report" 2>/dev/null \
    | sed -n '/^### Where the time goes/,/^### Modes/p'
  echo "gpu_check: drill-down took $((SECONDS - began)) s"
fi
echo "gpu_check: $((SECONDS - start)) s"
