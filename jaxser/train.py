"""The generic train loop shared by all methods.

The loop owns one `TrainState` pytree (phase, step, params, batch stats,
optimiser state, RNG key, the method's own state and the early-stopping
state), replicated over a `Mesh` of all devices; batches are sharded on its
'data' axis. Every step is one `jax.jit` with explicit shardings and the state
donated. Checkpoints are orbax saves of the whole state; a rerun on the same
workdir resumes from the latest one and, since every input stream is a
function of (seed, step), ends with the same results as an uninterrupted run.

Most methods minimise one loss with one optimiser (`config.train.*`) in one
phase over the source/target stream of `jaxser.data.pipeline`. A method may
instead declare (see `jaxser.phases`):

  * parameter groups, `method.groups()`: top-level entries of `params` each
    with its own optimiser and learning rate. The state keeps one optimiser
    state per group (not `optax.multi_transform`): a group a phase does not
    train keeps its parameters and its optimiser moments untouched.
  * phases, `method.phases(arrays)`: run in order by one `jaxser.main` run.
    Each has its own jitted step function (which may alternate several
    updates, e.g. discriminators then generators, each with its own loss and
    gradient), its length in steps or epochs, its array streams (batches
    drawn from in-memory array sets by `pipeline.array_batches`, for real and
    generated data alike; `method.arrays(arrays, seed)` adds the sets it
    needs, e.g. class-balanced up-sampled sources), what it produces (e.g.
    generated samples and soft labels, computed on the devices; they are
    rebuilt deterministically when a run resumes past the phase, so they are
    not checkpointed) and an optional validation-based early stopping on a
    selection set that never holds target labels (best state kept in the
    train state, restored when the phase ends, patience configurable).

The checkpoint records the phase and the step within it; the orbax step
number is the run's global step (steps of the phases before plus the step).
results.json gains 'phases': each phase's length, its last step's metrics and
its selection outcome.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxser import export
from jaxser import io as io_lib
from jaxser import metrics as metrics_lib
from jaxser import methods as methods_lib
from jaxser import phases as phases_lib
from jaxser import predictions as predictions_lib
from jaxser.data import pipeline
from jaxser.data import resident
from jaxser.models import registry

# Config fields that may change between a run and its resumption.
_RESUMABLE_CHANGES = ('train.steps', 'train.eval_every', 'train.log_every',
                      'train.steps_per_dispatch', 'train.pack_step', 'seeds',
                      'train.checkpoint_every', 'profile.', 'report.',
                      'data.workers',
                      'data.cache_dir', 'data.root', 'data.paths.')


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # Optimiser steps taken in the current phase.
  params: Any
  batch_stats: Any
  opt_state: Any  # One optimiser's state, or {group: state}.
  rng: jax.Array
  method_state: Any
  phase: jax.Array = 0  # Index of the current phase.
  selection: Any = dataclasses.field(default_factory=dict)


@functools.cache
def make_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh of all devices; XLA's partitioner places the computation.
  One object per process, so the programs jitted for it (`_jit_logits`)
  compile once."""
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def make_optimizer(train_cfg) -> optax.GradientTransformation:
  name = train_cfg.optimizer
  if name == 'radam':
    tx = optax.radam(train_cfg.learning_rate)
  elif name == 'adam':
    tx = optax.adam(train_cfg.learning_rate)
  elif name == 'adamw':
    tx = optax.adamw(train_cfg.learning_rate,
                     weight_decay=train_cfg.weight_decay)
  elif name == 'sgd':
    tx = optax.sgd(train_cfg.learning_rate, momentum=0.9)
  elif name == 'adadelta':  # DIFL's optimiser.
    tx = optax.adadelta(train_cfg.learning_rate)
  else:
    raise ValueError(f'config.train.optimizer: unknown optimiser {name!r}; '
                     'known: radam, adam, adamw, sgd, adadelta')
  if train_cfg.get('grad_clip', 0.0):
    tx = optax.chain(optax.clip_by_global_norm(train_cfg.grad_clip), tx)
  if train_cfg.get('warmup_steps', 0):
    # Constant warm-up (MMD-SER): warmup_learning_rate for the first
    # warmup_steps steps, then learning_rate. Every optimiser above applies
    # its learning rate as the last factor of the update, so scaling the
    # update is changing the rate.
    steps = int(train_cfg.warmup_steps)
    ratio = float(train_cfg.warmup_learning_rate) / train_cfg.learning_rate
    tx = optax.chain(tx, optax.scale_by_schedule(
        lambda step: jnp.where(step < steps, ratio, 1.0)))
  return tx


def scale_by_tree(factors) -> optax.GradientTransformation:
  """Multiplies each update by its leaf of `factors` (a tree of floats with
  the parameters' structure): per-parameter learning-rate factors."""
  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, f: u * f if f != 1.0 else u, updates,
                        factors), state
  return optax.GradientTransformation(lambda params: optax.EmptyState(),
                                      update)


def method_optimizer(config: ml_collections.ConfigDict, method,
                     batch: dict) -> optax.GradientTransformation:
  """`config.train`'s optimiser, with the network's per-parameter factors
  (a frozen upstream, layer-wise learning-rate decay, a frozen feature
  encoder: `registry.optimizer_multipliers`) where the config asks."""
  tx = make_optimizer(config.train)
  params = jax.eval_shape(lambda: method.init_variables(
      jax.random.PRNGKey(0), batch))['params']
  factors = registry.optimizer_multipliers(config, params)
  return tx if factors is None else optax.chain(tx, scale_by_tree(factors))


def example_batch(data: pipeline.Data, batch_size: int) -> dict:
  """A batch of zeros with the shapes and dtypes of the training stream."""
  cached = data.source_train.parts[0].cached
  shape = cached.feature_shape
  dtype = getattr(cached, 'feature_dtype', np.float32)  # int32 token ids.
  def domain(with_label):
    b = {'features': np.zeros((batch_size,) + shape, dtype),
         'length': np.ones((batch_size,), np.int32),
         'domain': np.zeros((batch_size,), np.int32),
         'gender': np.zeros((batch_size,), np.int32),
         'language': np.zeros((batch_size,), np.int32),
         'speaker': np.zeros((batch_size,), np.int32)}
    if with_label:
      b['label'] = np.zeros((batch_size,), np.int32)
    return b
  return {'source': domain(True), 'target': domain(False)}


def create_train_state(method: methods_lib.Method,
                       tx: optax.GradientTransformation | None, seed: int,
                       batch: dict, phases=()) -> TrainState:
  """The initial state; `tx` is None for a method with parameter groups."""
  rng = jax.random.PRNGKey(seed)
  variables = method.init_variables(jax.random.fold_in(rng, 1), batch)
  params = variables['params']
  batch_stats = variables.get('batch_stats', {})
  groups = method_groups(method)
  if groups:
    phases_lib.check_groups(groups, params)
    opt_state = phases_lib.init_opt_state(groups, params)
  else:
    opt_state = tx.init(params)
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
      opt_state=opt_state, rng=rng, method_state=method.init_state(),
      phase=jnp.zeros((), jnp.int32),
      selection=phases_lib.init_selection(phases, groups, params,
                                          batch_stats))


def method_groups(method) -> dict | None:
  """The method's parameter groups, or None for one optimiser."""
  groups = getattr(method, 'groups', None)
  return groups() if groups is not None else None


VALIDATION_METRICS = ('war', 'uar', 'macro_f1')


def validation_selection(config) -> phases_lib.Selection | None:
  """The single-objective phase's early stopping on the held-out source
  part (`config.train.validation`, `config.data.source_val_fraction`), or
  None when `every` is 0."""
  v = config.train.get('validation')
  if v is None or not v.every:
    return None
  if v.every < 0:
    raise ValueError('config.train.validation.every: must be >= 0, got '
                     f'{v.every}')
  if not config.data.get('source_val_fraction', 0.0):
    raise ValueError('config.train.validation.every: validation needs a '
                     'held-out source part; set config.data.'
                     'source_val_fraction (e.g. 0.1), or every=0')
  if v.metric not in VALIDATION_METRICS:
    raise ValueError(f'config.train.validation.metric: unknown metric '
                     f'{v.metric!r}; known: {", ".join(VALIDATION_METRICS)}')
  if v.patience < 0:
    raise ValueError('config.train.validation.patience: must be >= 0, got '
                     f'{v.patience}')
  plateau = None
  if v.plateau_factor != 1.0:
    if not 0.0 < v.plateau_factor < 1.0:
      raise ValueError('config.train.validation.plateau_factor: must be in '
                       f'(0, 1), or 1.0 for none; got {v.plateau_factor}')
    if v.plateau_patience < 1:
      raise ValueError('config.train.validation.plateau_patience: must be '
                       f'>= 1, got {v.plateau_patience}')
    # optax reduces on the plateau_patience-th evaluation without
    # improvement (PyTorch's ReduceLROnPlateau on the one after).
    plateau = optax.contrib.reduce_on_plateau(
        factor=v.plateau_factor, patience=v.plateau_patience)
  return phases_lib.Selection('source_val', every=int(v.every),
                              patience=int(v.patience), groups=(),
                              metric=v.metric, plateau=plateau)


def method_phases(method, tx, config, arrays) -> list[phases_lib.Phase]:
  """The method's phases; one 'train' phase of `config.train.steps` over the
  default source/target stream for a single-objective method (with the
  validation of `config.train.validation`)."""
  if hasattr(method, 'phases'):
    return list(method.phases(arrays))
  selection = validation_selection(config)
  return [phases_lib.Phase(
      'train', make_train_step(method, tx, plateau_phase='train' if (
          selection is not None and selection.plateau is not None) else ''),
      steps=config.train.steps, selection=selection)]


def phase_steps(phase: phases_lib.Phase, arrays, batch_size: int) -> int:
  """A phase's length in steps (epochs are rounded up to whole batches)."""
  if phase.steps:
    return int(phase.steps)
  n = phase.epoch_size
  if not n:
    name = phase.epoch_arrays or next(iter(phase.streams.values()))
    n = len(next(iter(arrays[name].values())))
  return max(1, math.ceil(phase.epochs * n / (phase.batch_size or batch_size)))


def make_train_step(method: methods_lib.Method,
                    tx: optax.GradientTransformation, plateau_phase: str = ''):
  """(state, batch) -> (new state, metrics); pure, to be jitted. With
  `plateau_phase`, the updates are scaled by that phase's reduce-on-plateau
  factor (every optimiser here applies its learning rate last, so scaling
  the update is scaling the rate)."""

  def train_step(state: TrainState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    grad_fn = jax.value_and_grad(method.loss, has_aux=True)
    (loss, (batch_stats, method_state, metrics)), grads = grad_fn(
        state.params, state.batch_stats, state.method_state, batch, rng,
        state.step)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads))
    if plateau_phase:
      scale = phases_lib.plateau_scale(state, plateau_phase)
      updates = jax.tree.map(lambda u: (u * scale).astype(u.dtype), updates)
      metrics['lr_scale'] = scale
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(
        step=state.step + 1, params=params, batch_stats=batch_stats,
        opt_state=opt_state, method_state=method_state)
    return new_state, metrics

  return train_step


def jit_train_step(method, tx, mesh, step_fn=None):
  """`step_fn` (default: the method's single-loss step) jitted on `mesh`."""
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))
  return jax.jit(step_fn or make_train_step(method, tx),
                 in_shardings=(replicated, batch_sharding),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def predict_logits(method: methods_lib.Method, variables: dict, chunks,
                   batch_size: int, mesh, fn=None) -> np.ndarray:
  """The one evaluation and prediction path: (N, C) float32 logits.

  `fn(variables, features, lengths) -> (B, ...)` replaces `method.logits`
  where another output of the model is wanted (e.g. the utterance
  embeddings of `jaxser.report.embedding_fn`).

  `chunks` yields (features, lengths) numpy arrays of at most `batch_size`
  (rounded up to a multiple of the devices) rows, the same on every
  process; each is padded to a full batch (one compiled shape), each
  process feeds its slice of it, the step runs sharded on 'data' and the
  logits are gathered. Used by training's evaluations and selection,
  `jaxser.label` and the grid (through results.json).
  """
  batch_sharding = NamedSharding(mesh, P('data'))
  logits_fn = _jit_logits(method, mesh, fn)
  batch_size = -(-batch_size // jax.device_count()) * jax.device_count()
  per_host = batch_size // jax.process_count()
  lo = jax.process_index() * per_host
  out = []
  for feats, lengths in chunks:
    n = len(feats)
    if n > batch_size:
      raise ValueError(f'predict_logits: a chunk of {n} rows exceeds the '
                       f'batch size {batch_size}')
    pad = batch_size - n
    if pad:  # A full last batch keeps a single compiled shape.
      feats = np.concatenate([feats, np.zeros((pad,) + feats.shape[1:],
                                              feats.dtype)])
      lengths = np.concatenate([lengths, np.ones(pad, lengths.dtype)])
    logits = logits_fn(
        variables,
        pipeline.to_global(feats[lo:lo + per_host], batch_sharding),
        pipeline.to_global(lengths[lo:lo + per_host], batch_sharding))
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      logits = multihost_utils.process_allgather(logits, tiled=True)
    out.append(np.asarray(logits, np.float32)[:n])
  if not out:
    return np.zeros((0, 0), np.float32)
  return np.concatenate(out)


def array_chunks(arrays: dict[str, np.ndarray], batch_size: int):
  """(features, lengths) chunks of an array set, for `predict_logits`."""
  batch_size = -(-batch_size // jax.device_count()) * jax.device_count()
  for start in range(0, len(arrays['features']), batch_size):
    yield (arrays['features'][start:start + batch_size],
           arrays['length'][start:start + batch_size])


def evaluate(method: methods_lib.Method, state: TrainState,
             eval_set: dict[str, np.ndarray], classes, batch_size: int,
             mesh, return_logits: bool = False):
  """Metrics of the model on `eval_set` (arrays with a 'label' key); with
  `return_logits`, (metrics, (N, C) logits)."""
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  logits = predict_logits(method, variables,
                          array_chunks(eval_set, batch_size), batch_size,
                          mesh)
  result = metrics_lib.summary(eval_set['label'], logits.argmax(-1), classes)
  return (result, logits) if return_logits else result


def evaluate_per_corpus(method: methods_lib.Method, state: TrainState,
                        eval_set: dict[str, np.ndarray],
                        data: pipeline.Data, batch_size: int,
                        mesh) -> dict:
  """corpus -> {uar, war, macro_f1, num_eval} on its part of `eval_set`
  (multi-corpus evaluation: parts are told apart by their domain id)."""
  out = {}
  for part in data.target_eval.parts:
    rows = eval_set['domain'] == part.domain
    if not rows.any():  # A corpus too small to hold out any utterance.
      continue
    r = evaluate(method, state, {k: v[rows] for k, v in eval_set.items()},
                 data.classes, batch_size, mesh)
    out[part.cached.corpus.name] = {
        k: r[k] for k in ('uar', 'war', 'macro_f1', 'num_eval')}
  return out


_LOGITS_CACHE: dict = {}


def _jit_logits(method, mesh, fn=None):
  key = (id(method), id(mesh), fn)
  if key not in _LOGITS_CACHE:
    _LOGITS_CACHE[key] = jax.jit(
        fn or method.logits,
        in_shardings=(NamedSharding(mesh, P()),
                      NamedSharding(mesh, P('data')),
                      NamedSharding(mesh, P('data'))),
        out_shardings=NamedSharding(mesh, P('data')))
  return _LOGITS_CACHE[key]


def _flatten(cfg: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in cfg.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _check_resumable(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses to resume a workdir with a different experiment in it."""
  path = io_lib.join(workdir, 'config.json')
  new = json.loads(config.to_json_best_effort())
  if io_lib.exists(path):
    old = json.loads(io_lib.read_text(path))
    a, b = _flatten(old), _flatten(new)
    changed = sorted(k for k in set(a) | set(b)
                     if a.get(k) != b.get(k)
                     and not k.startswith(_RESUMABLE_CHANGES))
    if changed:
      raise ValueError(
          f'--workdir {workdir} holds a run with a different config '
          f'(fields: {", ".join("config." + c for c in changed)}); use a new '
          'workdir, or the same config to resume')


def _write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """config.json, which locks the workdir to this experiment; written once
  the run is about to train, so a run that fails before (a wrong corpus
  path, say) leaves the workdir free for the corrected command."""
  if jax.process_index() == 0:
    io_lib.write_json(io_lib.join(workdir, 'config.json'),
                      json.loads(config.to_json_best_effort()))


class Interrupted(KeyboardInterrupt):
  """Ctrl-C during training, after the last finished step was saved."""

  def __init__(self, step: int):
    super().__init__(step)
    self.step = step


def provenance(started: float) -> dict:
  """Where a result comes from: jaxser's version, its git commit when run
  from a clone, the wall time of this invocation, the devices."""
  import jaxser  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  commit = ''
  root = os.path.dirname(os.path.dirname(os.path.abspath(jaxser.__file__)))
  if os.path.isdir(os.path.join(root, '.git')):
    try:
      commit = subprocess.run(
          ['git', '-C', root, 'rev-parse', 'HEAD'], capture_output=True,
          text=True, timeout=10, check=True).stdout.strip()
      if subprocess.run(['git', '-C', root, 'status', '--porcelain',
                         '--untracked-files=no'], capture_output=True,
                        text=True, timeout=10).stdout.strip():
        commit += '+local changes'
    except (OSError, subprocess.SubprocessError):
      commit = ''
  return dict(jaxser_version=jaxser.__version__, git_commit=commit,
              wall_time_s=round(time.time() - started, 1),
              device_kind=jax.devices()[0].device_kind,
              processes=jax.process_count())


class MetricWriter:
  """metrics.jsonl and TensorBoard, on process 0 only."""

  def __init__(self, workdir: str, start_step: int):
    self.active = jax.process_index() == 0
    if not self.active:
      return
    self.path = io_lib.join(workdir, 'metrics.jsonl')
    # An object store cannot append: its rows are buffered and the object
    # rewritten at most every FLUSH_S seconds and on close.
    self.remote = io_lib.is_remote(workdir)
    self.buffer, self.flushed = [], time.monotonic()
    # Rows past the restored step were written by the interrupted run and
    # will be written again.
    if io_lib.exists(self.path):
      rows = [l + '\n' for l in io_lib.read_text(self.path).splitlines()
              if l.strip() and json.loads(l).get('step', 0) <= start_step]
      io_lib.write_text(self.path, ''.join(rows))
    import tensorboardX  # pylint: disable=g-import-not-at-top
    try:
      self.tb = tensorboardX.SummaryWriter(
          io_lib.join(workdir, 'tensorboard'))
    except Exception as e:  # pylint: disable=broad-except
      if not self.remote:
        raise
      # tensorboardX writes gs:// through google-cloud-storage only.
      print(f'tensorboard: not written under {workdir} ({e}); '
            'pip install google-cloud-storage for gs:// event files')
      self.tb = None

  FLUSH_S = 60.0

  def write(self, step: int, scalars: dict) -> None:
    if not self.active:
      return
    self.buffer.append(json.dumps({'step': step, **scalars}) + '\n')
    if not self.remote or time.monotonic() - self.flushed > self.FLUSH_S:
      self.flush()
    if self.tb is not None:
      for k, v in scalars.items():
        self.tb.add_scalar(k, v, step)
      self.tb.flush()

  def flush(self) -> None:
    if self.active and self.buffer:
      io_lib.append_text(self.path, ''.join(self.buffer))
      self.buffer, self.flushed = [], time.monotonic()

  def close(self):
    if self.active:
      self.flush()
      if self.tb is not None:
        self.tb.close()


def _eval_scalars(result: dict) -> dict:
  return {f'eval/{k}': result[k] for k in ('uar', 'war', 'macro_f1')}


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict:
  """Trains `config.method` and writes `workdir/results.json`; returns it.

  A single-objective method runs through `train_runs` (one run, packed
  alone); a multi-phase method through its declared phases."""
  if single_objective(config):
    return train_runs([config], [workdir])[0]
  started = time.time()
  io_lib.makedirs(workdir)
  # An unknown method, or a config that does not fit it or its network,
  # fails before the data is read.
  method_cls = methods_lib.get(config.method)
  method_cls.check_config(config)
  # A method with its own data path (TTS: jaxser.methods.gst_tacotron)
  # loads its array sets and reports its results itself; no SER data.
  own_data = method_cls.own_data
  if not own_data:
    pipeline.validate(config.data, config.train.batch_size)
  validation_selection(config)
  if config.train.get('steps_per_dispatch', 1) != 1:
    raise ValueError(
        'config.train.steps_per_dispatch: multi-phase methods '
        f'({config.method}) run one step per dispatch; use 1')
  _check_resumable(config, workdir)

  if own_data:
    data, eval_set = None, None
    method = methods_lib.create(config, 0)
    arrays = method.arrays(method.load_arrays(), config.seed)
    example = method.example_batch(arrays, config.train.batch_size)
  else:
    data = pipeline.load_data(config.data)
    method = methods_lib.create(
        config, len(data.classes),
        class_counts=data.source_train.class_counts(len(data.classes)))
    # Multi-phase methods train on in-memory array sets (method.arrays adds
    # the ones it needs: up-sampled sources, selection sets...).
    arrays = method.arrays(pipeline.load_arrays(data), config.seed)
    eval_set = arrays['target_eval']
    if data.source_val is not None:
      arrays['source_val'] = data.source_val.load()
    example = example_batch(data, config.train.batch_size)
  phases = method_phases(method, None, config, arrays)
  mesh = make_mesh()
  replicated = NamedSharding(mesh, P())
  batch_size = config.train.batch_size
  lengths = [phase_steps(p, arrays, batch_size) for p in phases]
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int).tolist()

  state = jax.jit(
      lambda: create_train_state(method, None, config.seed, example,
                                 phases),
      out_shardings=replicated)()
  ckpt = _checkpoint_manager(config, workdir)
  state = _restore_or_start(config, workdir, ckpt, state, phases)
  _write_config(config, workdir)
  if jax.process_index() == 0 and data is not None:
    # An own-data method (TTS) has no SER inference bundle to save.
    export.save_run_assets(workdir, data, config)
  start_phase = int(state.phase)
  writer = MetricWriter(workdir, offsets[min(start_phase, len(phases))]
                        + int(state.step))
  records = _read_phase_records(workdir, start_phase)
  try:
    for index, phase in enumerate(phases):
      if index < start_phase:
        # Finished before an interruption: rebuild what it produced.
        if phase.produce is not None:
          arrays.update(phase.produce(state, arrays))
        continue
      state, record = _run_phase(
          config, workdir, method, phase, index, state, lengths[index],
          offsets[index], arrays, data, eval_set, mesh, ckpt, writer,
          last=index == len(phases) - 1, prefix=f'{phase.name}/')
      if phase.produce is not None:
        new = phase.produce(state, arrays)
        arrays.update(new)
        record['produced'] = {k: int(len(next(iter(v.values()))))
                              for k, v in new.items()}
      records.append(record)
      if index < len(phases) - 1:
        state = state.replace(phase=jnp.asarray(index + 1, jnp.int32),
                              step=jnp.zeros((), jnp.int32))
        if jax.process_index() == 0:
          io_lib.write_json(io_lib.join(workdir, 'phases.json'), records)
        ckpt.save(offsets[index + 1], args=ocp.args.StandardSave(state),
                  force=True)
  finally:
    ckpt.wait_until_finished()
    ckpt.close()
    writer.flush()
  if own_data:
    writer.close()
    result = method.final_results(state, arrays, workdir)
    result.update(method=config.method, seed=config.seed, steps=offsets[-1],
                  batch_size=batch_size, phases=records,
                  devices=jax.device_count(), **provenance(started))
    if jax.process_index() == 0:
      io_lib.write_json(io_lib.join(workdir, 'results.json'), result)
    return result
  return _finish(config, workdir, method, state, data, eval_set, arrays,
                 writer, offsets[-1], records, multi=True, started=started)


def _checkpoint_manager(config, workdir: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      io_lib.abspath(io_lib.join(workdir, 'checkpoints')),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=config.train.keep_checkpoints, create=True))


def _restore_or_start(config, workdir, ckpt, state, phases):
  """The workdir's latest checkpoint, or, on a fresh run, `state` with the
  network's pretrained checkpoint (config.model.<network>.checkpoint), if
  any, in every copy of the network."""
  if ckpt.latest_step() is None:
    return state.replace(params=registry.load_pretrained(config,
                                                         state.params))
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  state = ckpt.restore(ckpt.latest_step(),
                       args=ocp.args.StandardRestore(abstract))
  if jax.process_index() == 0:
    where = (f' of phase {phases[min(int(state.phase), len(phases) - 1)].name}'
             if len(phases) > 1 else '')
    print(f'resumed from step {int(state.step)}{where} of {workdir}',
          flush=True)
  return state


def _finish(config, workdir, method, state, data, eval_set, arrays, writer,
            steps, records, *, multi, started) -> dict:
  """The final evaluation on the target: predictions.csv, results.json."""
  batch_size = config.train.batch_size
  mesh = make_mesh()
  if data.target_labelled:
    result, logits = evaluate(method, state, eval_set, data.classes,
                              config.train.eval_batch_size, mesh,
                              return_logits=True)
  else:
    logits = predict_logits(
        method, {'params': state.params, 'batch_stats': state.batch_stats},
        array_chunks(eval_set, config.train.eval_batch_size),
        config.train.eval_batch_size, mesh)
    counts = np.bincount(logits.argmax(-1), minlength=len(data.classes))
    result = {'target_labelled': False, 'num_eval': int(len(logits)),
              'classes': list(data.classes),
              'predicted_counts': dict(zip(data.classes, counts.tolist()))}
  path = io_lib.join(workdir, predictions_lib.FILE)
  if jax.process_index() == 0:
    predictions_lib.write(path, data.target_eval.utterances_of(eval_set),
                          eval_set['label'], logits, data.classes)
    if not data.target_labelled:
      print(f'target {config.data.target!r} is unlabelled: no target '
            f'metrics; its {len(logits)} predictions are in {path} '
            '(python -m jaxser.label gives soft labels, jaxser.predict '
            'labels new files)', flush=True)
  if config.data.protocol == 'multi_corpus':
    result['per_corpus'] = evaluate_per_corpus(
        method, state, eval_set, data, config.train.eval_batch_size, mesh)
  if data.target_labelled:
    writer.write(steps, _eval_scalars(result))
  writer.close()
  result.update(
      source=config.data.source, target=config.data.target,
      task=config.data.task, protocol=config.data.protocol,
      method=config.method, seed=config.seed, steps=steps,
      features=config.data.features, batch_size=batch_size,
      num_source_train=data.source_train.size,
      num_target_train=data.target_train.size,
      left_out=data.left_out, skipped=data.skipped,
      devices=jax.device_count(), **provenance(started))
  if multi:
    result['phases'] = records
  elif 'selection' in records[-1]:
    result['validation'] = records[-1]['selection']
  if hasattr(method, 'analyse'):
    result.update(method.analyse(state, arrays, data, workdir))
  if jax.process_index() == 0:
    io_lib.write_json(io_lib.join(workdir, 'results.json'), result)
  _report(config, workdir, method, state, data, result)
  return result


def _report(config, workdir, method, state, data, result) -> None:
  """The run's figures and report.md (`jaxser.report.write_run`), after
  results.json: a figure that fails is a warning, never a failed run. The
  embeddings are predicted on every process (a collective), the files
  written by process 0."""
  from jaxser import report  # pylint: disable=g-import-not-at-top
  cfg = config.get('report', ml_collections.ConfigDict())
  projection = cfg.get('embedding', 'umap')
  embeddings = None
  if projection != 'none':
    try:
      embeddings = report.run_embeddings(
          method, {'params': state.params, 'batch_stats': state.batch_stats},
          report.load_corpus_sets(data, cfg.get('max_points',
                                                report.MAX_POINTS),
                                  config.seed),
          config.train.eval_batch_size, make_mesh(),
          cfg.get('max_points', report.MAX_POINTS), config.seed)
    except Exception as e:  # pylint: disable=broad-except
      print(f'report: no embedding figure ({type(e).__name__}: {e})',
            file=sys.stderr, flush=True)
  if jax.process_index() == 0:
    report.write_run(workdir, result, embeddings,
                     projection if embeddings else 'umap', seed=config.seed)


def _read_phase_records(workdir: str, start_phase: int) -> list[dict]:
  """The records of the phases finished before an interruption."""
  path = io_lib.join(workdir, 'phases.json')
  if not start_phase or not io_lib.exists(path):
    return []
  return json.loads(io_lib.read_text(path))[:start_phase]


def _run_phase(config, workdir, method, phase, index, state, steps, offset,
               arrays, data, eval_set, mesh, ckpt, writer, *, last, prefix):
  """Runs `phase` from `state.step` to `steps`; returns (state, record)."""
  batch_size = phase.batch_size or config.train.batch_size
  batch_sharding = NamedSharding(mesh, P('data'))
  train_step = jit_train_step(method, None, mesh, phase.step)
  start = int(state.step)
  if phase.streams:
    sets = {key: arrays[name] for key, name in phase.streams.items()}
    batches = pipeline.array_batches(
        sets, batch_size, config.seed * 1000 + index, start, batch_sharding)
  else:
    batches = pipeline.train_batches(data, batch_size, config.seed, start,
                                     batch_sharding)
  sel = phase.selection
  stop = _selection_exhausted(state, phase)
  log_every = max(1, config.train.log_every)
  profile_start = config.profile.start_step
  profile_stop = profile_start + config.profile.num_steps
  bar = tqdm.tqdm(total=steps, initial=start,
                  desc=f'{config.method}{"/" + phase.name if prefix else ""}',
                  unit='step', dynamic_ncols=True,
                  disable=jax.process_index() != 0)
  pending, t0, t0_step = [], time.perf_counter(), start
  last_metrics = {}
  streams = max(1, len(phase.streams) or 2)
  try:
    for step in range(start + 1, steps + 1):
      if stop:
        break
      g = offset + step
      if profile_start > 0 and g == profile_start:
        jax.profiler.start_trace(io_lib.join(workdir, 'profile'))
      state, step_metrics = train_step(state, next(batches))
      pending.append(step_metrics)
      if profile_start > 0 and g == profile_stop:
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
      if step % log_every == 0 or step == steps:
        means = {k: float(np.mean([float(m[k]) for m in pending]))
                 for k in pending[0]}
        dt = time.perf_counter() - t0
        means['samples_per_s'] = (streams * batch_size * (step - t0_step)
                                  / dt)
        writer.write(g, {f'train/{prefix}{k}': v for k, v in means.items()})
        bar.set_postfix(loss=f'{means.get("loss", float("nan")):.3f}',
                        samples_per_s=f'{means["samples_per_s"]:.0f}')
        bar.update(step - bar.n)
        pending, t0, t0_step = [], time.perf_counter(), step
      if step == steps or (sel and step % sel.every == 0):
        last_metrics = {k: float(v) for k, v in step_metrics.items()}
      if sel is not None and (step % sel.every == 0 or step == steps):
        state, stop = _select(method, state, phase, arrays, data.classes,
                              config.train.eval_batch_size, mesh, writer, g,
                              prefix, bar)
      # Monitoring only: the target metrics never select anything.
      if (config.train.eval_every and last and eval_set is not None
          and data.target_labelled
            and step % config.train.eval_every == 0):
        result = evaluate(method, state, eval_set, data.classes,
                          config.train.eval_batch_size, mesh)
        writer.write(g, _eval_scalars(result))
        bar.write(f'step {g}: target UAR {result["uar"]:.3f} '
                  f'WAR {result["war"]:.3f} F1 {result["macro_f1"]:.3f}')
      # The last step of a phase before another is saved at the boundary,
      # after what the phase produces and its best state are settled.
      # The run's last state: saved here, or, where a selection restores
      # the best state, once restored (below), so that the final checkpoint
      # holds the model results.json reports (jaxser.label reads it).
      final = (step == steps or stop) and last
      if (final and sel is None) or (
          not final and step % config.train.checkpoint_every == 0
          and step < steps):
        ckpt.save(g, args=ocp.args.StandardSave(state))
        writer.flush()  # The rows up to a checkpoint are kept on resume.
  except KeyboardInterrupt:
    # Keep the finished steps: a rerun resumes from here.
    g = offset + int(state.step)
    if g > (ckpt.latest_step() or 0):
      ckpt.save(g, args=ocp.args.StandardSave(state), force=True)
      ckpt.wait_until_finished()
    raise Interrupted(g) from None
  finally:
    bar.close()
  record = {'name': phase.name, 'groups': list(phase.groups),
            'planned_steps': steps, 'steps': int(state.step),
            'final_metrics': last_metrics}
  if sel is not None:
    best = jax.device_get(state.selection[phase.name])
    record['selection'] = {
        'arrays': sel.arrays, 'metric': sel.metric,
        'best': float(best['best']), 'best_step': int(best['best_step']),
        'stopped_early': int(state.step) < steps}
    if 'plateau' in best:
      record['selection']['lr_scale'] = float(best['plateau'].scale)
    state = _restore_best(state, phase)
    g = offset + int(state.step)
    if last and g not in ckpt.all_steps():
      ckpt.save(g, args=ocp.args.StandardSave(state), force=True)
    record['selection']['restored'] = evaluate(
        method, state, arrays[sel.arrays], data.classes,
        config.train.eval_batch_size, mesh)[sel.metric]
  return state, record


def _selection_exhausted(state, phase) -> bool:
  """True when a resumed phase had already run out of patience."""
  sel = phase.selection
  if sel is None or not sel.patience:
    return False
  return int(state.selection[phase.name]['bad']) >= sel.patience


def _select(method, state, phase, arrays, classes, batch_size, mesh, writer,
            g, prefix, bar):
  """Evaluates the selection set; keeps the best state; (state, stop)."""
  sel = phase.selection
  result = evaluate(method, state, arrays[sel.arrays], classes, batch_size,
                    mesh)
  value = float(result[sel.metric])
  scalars = {f'select/{prefix}{sel.metric}': value}
  entry = state.selection[phase.name]
  if sel.plateau is not None:
    _, plateau = sel.plateau.update(jnp.zeros((), jnp.float32),
                                    entry['plateau'], value=1.0 - value)
    if float(plateau.scale) < float(entry['plateau'].scale):
      bar.write(f'{phase.name}: {sel.metric} on {sel.arrays} on a plateau; '
                f'learning rate x{float(plateau.scale):g} from step '
                f'{int(state.step)}')
    entry = dict(entry, plateau=plateau)
    scalars[f'select/{prefix}lr_scale'] = float(plateau.scale)
  writer.write(g, scalars)
  if value > float(entry['best']):
    comps = list(entry['params'])
    entry = dict(
        entry, params={c: state.params[c] for c in comps},
        batch_stats={c: state.batch_stats[c] for c in entry['batch_stats']},
        best=jnp.asarray(value, jnp.float32), best_step=state.step,
        bad=jnp.zeros((), jnp.int32))
    # A copy, not an alias: the next step donates the live state's buffers.
    entry = jax.tree.map(jnp.copy, entry)
  else:
    entry = dict(entry, bad=entry['bad'] + 1)
  state = state.replace(selection={**state.selection, phase.name: entry})
  stop = bool(sel.patience) and int(entry['bad']) >= sel.patience
  if stop:
    bar.write(f'{phase.name}: no better {sel.metric} on {sel.arrays} for '
              f'{sel.patience} evaluations; stopping at step {int(state.step)}'
              f' (best {float(entry["best"]):.4f} at step '
              f'{int(entry["best_step"])})')
  return state, stop


def _restore_best(state, phase):
  """The state with the selected groups set to their best evaluation."""
  entry = state.selection[phase.name]
  if int(entry['best_step']) < 0:
    return state
  return state.replace(
      params={**state.params, **entry['params']},
      batch_stats={**state.batch_stats, **entry['batch_stats']})


# ---------------------------------------------------------------------------
# Single-objective runs, one or many per program.
#
# Runs of one method, network, feature set and shapes (different seeds,
# different source/target pairs of the same task) share one compiled train
# program: their states are stacked on a leading `runs` axis and the step is
# `jax.vmap`ed over it, each run with its own parameters, optimiser state,
# batch statistics, RNG, method state and data stream. The mesh has a 'runs'
# axis beside 'data'. Each run keeps its own workdir, checkpoints (of its
# own, unstacked state: the same files as a run alone), metrics.jsonl and
# results.json. `train.steps_per_dispatch` steps run per host call
# (`lax.scan`; written out one after another on CPU); logs, evaluations
# and checkpoints happen on those boundaries. Where the training sets fit
# in device memory they stay there and batches are drawn inside the step
# (`jaxser.data.resident`); otherwise a lone run streams them through
# tf.data.

# Config fields in which runs packed into one program may differ.
_PACK_FREE = ('seed', 'seeds', 'data.source', 'data.target', 'data.paths.',
              'data.root', 'data.cache_dir', 'data.workers', 'profile.')
RESIDENT_MODES = ('auto', 'device', 'stream')
PACK_STEPS = ('auto', 'vmap', 'in_turn')


def runs_in_turn(config) -> bool:
  """Whether a packed program steps its runs one after another through one
  compiled single-run step (`config.train.pack_step`). `auto` does so on
  CPU, where the vmapped step costs more than the runs apart (per-run
  weights make grouped convolutions; benchmarks/README.md): packing there
  saves compilations and the input pipeline, not steps."""
  mode = config.train.get('pack_step', 'auto')
  if mode == 'auto':
    return jax.default_backend() == 'cpu'
  return mode == 'in_turn'


def single_objective(config) -> bool:
  """True for a method trained by one loss and optimiser (packable)."""
  return not hasattr(methods_lib.get(config.method), 'phases')


def pack_signature(config: ml_collections.ConfigDict) -> str:
  """Runs whose configs have equal signatures may share one program (their
  shapes are checked once their data is loaded)."""
  flat = _flatten(json.loads(config.to_json_best_effort()))
  return json.dumps({k: v for k, v in sorted(flat.items())
                     if not k.startswith(_PACK_FREE)}, sort_keys=True,
                    default=str)


def seeds_of(config) -> list[int]:
  """`config.seeds` ('0,1,2', or '' for the single `config.seed`)."""
  spec = str(config.get('seeds', '') or '').strip()
  if not spec:
    return []
  try:
    seeds = [int(s) for s in spec.split(',') if s.strip()]
  except ValueError:
    raise ValueError(f'config.seeds: {spec!r} is not a comma-separated list '
                     'of integers, e.g. 0,1,2') from None
  if len(set(seeds)) != len(seeds):
    raise ValueError(f'config.seeds: {spec!r} repeats a seed')
  return seeds


def _check_run_config(config) -> None:
  methods_lib.get(config.method).check_config(config)
  pipeline.validate(config.data, config.train.batch_size)
  validation_selection(config)
  k = config.train.get('steps_per_dispatch', 1)
  if not isinstance(k, int) or k < 1:
    raise ValueError('config.train.steps_per_dispatch: must be an integer '
                     f'>= 1, got {k!r}')
  step_mode = config.train.get('pack_step', 'auto')
  if step_mode not in PACK_STEPS:
    raise ValueError(f'config.train.pack_step: unknown mode {step_mode!r}; '
                     f'known: {", ".join(PACK_STEPS)}')
  mode = config.data.get('resident', 'auto')
  if mode not in RESIDENT_MODES:
    raise ValueError(f'config.data.resident: unknown mode {mode!r}; known: '
                     f'{", ".join(RESIDENT_MODES)}')


@dataclasses.dataclass
class _Run:
  """One single-objective run of a program, and its host-side progress."""
  config: Any
  workdir: str
  data: pipeline.Data
  method: Any
  eval_set: dict
  arrays: dict  # 'source_val' when validating.
  started: float
  ckpt: Any = None
  writer: Any = None
  step: int = 0  # Mirrors the run's state.step.
  enabled: bool = True  # False once early-stopped.
  pending: list = dataclasses.field(default_factory=list)
  last_metrics: dict = dataclasses.field(default_factory=dict)
  last_step: dict = dataclasses.field(default_factory=dict)
  last_log: tuple = (0.0, 0)  # (time, step) of the previous log line.


def _prepare(config, workdir: str, cache: dict) -> _Run:
  """Checks a run's config and workdir and loads its data (shared through
  `cache` by runs with equal data configs)."""
  started = time.time()
  io_lib.makedirs(workdir)
  _check_run_config(config)
  _check_resumable(config, workdir)
  key = config.data.to_json_best_effort(sort_keys=True)
  if key not in cache:
    data = pipeline.load_data(config.data)
    cache[key] = (data, data.target_eval.load(with_index=True),
                  None if data.source_val is None
                  else data.source_val.load(), {})
  data, eval_set, source_val, _ = cache[key]
  method = methods_lib.create(
      config, len(data.classes),
      class_counts=data.source_train.class_counts(len(data.classes)))
  arrays = {} if source_val is None else {'source_val': source_val}
  return _Run(config, workdir, data, method, eval_set, arrays, started)


def _training_sets(run: _Run, cache: dict) -> dict[str, dict]:
  """The run's source and (unlabelled) target training sets as arrays."""
  key = run.config.data.to_json_best_effort(sort_keys=True)
  loaded = cache[key][3]
  if not loaded:
    loaded['source'] = run.data.source_train.load()
    loaded['target'] = {k: v for k, v in run.data.target_train.load().items()
                        if k != 'label'}
  return loaded


def _estimated_bytes(runs: list[_Run]) -> int:
  """Bytes of the runs' distinct training sets, from their sizes."""
  seen, total = set(), 0
  for run in runs:
    cached = run.data.source_train.parts[0].cached
    row = int(np.prod(cached.feature_shape)) * np.dtype(
        getattr(cached, 'feature_dtype', np.float32)).itemsize
    for role, split in (('source', run.data.source_train),
                        ('target', run.data.target_train)):
      key = (role, run.config.data.to_json_best_effort(sort_keys=True))
      if key not in seen:
        seen.add(key)
        total += split.size * row
  return total


def _placement(runs: list[_Run], cache: dict, sharding):
  """(pool, refs) with the runs' training sets on the devices, or (None,
  None) where they stream through tf.data; the choice is printed."""
  config = runs[0].config
  mode = config.data.get('resident', 'auto')
  limit = float(config.data.get('resident_max_mib', 4096))
  size = _estimated_bytes(runs) / 2**20
  if mode == 'stream' or (mode == 'auto' and size > limit):
    why = ('config.data.resident=stream' if mode == 'stream' else
           f'{size:.0f} MiB > config.data.resident_max_mib={limit:g}')
    if jax.process_index() == 0:
      print(f'data: streamed through tf.data ({why})', flush=True)
    return None, None
  sets = {'source': [], 'target': []}
  keys = {'source': {}, 'target': {}}
  refs = {'source': [], 'target': []}
  for run in runs:
    for role, arrays in _training_sets(run, cache).items():
      key = resident.set_key(arrays)
      if key not in keys[role]:
        keys[role][key] = len(sets[role])
        sets[role].append(arrays)
      refs[role].append(keys[role][key])
  pool = resident.make_pool(sets, sharding)
  if jax.process_index() == 0:
    print(f'data: device-resident, {len(sets["source"])} source and '
          f'{len(sets["target"])} target sets, '
          f'{pool.nbytes / 2**20:.1f} MiB per device', flush=True)
  return pool, {r: np.asarray(v, np.int32) for r, v in refs.items()}


def make_runs_mesh(runs: int, batch_size: int) -> jax.sharding.Mesh:
  """A ('runs', 'data') mesh of all devices: as many devices on 'runs' as
  divide both the device count and the number of runs (with the batch still
  a multiple of the 'data' size)."""
  n = jax.device_count()
  r = max(d for d in range(1, n + 1)
          if n % d == 0 and runs % d == 0 and batch_size % (n // d) == 0)
  return jax.make_mesh((r, n // r), ('runs', 'data'),
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)


def _global(x: np.ndarray, sharding, axis: int = 0) -> jax.Array:
  """A global array from this process's slice along `axis` (the batch)."""
  shape = list(x.shape)
  shape[axis] *= jax.process_count()
  return jax.make_array_from_process_local_data(sharding, x, tuple(shape))


def make_dispatch(method, step_fn, mesh, num_steps: int, batch_size: int,
                  pool: resident.Pool | None, in_turn: bool = False):
  """The jitted program running `num_steps` steps of every packed run.

  (states, info, enabled, pool arrays, pool sizes, first step, streamed
  batches or None) -> (states, metrics of shape (num_steps, runs)). A run
  takes the step at loop step g only when its own step is g and it is
  enabled (resumed runs ahead of the others wait; early-stopped ones stay);
  otherwise its state is kept as it was.

  With `in_turn` (`runs_in_turn`; `mesh` then has a 'runs' axis of size 1)
  the returned callable runs one compiled program per run, which takes the
  run's slice of the stacked states, steps it as a lone run and writes it
  back in place; numbers are exactly those of the run alone.
  """
  runs_spec = NamedSharding(mesh, P('runs'))
  batch_spec = NamedSharding(mesh, P('runs', 'data'))
  replicated = NamedSharding(mesh, P())
  n_max = None if pool is None else {
      role: next(iter(a.values())).shape[1] for role, a in pool.arrays.items()}

  def one(state, batch, active):
    new, metrics = step_fn(state, batch)
    return jax.tree.map(lambda a, b: jnp.where(active, a, b), new,
                        state), metrics

  def dispatch(states, info, enabled, pool_arrays, pool_sizes, g0, streamed):
    def body(states, x):
      g, batch = x
      if batch is None:
        batch = jax.vmap(
            lambda s, t, seed, step: resident.draw(
                pool_arrays, pool_sizes, pool.min_size, n_max, batch_size,
                {'source': s, 'target': t}, seed, step))(
                    info['source'], info['target'], info['seed'],
                    states.step)
      batch = jax.lax.with_sharding_constraint(batch, batch_spec)
      active = (states.step == g) & enabled
      if states.step.shape[0] == 1:
        # A lone run steps unbatched: its numbers are exactly the unpacked
        # step's, and XLA:CPU's FFT thunk rejected the operand layout that
        # a size-1 runs axis gave the batch-gathered FFTs of the waveform
        # augmentations on a multi-device mesh (RET_CHECK, jax 0.10).
        new, metrics = one(*jax.tree.map(lambda x: x[0],
                                         (states, batch, active)))
        return jax.tree.map(lambda x: x[None], (new, metrics))
      return jax.vmap(one)(states, batch, active)
    steps = g0 + jnp.arange(num_steps, dtype=jnp.int32)
    if jax.default_backend() != 'cpu':
      return jax.lax.scan(body, states, (steps, streamed))
    # XLA:CPU ran the Emo-DNA step 9x slower inside a while loop (scan,
    # even of length 1 or unrolled: 2.45 s against 0.26 s on 2 cores,
    # jax 0.10), so on CPU the K steps are written out one after another.
    metrics = []
    for i in range(num_steps):
      states, m = body(states, (steps[i], None if streamed is None else
                                jax.tree.map(lambda x: x[i], streamed)))
      metrics.append(m)
    return states, jax.tree.map(lambda *x: jnp.stack(x), *metrics)

  streamed_spec = NamedSharding(mesh, P(None, 'runs', 'data'))
  program = jax.jit(
      dispatch,
      in_shardings=(runs_spec, runs_spec, runs_spec, replicated, replicated,
                    replicated, None if pool is not None else streamed_spec),
      out_shardings=(runs_spec, replicated), donate_argnums=0)
  if not in_turn:
    return program
  if mesh.shape['runs'] != 1:
    raise ValueError('make_dispatch: in_turn needs a mesh whose runs axis '
                     'has size 1')
  # The run's slice is taken and written back by programs of their own:
  # fused into the step, XLA:CPU re-sliced the stacked parameters at each
  # use (inside the recurrent loops too), 25% slower per run.
  take = jax.jit(lambda x, r: jax.tree.map(
      lambda a: jax.lax.dynamic_slice_in_dim(a, r, 1), x),
                 out_shardings=runs_spec)
  put = jax.jit(lambda x, r, y: jax.tree.map(
      lambda a, b: jax.lax.dynamic_update_slice_in_dim(a, b, r, 0), x, y),
                out_shardings=runs_spec, donate_argnums=0)
  return _InTurn(program, take, put, replicated)


class _InTurn:
  """`make_dispatch`'s callable for runs stepped in turn: the lone-run
  program called once per run on its slice of the stacked states
  (`.lower(...).compile()` as for a jitted function)."""

  def __init__(self, lone, take, put, replicated):
    self._lone, self._take, self._put = lone, take, put
    self._replicated = replicated
    self._indices = []  # Run r's index on the devices, put there once.

  def __call__(self, states, info, enabled, pool_arrays, pool_sizes, g0,
               streamed):
    metrics = []
    while len(self._indices) < enabled.shape[0]:
      self._indices.append(jax.device_put(np.int32(len(self._indices)),
                                          self._replicated))
    for r in range(int(enabled.shape[0])):
      index = self._indices[r]
      new, m = self._lone(
          self._take(states, index), self._take(info, index),
          self._take(enabled, index), pool_arrays, pool_sizes, g0,
          None if streamed is None else jax.tree.map(
              lambda x: x[:, r:r + 1], streamed))
      states = self._put(states, index, new)
      metrics.append(m)
    return states, jax.tree.map(lambda *x: jnp.concatenate(x, axis=1),
                                *metrics)

  def lower(self, states, info, enabled, *rest):
    one = lambda x: jax.ShapeDtypeStruct((1,) + x.shape[1:], x.dtype,
                                         sharding=x.sharding)
    lowered = self._lone.lower(*jax.tree.map(one, (states, info, enabled)),
                               *rest)
    return _InTurnLowered(lowered, self)

  def memory_analysis(self):
    return self._lone.memory_analysis()


class _InTurnLowered:

  def __init__(self, lowered, parent):
    self._lowered, self._parent = lowered, parent

  def compile(self):
    p = self._parent
    return _InTurn(self._lowered.compile(), p._take, p._put, p._replicated)


def train_runs(configs, workdirs, cache: dict | None = None) -> list[dict]:
  """Trains single-objective runs in one program; returns their results.

  The configs may differ only in `_PACK_FREE` fields (seed, corpora...), and
  their data must give the same shapes (`train_many` groups runs that way).
  Each run writes its workdir as `train_and_evaluate` would alone, and
  resumes from its own checkpoints.
  """
  if len(configs) != len(workdirs) or not configs:
    raise ValueError('train_runs: one workdir per config, at least one')
  cache = {} if cache is None else cache
  signature = pack_signature(configs[0])
  for c in configs[1:]:
    if pack_signature(c) != signature:
      a, b = (json.loads(pack_signature(x)) for x in (configs[0], c))
      fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
      raise ValueError(
          'train_runs: the configs differ in more than seeds and corpora '
          f'({", ".join("config." + f for f in fields)}); run them apart')
  runs = [_prepare(c, w, cache) for c, w in zip(configs, workdirs)]
  problem = _shape_mismatch(runs)
  if problem:
    raise ValueError(f'train_runs: {problem}; run them apart')
  return _train_group(runs, cache)


def _shape_key(run: _Run) -> tuple:
  cached = run.data.source_train.parts[0].cached
  key = (tuple(cached.feature_shape),
         str(np.dtype(getattr(cached, 'feature_dtype', np.float32))),
         len(run.data.classes), len(run.data.source_train.parts),
         run.method.pack_key())
  return key + (_param_shapes(run, key),)


_PARAM_SHAPES: dict = {}


def _param_shapes(run: _Run, key: tuple) -> str:
  """The shapes of the run's variables (heads sized by the run's data, e.g.
  one output per speaker, differ between pairs)."""
  key = (pack_signature(run.config), key, len(run.data.speakers),
         len(run.data.languages))
  if key not in _PARAM_SHAPES:
    shapes = jax.eval_shape(
        run.method.init_variables, jax.random.PRNGKey(0),
        example_batch(run.data, run.config.train.batch_size))
    _PARAM_SHAPES[key] = str(jax.tree.map(lambda x: (x.shape, str(x.dtype)),
                                          shapes))
  return _PARAM_SHAPES[key]


def _shape_mismatch(runs: list[_Run]) -> str:
  """'' when the runs can share a program, else why not."""
  first = _shape_key(runs[0])
  for run in runs[1:]:
    key = _shape_key(run)
    if key != first:
      names = ('feature shape', 'feature dtype', 'classes', 'source corpora',
               'method constants (e.g. class weights)', 'parameter shapes')
      what = [f'{n} ({a} vs {b})' if n != 'parameter shapes' else n
              for n, a, b in zip(names, first, key) if a != b]
      return (f'{runs[0].workdir} and {run.workdir} differ in '
              f'{", ".join(what)}')
  return ''


def _train_group(runs: list[_Run], cache: dict,
                 check_memory: bool = False) -> list[dict]:
  """The packed train loop of `train_runs`. With `check_memory`, raises
  `_TooBig` before anything runs when the program would not fit."""
  num = len(runs)
  run0 = runs[0]
  config, method = run0.config, run0.method
  batch_size = config.train.batch_size
  steps = int(config.train.steps)
  example = example_batch(run0.data, batch_size)
  tx = method_optimizer(config, method, example)
  selection = validation_selection(config)
  phase = phases_lib.Phase(
      'train', make_train_step(method, tx, plateau_phase='train' if (
          selection is not None and selection.plateau is not None) else ''),
      steps=steps, selection=selection)
  # A lone run takes the plain program (no slicing in and out).
  in_turn = num > 1 and runs_in_turn(config)
  mesh = make_runs_mesh(1 if in_turn else num, batch_size)
  pool, refs = _placement(runs, cache, NamedSharding(mesh, P()))
  if pool is None and num > 1:
    raise ValueError('train_runs: packed runs need device-resident data; '
                     'run them apart or raise config.data.resident_max_mib')
  # Evaluations and the unstacked states use the runs mesh's devices.
  eval_mesh = jax.sharding.Mesh(mesh.devices.reshape(-1), ('data',))
  replicated = NamedSharding(eval_mesh, P())
  runs_spec = NamedSharding(mesh, P('runs'))

  init = jax.jit(lambda seed: create_train_state(method, tx, seed, example,
                                                 [phase]),
                 out_shardings=replicated)
  per_dispatch = int(config.train.get('steps_per_dispatch', 1))
  dispatches = {}
  if check_memory:
    dispatches[per_dispatch] = _compiled_dispatch(
        method, phase, mesh, per_dispatch, batch_size, pool, init, num,
        runs_spec, in_turn)
    need = program_bytes(dispatches[per_dispatch])
    have = free_device_bytes()
    if need is not None and need > 0.8 * have:
      raise _TooBig(need, have)
  states = []
  for run in runs:
    run.ckpt = _checkpoint_manager(run.config, run.workdir)
    state = _restore_or_start(run.config, run.workdir, run.ckpt,
                              init(jnp.asarray(run.config.seed, jnp.int32)),
                              [phase])
    _write_config(run.config, run.workdir)
    if jax.process_index() == 0:
      export.save_run_assets(run.workdir, run.data, run.config)
    run.step = int(state.step)
    run.enabled = not _selection_exhausted(state, phase)
    run.writer = MetricWriter(run.workdir, run.step)
    states.append(state)
  stack = jax.jit(lambda *s: jax.tree.map(lambda *x: jnp.stack(x), *s),
                  out_shardings=runs_spec)
  states = stack(*states)
  del stack
  get_run = jax.jit(lambda s, r: jax.tree.map(lambda x: x[r], s),
                    out_shardings=replicated)
  set_run = jax.jit(
      lambda s, r, v: jax.tree.map(lambda x, y: x.at[r].set(y), s, v),
      out_shardings=runs_spec, donate_argnums=0)
  info = {'seed': np.array([r.config.seed for r in runs], np.int32)}
  if pool is not None:
    info.update(refs)
  info = {k: _from_host(v, runs_spec) for k, v in info.items()}

  stream = None
  if pool is None:
    stream = pipeline.train_batches(run0.data, batch_size, run0.config.seed,
                                    run0.step, None)
  streamed_spec = NamedSharding(mesh, P(None, 'runs', 'data'))
  log_every = max(1, config.train.log_every)
  profile_start = config.profile.start_step
  profile_stop = profile_start + config.profile.num_steps
  active = [r for r in runs if r.enabled and r.step < steps]
  g = min((r.step for r in active), default=steps)
  bar = tqdm.tqdm(total=steps, initial=g, unit='step', dynamic_ncols=True,
                  desc=config.method + (f' x{num} runs' if num > 1 else ''),
                  disable=jax.process_index() != 0)
  now = time.perf_counter()
  for run in runs:
    run.last_log = (now, run.step)
  try:
    while g < steps and any(r.enabled and r.step < steps for r in runs):
      n = min(per_dispatch, steps - g)
      if profile_start > 0 and g < profile_start <= g + n:
        jax.profiler.start_trace(io_lib.join(run0.workdir, 'profile'))
      if n not in dispatches:
        dispatches[n] = make_dispatch(method, phase.step, mesh, n,
                                      batch_size, pool, in_turn)
      streamed = None
      if stream is not None:
        host = [next(stream) for _ in range(n)]
        streamed = jax.tree.map(
            lambda *x: _global(np.stack(x)[:, None], streamed_spec, axis=2),
            *host)
      enabled = _from_host(np.array([r.enabled for r in runs]),
                               runs_spec)
      states, metrics = dispatches[n](
          states, info, enabled, None if pool is None else pool.arrays,
          None if pool is None else pool.sizes,
          _from_host(np.int32(g), NamedSharding(mesh, P())), streamed)
      metrics = jax.device_get(metrics)
      if profile_start > 0 and g < profile_stop <= g + n:
        jax.block_until_ready(states)
        jax.profiler.stop_trace()
      before = [r.step for r in runs]
      for i in range(n):
        for k, run in enumerate(runs):
          if run.enabled and run.step == g + i:
            run.last_step = {key: v[i, k] for key, v in metrics.items()}
            run.pending.append(run.last_step)
            run.step += 1
      g += n
      bar.update(n)
      states = _events(runs, before, states, phase, steps, log_every,
                       get_run, set_run, bar, num)
  except KeyboardInterrupt:
    # Keep the finished steps: a rerun resumes from here.
    for k, run in enumerate(runs):
      if run.step > (run.ckpt.latest_step() or 0):
        run.ckpt.save(run.step, args=ocp.args.StandardSave(
            get_run(states, k)), force=True)
      run.ckpt.wait_until_finished()
      run.writer.close()
    raise Interrupted(min(r.step for r in runs)) from None
  finally:
    bar.close()

  results = []
  for k, run in enumerate(runs):
    state = get_run(states, k)
    record = {'name': phase.name, 'groups': [], 'planned_steps': steps,
              'steps': run.step, 'final_metrics': run.last_metrics}
    if selection is not None:
      best = jax.device_get(state.selection[phase.name])
      record['selection'] = {
          'arrays': selection.arrays, 'metric': selection.metric,
          'best': float(best['best']), 'best_step': int(best['best_step']),
          'stopped_early': run.step < steps}
      if 'plateau' in best:
        record['selection']['lr_scale'] = float(best['plateau'].scale)
    # The final checkpoint holds the run's last state, so that a rerun with
    # more steps continues from it; its selection entry holds the best
    # state, which jaxser.inference restores (and results.json reports).
    if run.step not in run.ckpt.all_steps():
      run.ckpt.save(run.step, args=ocp.args.StandardSave(state), force=True)
    if selection is not None:
      state = _restore_best(state, phase)
      record['selection']['restored'] = evaluate(
          method, state, run.arrays[selection.arrays], run.data.classes,
          config.train.eval_batch_size, eval_mesh)[selection.metric]
    run.ckpt.wait_until_finished()
    run.ckpt.close()
    results.append(_finish(
        run.config, run.workdir, method, state, run.data, run.eval_set,
        run.arrays, run.writer, run.step, [record], multi=False,
        started=run.started))
  return results


def _compiled_dispatch(method, phase, mesh, n, batch_size, pool, init, num,
                       runs_spec, in_turn=False):
  """`make_dispatch` compiled ahead of time for `num` runs (abstract
  arguments: nothing is allocated)."""
  one = jax.eval_shape(init, jnp.zeros((), jnp.int32))
  abstract = lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                      sharding=sharding)
  states = jax.tree.map(
      lambda x: abstract(jax.ShapeDtypeStruct((num,) + x.shape, x.dtype),
                         runs_spec), one)
  vec = lambda dtype: jax.ShapeDtypeStruct((num,), dtype, sharding=runs_spec)
  info = {'seed': vec(jnp.int32), 'source': vec(jnp.int32),
          'target': vec(jnp.int32)}
  replicated = NamedSharding(mesh, P())
  return make_dispatch(method, phase.step, mesh, n, batch_size, pool,
                       in_turn).lower(
      states, info, vec(jnp.bool_),
      jax.tree.map(lambda x: abstract(x, replicated), pool.arrays),
      jax.tree.map(lambda x: abstract(x, replicated), pool.sizes),
      jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated),
      None).compile()


def _from_host(x: np.ndarray, sharding) -> jax.Array:
  """A host array every process holds whole, as a global array placed by
  `sharding`."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])


def _crossed(before: int, after: int, every: int) -> bool:
  """A multiple of `every` lies in (before, after]."""
  return bool(every) and after // every > before // every


def _events(runs, before, states, phase, steps, log_every, get_run, set_run,
            bar, num):
  """Logs, selection, monitoring evaluations and checkpoints of the runs
  that stepped in the last dispatch (at its boundary)."""
  config = runs[0].config
  sel = phase.selection
  eval_mesh = make_mesh()
  for k, run in enumerate(runs):
    prev, now = before[k], run.step
    if now == prev:
      continue
    if _crossed(prev, now, log_every) or now == steps:
      pending = run.pending
      means = {key: float(np.mean([float(m[key]) for m in pending]))
               for key in pending[0]}
      t, t_step = run.last_log
      dt = max(time.perf_counter() - t, 1e-9)
      means['samples_per_s'] = 2 * config.train.batch_size * (now - t_step) / dt
      run.writer.write(now, {f'train/{key}': v for key, v in means.items()})
      if k == 0:
        bar.set_postfix(loss=f'{means.get("loss", float("nan")):.3f}',
                        samples_per_s=f'{num * means["samples_per_s"]:.0f}')
      run.pending, run.last_log = [], (time.perf_counter(), now)
    selecting = sel is not None and (_crossed(prev, now, sel.every)
                                     or now == steps)
    if now == steps or selecting:
      run.last_metrics = {key: float(v) for key, v in run.last_step.items()}
    evaluating = (bool(config.train.eval_every) and run.data.target_labelled
                  and _crossed(prev, now, config.train.eval_every))
    saving = (_crossed(prev, now, config.train.checkpoint_every)
              and now < steps)
    state = (get_run(states, k) if selecting or evaluating or saving
             else None)
    if selecting:
      state, stop = _select(runs[0].method, state, phase, run.arrays,
                            run.data.classes, config.train.eval_batch_size,
                            eval_mesh, run.writer, now, '', bar)
      states = set_run(states, k, state)
      if stop:
        run.enabled = False
    # Monitoring only: the target metrics never select anything.
    if evaluating:
      result = evaluate(runs[0].method, state, run.eval_set, run.data.classes,
                        config.train.eval_batch_size, eval_mesh)
      run.writer.write(now, _eval_scalars(result))
      tag = f'{run.workdir}: ' if num > 1 else ''
      bar.write(f'{tag}step {now}: target UAR {result["uar"]:.3f} '
                f'WAR {result["war"]:.3f} F1 {result["macro_f1"]:.3f}')
    if saving and run.enabled:
      run.ckpt.save(now, args=ocp.args.StandardSave(state))
      run.writer.flush()  # The rows up to a checkpoint are kept on resume.
  return states


def train_many(configs, workdirs, pack: int = 0, log=print) -> list[dict]:
  """Trains every run, packing those that can share a program.

  Single-objective runs whose configs differ only in seeds and corpora
  (`pack_signature`) and whose data give the same shapes are packed, at
  most `pack` per program (0: as many as fit in device memory, by XLA's own
  memory analysis of the program); others, and every run when `pack` is 1,
  run apart. Runs whose data would not fit on the devices stream through
  tf.data, apart. Returns the results in the order of `configs`.
  """
  if pack < 0:
    raise ValueError(f'--pack: must be >= 0, got {pack}')
  results = [None] * len(configs)
  cache = {}
  groups = {}
  for i, config in enumerate(configs):
    if pack == 1 or not single_objective(config):
      groups[('apart', i)] = [i]
    else:
      groups.setdefault(pack_signature(config), []).append(i)
  for members in groups.values():
    if not single_objective(configs[members[0]]):
      i, = members
      results[i] = train_and_evaluate(configs[i], workdirs[i])
      continue
    runs = {i: _prepare(configs[i], workdirs[i], cache) for i in members}
    by_shape = {}
    for i in members:
      by_shape.setdefault(_shape_key(runs[i]), []).append(i)
    if len(by_shape) > 1:
      parts = list(by_shape.values())
      log(f'packing: {_shape_mismatch([runs[p[0]] for p in parts])}; '
          f'these run in {len(parts)} separate programs')
    for same in by_shape.values():
      group = [runs[i] for i in same]
      config = group[0].config
      limit = float(config.data.get('resident_max_mib', 4096))
      streamed = (config.data.get('resident', 'auto') == 'stream' or (
          config.data.get('resident', 'auto') == 'auto'
          and _estimated_bytes(group) / 2**20 > limit))
      size = 1 if streamed else (pack or len(same))
      if streamed and len(same) > 1:
        log('packing: the data do not fit on the devices '
            '(config.data.resident); the runs stream through tf.data apart')
      queue = [same[j:j + size] for j in range(0, len(same), size)]
      while queue:
        chunk = queue.pop(0)
        try:
          out = _train_group([runs[i] for i in chunk], cache,
                             check_memory=pack == 0 and len(chunk) > 1)
        except _TooBig as e:
          half = len(chunk) // 2
          log(f'packing: {len(chunk)} runs need {e.need / 2**30:.1f} GiB '
              f'per device, {e.have / 2**30:.1f} GiB free; {half} per '
              'program')
          queue[:0] = [chunk[:half], chunk[half:]]
          continue
        for i, result in zip(chunk, out):
          results[i] = result
  return results


class _TooBig(Exception):
  """A packed program would not fit in device memory."""

  def __init__(self, need: int, have: int):
    super().__init__(need, have)
    self.need, self.have = need, have


def free_device_bytes() -> int:
  """Free memory of one device: the allocator's limit minus what is in use
  on accelerators; on CPU the host's available memory over its devices."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if 'bytes_limit' in stats:
    return int(stats['bytes_limit'] - stats.get('bytes_in_use', 0))
  try:
    with open('/proc/meminfo') as f:
      info = dict(l.split(':', 1) for l in f)
    available = int(info['MemAvailable'].split()[0]) * 1024
  except (OSError, KeyError, ValueError):
    return 2**62
  return available // max(1, jax.local_device_count())


def program_bytes(compiled) -> int | None:
  """Per-device bytes a compiled program needs (XLA's memory analysis)."""
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if m is None:
    return None
  return int(m.argument_size_in_bytes + m.output_size_in_bytes
             - m.alias_size_in_bytes + m.temp_size_in_bytes)


SUMMARY_METRICS = ('uar', 'war', 'macro_f1')


def run_experiment(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """What `python -m jaxser.main` runs: one run of `config.seed`, or, with
  `config.seeds` (e.g. '0,1,2'), one run per seed in workdir/seed<k>/
  (packed into one program where they can share it) and
  workdir/summary.json: each metric's values, mean and std (ddof 0) over
  the seeds. Returns results.json's dict, or the summary's."""
  seeds = seeds_of(config)
  if not seeds:
    return train_and_evaluate(config, workdir)
  configs = []
  for k in seeds:
    c = config.copy_and_resolve_references()
    c.seeds, c.seed = '', k
    configs.append(c)
  workdirs = [io_lib.join(workdir, f'seed{k}') for k in seeds]
  results = train_many(configs, workdirs, pack=0)
  summary = {key: config.data[key] for key in ('source', 'target', 'task',
                                               'protocol')}
  summary.update(method=config.method, seeds=seeds, workdirs=workdirs)
  if any(r.get('target_labelled') is False for r in results):
    summary['target_labelled'] = False  # No metric to summarise.
  for key in SUMMARY_METRICS if summary.get('target_labelled', True) else ():
    values = [float(r[key]) for r in results]
    summary[key] = {'mean': float(np.mean(values)),
                    'std': float(np.std(values)), 'values': values}
  if jax.process_index() == 0:
    io_lib.write_json(io_lib.join(workdir, 'summary.json'), summary)
  return summary
