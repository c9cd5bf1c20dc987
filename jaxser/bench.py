"""Times the train step of a method; prints one JSON line.

  python -m jaxser.bench --config=configs/emodna.py [--end_to_end]
      [--steps=50] [--config.train.batch_size=64]
  python -m jaxser.bench --config=configs/caemocygan.py [--phase=adversarial]

Single-phase methods: batch_size source + batch_size target examples of
random features (frames x dims of the config's feature set), already on the
devices, so the train step alone is timed. --end_to_end feeds the step from
the real input pipeline of the config (cache built first if needed).

Multi-phase methods (those with `phases(arrays)`, e.g. the GAN family of
`jaxser.methods.cyclegan`): the step of one phase (--phase; default
'adversarial' where the method has it, else its last phase), with the train
state built as `jaxser.train.train_and_evaluate` builds it (parameter groups,
one optimiser state per group). Default workload: for each stream of the
phase (`phase.streams`, batch key -> array set) batch_size random examples
(features uniform in [-1, 1], random labels and their one-hot soft labels),
already on the devices; the method's `arrays`/`phases` see a small random
run (`_random_arrays`: sources, their corpora, target, target_eval).
--end_to_end draws the batches with `pipeline.array_batches` from the
config's real array sets (a set an earlier phase produces is not there: use
the default workload for such a phase).

samples_per_s counts the examples of every stream per optimiser step
(source + target for single-phase methods; e.g. 3 x 256 for CAEmoCyGAN's
adversarial step with two sources), times steps per second, in steady state
(after compilation and warm-up). The JSON line's 'phase' names the timed
phase ('train' for a single-phase method).

step_cpu_ms_median is the process's CPU time per step (all threads): with
one thread on a CPU that other jobs share, the step's own work without the
time it waited for the core.

Memory: peak_host_rss_mib is the process's peak resident memory (on a CPU,
where the arrays live); compiled_temp_mib the step's temporary buffers as
XLA plans them; peak_device_mib the device allocator's peak where the
backend reports it (GPU, TPU), else null.

--runs=N: N packed runs (seeds 0..N-1) of a single-phase method, batches
drawn inside the program from a device-resident random set of 8 batches;
prints samples_per_s of all runs together, per_run_samples_per_s and the
share of the wall time spent compiling (compile_s / total_s).

Token-id inputs (the `tokens` feature set, e.g. configs/multitask_text.py):
random ids in [1000, vocab_size) filling max_length tokens.
"""

from __future__ import annotations

import json
import statistics
import sys
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
_RUNS = flags.DEFINE_integer(
    'runs', 0, 'Single-phase methods: time N packed runs in one program '
    '(jaxser.train.make_dispatch on device-resident random data, '
    'config.train.steps_per_dispatch steps per call); 0: the plain step.')
_PHASE = flags.DEFINE_string(
    'phase', '', 'Multi-phase methods: the phase whose step is timed '
    "(default: 'adversarial' where there is one, else the last phase).")
flags.mark_flags_as_required(['config'])


def _flops(compiled) -> float | None:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost['flops']) if cost and 'flops' in cost else None


def _is_tokens(config) -> bool:
  from jaxser.models import registry  # pylint: disable=g-import-not-at-top
  return registry.feature_kind(config.data.features) == 'tokens'


def _random_features(config, rng, shape, batch_size: int):
  """Random inputs of the config's feature set: normal features, or token
  ids in [1000, vocab_size) for token inputs."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if _is_tokens(config):
    vocab = int(config.data.feature_params.tokens.get('vocab_size') or 30522)
    return rng.integers(1000, vocab, (batch_size,) + tuple(shape)).astype(
        np.int32)
  return rng.standard_normal((batch_size,) + tuple(shape), np.float32)


def _memory(compiled) -> dict:
  import resource  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  out = {'peak_host_rss_mib':
         resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
         'compiled_temp_mib': None, 'peak_device_mib': None}
  try:
    out['compiled_temp_mib'] = (
        compiled.memory_analysis().temp_size_in_bytes / 2**20)
  except Exception:  # pylint: disable=broad-except
    pass  # Not every backend plans memory ahead.
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    out['peak_device_mib'] = stats['peak_bytes_in_use'] / 2**20
  return out


def _feature_shape(config) -> tuple[int, ...]:
  """One example's feature shape for the config's feature set."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxser.data import features as features_lib  # pylint: disable=g-import-not-at-top
  if _is_tokens(config):
    return (int(config.data.feature_params.tokens.max_length),)
  fc = features_lib.FeatureConfig.from_data_config(config.data)
  wav = np.random.default_rng(0).standard_normal(16000 * 4) * 0.1
  return fc.compute(wav.astype(np.float32))[0].shape


def _random_arrays(config, num_classes: int, shape, size: int) -> dict:
  """A small random run's array sets, with the keys and dtypes of
  `pipeline.load_arrays`: 'source' (all sources, 'domain' = source index),
  'source<i>', 'target' (labels -1, 'index') and 'target_eval'."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxser.data import pipeline  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng([config.seed, 3])

  def corpus(domain, labelled, indexed):
    out = {'features': rng.uniform(-1, 1, (size,) + tuple(shape)).astype(
               np.float32),
           'length': np.ones((size,), np.int32),
           # Every class present, in random order.
           'label': (rng.permutation(np.arange(size) % num_classes)
                     if labelled else np.full((size,), -1)).astype(np.int32),
           'domain': np.full((size,), domain, np.int32),
           'gender': np.full((size,), -1, np.int32),
           'language': np.full((size,), -1, np.int32)}
    if indexed:
      out['index'] = np.arange(size, dtype=np.int32)
    return out

  sources = [corpus(i, True, False)
             for i in range(len(pipeline.source_names(config.data)))]
  n_src = len(sources)
  out = {'source': pipeline.concat_arrays(*sources)}
  for i, s in enumerate(sources):
    out[f'source{i}'] = s
  out['target'] = corpus(n_src, False, True)
  out['target_eval'] = corpus(n_src, True, True)
  return out


def _random_stream_batch(arrays: dict, name: str, batch_size: int,
                         num_classes: int, shape, rng) -> dict:
  """batch_size random examples for a stream drawing from set `name`:
  features uniform in [-1, 1], random labels (and one-hot soft labels);
  the set's other keys (lengths, domains, indices) from its first rows. A
  set that an earlier phase produces is not in `arrays`: then the keys of
  'source'."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  ref = arrays.get(name, arrays['source'])
  label = rng.integers(0, num_classes, batch_size).astype(np.int32)
  out = {}
  for key, v in ref.items():
    if key == 'features':
      out[key] = rng.uniform(-1, 1, (batch_size,) + tuple(shape)).astype(
          np.float32)
    elif key == 'label':
      out[key] = label
    elif key == 'soft_label':
      out[key] = np.eye(num_classes, dtype=v.dtype)[label]
    else:
      out[key] = np.resize(v, (batch_size,) + v.shape[1:])
  return out


def _multi_phase_setup(config, method, mesh, num_classes: int):
  """(phase name, step, state, batches, streams, input shape) of the
  timed phase of a multi-phase method."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from jaxser import train  # pylint: disable=g-import-not-at-top
  from jaxser.data import pipeline  # pylint: disable=g-import-not-at-top

  batch_size = config.train.batch_size
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))
  if _END_TO_END.value:
    data = pipeline.load_data(config.data)
    arrays = method.arrays(pipeline.load_arrays(data), config.seed)
    example = train.example_batch(data, batch_size)
    shape = example['source']['features'].shape[1:]
  else:
    shape = _feature_shape(config)
    arrays = method.arrays(
        _random_arrays(config, num_classes, shape, 2 * batch_size),
        config.seed)
    zeros = lambda with_label: dict(  # As train.example_batch.
        {'features': np.zeros((batch_size,) + tuple(shape), np.float32),
         'length': np.ones((batch_size,), np.int32),
         'domain': np.zeros((batch_size,), np.int32),
         'gender': np.zeros((batch_size,), np.int32),
         'language': np.zeros((batch_size,), np.int32)},
        **({'label': np.zeros((batch_size,), np.int32)} if with_label else {}))
    example = {'source': zeros(True), 'target': zeros(False)}
  phases = list(method.phases(arrays))
  names = [p.name for p in phases]
  want = _PHASE.value or ('adversarial' if 'adversarial' in names
                          else names[-1])
  if want not in names:
    raise app.UsageError(f'--phase: {config.method} has no phase {want!r}; '
                         f'its phases: {", ".join(names)}')
  index = names.index(want)
  phase = phases[index]
  if not phase.streams:
    raise app.UsageError(f'--phase={want}: the phase draws from the default '
                         'source/target stream; not supported here')
  batch_size = phase.batch_size or batch_size
  state = jax.jit(
      lambda: train.create_train_state(method, None, config.seed, example,
                                       phases),
      out_shardings=replicated)()
  step = train.jit_train_step(method, None, mesh, phase.step)
  if _END_TO_END.value:
    missing = sorted(set(phase.streams.values()) - set(arrays))
    if missing:
      raise app.UsageError(f'--end_to_end: phase {want!r} draws from '
                           f'{missing}, which an earlier phase produces; '
                           'time it on the default workload')
    sets = {key: arrays[name] for key, name in phase.streams.items()}
    batches = pipeline.array_batches(sets, batch_size,
                                     config.seed * 1000 + index, 0,
                                     batch_sharding)
  else:
    rng = np.random.default_rng([config.seed, 5])
    fixed = {key: _random_stream_batch(arrays, name, batch_size,
                                       num_classes, shape, rng)
             for key, name in sorted(phase.streams.items())}
    fixed = jax.device_put(fixed, batch_sharding)
    batches = iter(lambda: fixed, None)
  return (want, step, state, batches, len(phase.streams), batch_size,
          list(shape))


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from jaxser import methods as methods_lib  # pylint: disable=g-import-not-at-top
  from jaxser import train  # pylint: disable=g-import-not-at-top
  from jaxser.data import labels as labels_lib  # pylint: disable=g-import-not-at-top
  from jaxser.data import pipeline  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  batch_size = config.train.batch_size
  mesh = train.make_mesh()
  batch_sharding = NamedSharding(mesh, P('data'))
  pipeline.validate(config.data, batch_size)
  num_classes = len(labels_lib.TASK_CLASSES[config.data.task])

  method = methods_lib.create(config, num_classes)
  if hasattr(method, 'phases'):
    phase, step, state, batches, streams, batch_size, input_shape = (
        _multi_phase_setup(config, method, mesh, num_classes))
  elif _PHASE.value not in ('', 'train'):
    raise app.UsageError(f'--phase: {config.method} has one phase, '
                         f"'train'; got {_PHASE.value!r}")
  elif _END_TO_END.value:
    data = pipeline.load_data(config.data)
    batches = pipeline.train_batches(data, batch_size, config.seed, 0,
                                     batch_sharding)
    example = train.example_batch(data, batch_size)
  else:
    shape = tuple(_feature_shape(config))
    rng = np.random.default_rng(config.seed)

    def domain(with_label):
      b = {'features': _random_features(config, rng, shape, batch_size),
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

  if _RUNS.value and not hasattr(method, 'phases'):
    _bench_packed(config, method, example, _RUNS.value)
    return
  if not hasattr(method, 'phases'):
    phase, streams = 'train', 2
    input_shape = list(example['source']['features'].shape[1:])
    tx = train.method_optimizer(config, method, example)
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
  times, cpu_times = [], []
  t_start = time.perf_counter()
  for _ in range(_STEPS.value):
    t, c = time.perf_counter(), time.process_time()
    state, metrics = step(state, next(batches))
    # Waiting on the loss each step gives honest per-step times; the total
    # throughput below is measured over the same synchronised loop.
    jax.block_until_ready(metrics['loss'])
    times.append(time.perf_counter() - t)
    cpu_times.append(time.process_time() - c)
  total = time.perf_counter() - t_start
  print(json.dumps({
      'method': config.method,
      'phase': phase,
      'samples_per_s': streams * batch_size * _STEPS.value / total,
      'step_ms_median': 1000 * statistics.median(times),
      # CPU time of all the process's threads per step: on a CPU shared
      # with other jobs, with one thread, the step's own work.
      'step_cpu_ms_median': 1000 * statistics.median(cpu_times),
      'flops_per_step': flops,
      'batch_size_per_domain': batch_size,
      'streams': streams,
      'input_shape': input_shape,
      'end_to_end': _END_TO_END.value,
      'devices': jax.device_count(),
      'device_kind': jax.devices()[0].device_kind,
      'jax_version': jax.__version__,
      **_memory(compiled),
  }))


def _bench_packed(config, method, example, num_runs: int) -> None:
  """Times `num_runs` packed runs (see the module docstring)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from jaxser import train  # pylint: disable=g-import-not-at-top
  from jaxser.data import resident  # pylint: disable=g-import-not-at-top

  t_start = time.perf_counter()
  batch_size = config.train.batch_size
  k = int(config.train.get('steps_per_dispatch', 1))
  tx = train.method_optimizer(config, method, example)
  step = train.make_train_step(method, tx)
  in_turn = train.runs_in_turn(config)
  mesh = train.make_runs_mesh(1 if in_turn else num_runs, batch_size)
  runs = NamedSharding(mesh, P('runs'))
  replicated = NamedSharding(mesh, P())
  sets = {}
  for role, keys in resident.ROLES.items():
    src = example[role]
    sets[role] = [{key: np.concatenate([src.get(
        key, np.zeros((batch_size,), np.int32))] * 8) for key in keys}]
  pool = resident.make_pool(sets, replicated)
  init = jax.jit(lambda seed: train.create_train_state(method, tx, seed,
                                                       example))
  # One init per seed, as train does: a vmapped init runs the orthogonal
  # initialisers' QR batched, and jaxlib's batched LAPACK kernels
  # deadlocked on a 2-core XLA:CPU (two ParallelBatchMap calls, each
  # holding one of the two pool threads).
  states = jax.jit(lambda *s: jax.tree.map(lambda *x: jnp.stack(x), *s),
                   out_shardings=runs)(
                       *[init(jnp.int32(s)) for s in range(num_runs)])
  info = {key: jax.device_put(
      jnp.arange(num_runs, dtype=jnp.int32) * (key == 'seed'), runs)
          for key in ('seed', 'source', 'target')}
  enabled = jax.device_put(jnp.ones(num_runs, bool), runs)
  t0 = time.perf_counter()
  dispatch = train.make_dispatch(method, step, mesh, k, batch_size, pool,
                                 in_turn)
  g = lambda i: jax.device_put(jnp.int32(i), replicated)
  compiled = dispatch.lower(states, info, enabled, pool.arrays, pool.sizes,
                            g(0), None).compile()
  compile_s = time.perf_counter() - t0
  print(f'compiled in {compile_s:.1f} s', file=sys.stderr, flush=True)
  done = 0
  for _ in range(max(1, _WARMUP.value // k)):
    states, metrics = compiled(states, info, enabled, pool.arrays,
                               pool.sizes, g(done), None)
    done += k
  jax.block_until_ready(metrics)
  calls = max(1, _STEPS.value // k)
  t = time.perf_counter()
  for _ in range(calls):
    states, metrics = compiled(states, info, enabled, pool.arrays,
                               pool.sizes, g(done), None)
    done += k
  jax.block_until_ready(metrics)
  timed = time.perf_counter() - t
  total = time.perf_counter() - t_start
  samples = 2 * batch_size * k * calls
  print(json.dumps({
      'method': config.method, 'runs': num_runs, 'steps_per_dispatch': k,
      'pack_step': 'in_turn' if in_turn else 'vmap',
      'samples_per_s': num_runs * samples / timed,
      'per_run_samples_per_s': samples / timed,
      'step_ms_median': 1000 * timed / (calls * k),
      'compile_s': compile_s, 'total_s': total,
      'compile_share': compile_s / total,
      'mesh': dict(mesh.shape), 'devices': jax.device_count(),
      'device_kind': jax.devices()[0].device_kind,
      **_memory(compiled)}))


if __name__ == '__main__':
  app.run(main)
