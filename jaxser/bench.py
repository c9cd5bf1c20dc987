"""Times the train step of a method; prints one JSON line.

  python -m jaxser.bench --config=configs/emodna.py [--end_to_end]
      [--steps=50] [--config.train.batch_size=64]

Default workload: batch_size source + batch_size target examples of random
features (frames x dims of the config's feature set), already on the devices,
so the train step alone is timed. --end_to_end feeds the step from the real
input pipeline of the config (cache built first if needed).

samples_per_s counts source + target examples per optimiser step, times
steps per second, in steady state (after compilation and warm-up).
"""

from __future__ import annotations

import json
import statistics
import time

from absl import app
from absl import flags
from ml_collections import config_flags

# Before TensorFlow is imported: it loads openSMILE's native library first.
from jaxser.data import features  # noqa: F401  pylint: disable=unused-import

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config.',
                                          lock_config=True)
_STEPS = flags.DEFINE_integer('steps', 50, 'Timed steps.')
_WARMUP = flags.DEFINE_integer('warmup', 5, 'Untimed steps after compiling.')
_END_TO_END = flags.DEFINE_bool('end_to_end', False,
                                'Feed the step from the real input pipeline.')
flags.mark_flags_as_required(['config'])


def _flops(compiled) -> float | None:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost['flops']) if cost and 'flops' in cost else None


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from jaxser import methods as methods_lib  # pylint: disable=g-import-not-at-top
  from jaxser import train  # pylint: disable=g-import-not-at-top
  from jaxser.data import features as features_lib  # pylint: disable=g-import-not-at-top
  from jaxser.data import labels as labels_lib  # pylint: disable=g-import-not-at-top
  from jaxser.data import pipeline  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  batch_size = config.train.batch_size
  mesh = train.make_mesh()
  batch_sharding = NamedSharding(mesh, P('data'))
  pipeline.validate(config.data, batch_size)
  num_classes = len(labels_lib.TASK_CLASSES[config.data.task])

  if _END_TO_END.value:
    data = pipeline.load_data(config.data)
    batches = pipeline.train_batches(data, batch_size, config.seed, 0,
                                     batch_sharding)
    example = train.example_batch(data, batch_size)
  else:
    fc = features_lib.FeatureConfig.from_data_config(config.data)
    wav = np.random.default_rng(0).standard_normal(16000 * 4) * 0.1
    shape = fc.compute(wav.astype(np.float32))[0].shape
    rng = np.random.default_rng(config.seed)

    def domain(with_label):
      b = {'features': rng.standard_normal((batch_size,) + shape,
                                           np.float32),
           'length': np.full((batch_size,), shape[0], np.int32),
           'domain': np.zeros((batch_size,), np.int32),
           # Speaker metadata (DIFL's adversarial heads read it).
           'gender': (np.arange(batch_size) % 2).astype(np.int32),
           'language': np.zeros((batch_size,), np.int32)}
      if with_label:
        b['label'] = rng.integers(0, num_classes, batch_size).astype(np.int32)
      return b
    example = {'source': domain(True), 'target': domain(False)}
    fixed = jax.device_put(example, batch_sharding)
    batches = iter(lambda: fixed, None)

  method = methods_lib.create(config, num_classes)
  tx = train.make_optimizer(config.train)
  state = jax.jit(
      lambda: train.create_train_state(method, tx, config.seed, example),
      out_shardings=NamedSharding(mesh, P()))()
  step = train.jit_train_step(method, tx, mesh)
  first = next(batches)
  compiled = step.lower(state, first).compile()
  flops = _flops(compiled)

  for _ in range(_WARMUP.value):
    state, metrics = step(state, next(batches))
  jax.block_until_ready(metrics)
  times = []
  t_start = time.perf_counter()
  for _ in range(_STEPS.value):
    t = time.perf_counter()
    state, metrics = step(state, next(batches))
    # Waiting on the loss each step gives honest per-step times; the total
    # throughput below is measured over the same synchronised loop.
    jax.block_until_ready(metrics['loss'])
    times.append(time.perf_counter() - t)
  total = time.perf_counter() - t_start
  print(json.dumps({
      'method': config.method,
      'samples_per_s': 2 * batch_size * _STEPS.value / total,
      'step_ms_median': 1000 * statistics.median(times),
      'flops_per_step': flops,
      'batch_size_per_domain': batch_size,
      'input_shape': list(example['source']['features'].shape[1:]),
      'end_to_end': _END_TO_END.value,
      'devices': jax.device_count(),
      'device_kind': jax.devices()[0].device_kind,
      'jax_version': jax.__version__,
  }))


if __name__ == '__main__':
  app.run(main)
