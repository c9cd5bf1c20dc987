"""A grid run serial (--pack=1) and packed (--pack=0) in one process each,
timed: cells per hour and the wall time split into compile (XLA backend
compiles, from jax.monitoring), data (loading corpora and feature caches,
`pipeline.load_data`) and the rest (steps, evaluations, checkpoints,
reports). Prints one JSON line per mode.

  python benchmarks/grid_packing.py --data_root=../shared/corpora \
      --pairs=casia:emovo,emovo:casia --seeds=3 --steps=100 [--modes=1,0]

--pairs, --tasks, --seeds, --steps (default 100), --data_root and --workdir
are jaxser.grid's flags.

Each mode works in a fresh folder under --workdir (default: a temporary
one), so nothing is resumed; figures of the embedding are off (UMAP would
dominate the time of short runs).
"""

import collections
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from jaxser import grid  # noqa: E402  (its flags: --pairs, --seeds, ...)

_METHOD = flags.DEFINE_string('method', 'emodna', 'Method config.')
_MODES = flags.DEFINE_list('modes', ['1', '0'],
                           '--pack values to time, in this order.')
_PAIRS, _SEEDS, _ROOT = grid._PAIRS, grid._SEEDS, grid._DATA_ROOT  # pylint: disable=protected-access
_TASKS, _WORK = grid._TASKS, grid._WORKDIR  # pylint: disable=protected-access


def main(argv):
  del argv
  from jaxser import runtime  # pylint: disable=g-import-not-at-top
  runtime.setup_process()
  import jax  # pylint: disable=g-import-not-at-top
  from jaxser import train  # pylint: disable=g-import-not-at-top
  from jaxser.data import pipeline  # pylint: disable=g-import-not-at-top

  spent = collections.Counter()

  def on_duration(event, duration, **kwargs):
    del kwargs
    if event == '/jax/core/compile/backend_compile_duration':
      spent['compile'] += duration
  jax.monitoring.register_event_duration_secs_listener(on_duration)
  load = pipeline.load_data

  def timed_load(*args, **kwargs):
    t = time.perf_counter()
    try:
      return load(*args, **kwargs)
    finally:
      spent['data'] += time.perf_counter() - t
  pipeline.load_data = timed_load

  work = _WORK.value or tempfile.mkdtemp(prefix='grid_packing_')
  steps = grid._STEPS.value or 100  # pylint: disable=protected-access
  overrides = [('train.steps', str(steps)),
               ('report.embedding', 'none')]
  if _ROOT.value:
    overrides.append(('data.root', _ROOT.value))
  pairs = grid.parse_pairs(_PAIRS.value)
  for mode in _MODES.value:
    spent.clear()
    root = os.path.join(work, f'pack{mode}')
    t = time.perf_counter()
    results = grid.run([_METHOD.value], pairs, _TASKS.value, _SEEDS.value,
                       root, grid.default_configs_dir(), overrides,
                       train_fn=lambda c, w, p=int(mode): train.train_many(
                           c, w, pack=p, log=lambda *_: None))
    wall = time.perf_counter() - t
    uar = [r['uar'] for r in results]
    print(json.dumps({
        'pack': int(mode), 'cells': len(results), 'steps': steps,
        'wall_s': round(wall, 1),
        'cells_per_hour': round(3600 * len(results) / wall, 1),
        'compile_s': round(spent['compile'], 1),
        'data_s': round(spent['data'], 1),
        'rest_s': round(wall - spent['compile'] - spent['data'], 1),
        'mean_uar': round(sum(uar) / len(uar), 4),
        'devices': jax.device_count(),
        'device_kind': jax.devices()[0].device_kind}), flush=True)


if __name__ == '__main__':
  flags.mark_flags_as_required(['pairs'])
  app.run(main)
