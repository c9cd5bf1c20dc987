#!/usr/bin/env bash
# Issue 12 on one GPU, in one go (about 6-8 minutes on an H100/H200, most of
# it compiles and the feature caches of the synthetic corpora):
#   1. the Emo-DNA train step: jaxser vs benchmarks/torch_emodna.py --device
#      cuda (eager and --compile; skipped if torch cannot be installed);
#   2. packed Emo-DNA runs, N = 1, 12, 36, 96 (samples/s, runs x steps/s,
#      compile share, peak memory);
#   3. a real packed grid: Emo-DNA on the 4 synthetic corpora (12 pairs) x 3
#      seeds x 2 tasks = 72 cells of GRID_STEPS steps with `jaxser.grid`,
#      timed end to end (caches built beforehand, timed apart), and from it
#      and the N = 96 throughput an estimate of Emo-DNA's paper grid (30
#      scenarios x 3 seeds x 2 tasks = 180 runs) at 2000 steps.
# JSON lines on stdout, everything else in $LOG.
#   benchmarks/gpu.sh                      # the full check
#   RUNS="1 4" GRID_STEPS=20 PAIRS=2 STEPS=5 benchmarks/gpu.sh   # a smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-100}; warmup=${WARMUP:-10}
runs=${RUNS:-1 12 36 96}
grid_steps=${GRID_STEPS:-300}
pairs_wanted=${PAIRS:-12}
py=${PYTHON:-python3}
log=${LOG:-/tmp/gpu_issue12.log}
: >"$log"
trap 'echo "failed; see $log" >&2; tail -n 30 "$log" >&2' ERR
if ! "$py" -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' \
    2>>"$log"; then
  "$py" -m pip install -q -U "jax[cuda12]" >>"$log" 2>&1 || true
fi
"$py" -c 'import jaxser.bench' 2>>"$log" || "$py" -m pip install -q -e . >>"$log" 2>&1
export CUDA_MODULE_LOADING=LAZY XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=2 NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/numba}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    2>>"$log" || true
now() { date +%s.%N; }

echo "# 1. Emo-DNA step: jaxser, then PyTorch eager and compiled" >&2
"$py" -m jaxser.bench --config=configs/emodna.py --steps="$steps" \
    --warmup="$warmup" 2>>"$log" | tail -n 1
if "$py" -c 'import torch' 2>>"$log" || \
    "$py" -m pip install -q torch >>"$log" 2>&1; then
  dev=cuda
  "$py" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' \
      2>>"$log" || dev=cpu
  for extra in "" "--compile"; do
    "$py" benchmarks/torch_emodna.py --device "$dev" --steps "$steps" \
        --warmup "$warmup" $extra 2>>"$log" | tail -n 1 || true
  done
else
  echo '{"torch": "not installed"}'
fi

echo "# 2. packed Emo-DNA runs: N = $runs" >&2
packed=$(mktemp /tmp/jaxser_packed.XXXX)
for n in $runs; do
  "$py" -m jaxser.bench --config=configs/emodna.py --runs="$n" \
      --steps="$steps" --warmup="$warmup" 2>>"$log" | tail -n 1 | tee -a "$packed"
done

echo "# 3. packed grid on the synthetic corpora" >&2
corpora="synth_acted_a synth_acted_b synth_natural synth_phone"
cache=${CACHE:-/tmp/jaxser_gpu_cache}
t0=$(now)
for c in $corpora; do
  "$py" -m jaxser.prepare --corpus="$c" --features=mfcc40 \
      --cache_dir="$cache" >>"$log" 2>&1
done
t_cache=$("$py" -c "print($(now) - $t0)")
pairs=$("$py" -c "
import itertools, sys
names = '$corpora'.split()
print(','.join(f'{a}:{b}' for a, b in
               list(itertools.permutations(names, 2))[:$pairs_wanted]))")
work=$(mktemp -d /tmp/jaxser_gpu_grid.XXXX)
t0=$(now)
"$py" -m jaxser.grid --methods=emodna --pairs="$pairs" \
    --tasks=arousal,valence --seeds=3 --steps="$grid_steps" \
    --workdir="$work" --set=data.cache_dir="$cache" \
    --set=report.embedding=none --set=train.eval_every=0 \
    --set=train.log_every=100 --set=train.steps_per_dispatch=10 \
    >>"$log" 2>&1
t_grid=$("$py" -c "print($(now) - $t0)")
"$py" - "$work" "$t_cache" "$t_grid" "$grid_steps" "$packed" <<'EOF2'
import glob, json, sys
work, t_cache, t_grid, steps, packed = (
    sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]),
    sys.argv[5])
cells = glob.glob(f'{work}/*/*/*/seed*/results.json')
uar = [json.load(open(p))['uar'] for p in cells]
rows = [json.loads(l) for l in open(packed) if l.startswith('{')]
# Runs x steps per second of each packed N (2 x 64 samples a run-step).
rate = {r['runs']: r['samples_per_s'] / (2 * 64) for r in rows}
out = {'grid': 'emodna, synthetic pairs x 3 seeds x 2 tasks',
       'cells': len(cells), 'steps': steps, 'cache_s': round(t_cache, 1),
       'grid_s': round(t_grid, 1),
       'cells_per_hour': round(3600 * len(cells) / t_grid, 1),
       'mean_uar': round(sum(uar) / max(len(uar), 1), 4)}
if rate and cells:
  # The mini-grid's programs hold 3 seeds x pairs runs each.
  per_program = len(cells) // 2
  near = min(rate, key=lambda n: abs(n - per_program))
  overhead = max(0.0, t_grid - len(cells) * steps / rate[near]) / len(cells)
  big = max(rate)
  out.update(
      overhead_s_per_cell=round(overhead, 2),
      paper_grid_estimate_s=round(180 * 2000 / rate[big] + 180 * overhead),
      paper_grid_estimate_from=f'N={big} rate {rate[big]:.1f} run-steps/s')
print(json.dumps(out))
EOF2
