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
import json
import math
import os
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

from jaxser import io as io_lib
from jaxser import metrics as metrics_lib
from jaxser import methods as methods_lib
from jaxser import phases as phases_lib
from jaxser import predictions as predictions_lib
from jaxser.data import pipeline
from jaxser.models import registry

# Config fields that may change between a run and its resumption.
_RESUMABLE_CHANGES = ('train.steps', 'train.eval_every', 'train.log_every',
                      'train.checkpoint_every', 'profile.', 'data.workers',
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


def make_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh of all devices; XLA's partitioner places the computation."""
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
         'language': np.zeros((batch_size,), np.int32)}
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
                   batch_size: int, mesh) -> np.ndarray:
  """The one evaluation and prediction path: (N, C) float32 logits.

  `chunks` yields (features, lengths) numpy arrays of at most `batch_size`
  (rounded up to a multiple of the devices) rows, the same on every
  process; each is padded to a full batch (one compiled shape), each
  process feeds its slice of it, the step runs sharded on 'data' and the
  logits are gathered. Used by training's evaluations and selection,
  `jaxser.label` and the grid (through results.json).
  """
  batch_sharding = NamedSharding(mesh, P('data'))
  logits_fn = _jit_logits(method, mesh)
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


def _jit_logits(method, mesh):
  key = (id(method), id(mesh))
  if key not in _LOGITS_CACHE:
    _LOGITS_CACHE[key] = jax.jit(
        method.logits,
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
  path = os.path.join(workdir, 'config.json')
  new = json.loads(config.to_json_best_effort())
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
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
    io_lib.write_json(os.path.join(workdir, 'config.json'),
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
    self.path = os.path.join(workdir, 'metrics.jsonl')
    # Rows past the restored step were written by the interrupted run and
    # will be written again.
    if os.path.exists(self.path):
      with open(self.path) as f:
        rows = [l for l in f if l.strip()
                and json.loads(l).get('step', 0) <= start_step]
      with open(self.path, 'w') as f:
        f.writelines(rows)
    import tensorboardX  # pylint: disable=g-import-not-at-top
    self.tb = tensorboardX.SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write(self, step: int, scalars: dict) -> None:
    if not self.active:
      return
    with open(self.path, 'a') as f:
      f.write(json.dumps({'step': step, **scalars}) + '\n')
    for k, v in scalars.items():
      self.tb.add_scalar(k, v, step)
    self.tb.flush()

  def close(self):
    if self.active:
      self.tb.close()


def _eval_scalars(result: dict) -> dict:
  return {f'eval/{k}': result[k] for k in ('uar', 'war', 'macro_f1')}


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict:
  """Trains `config.method` and writes `workdir/results.json`; returns it."""
  started = time.time()
  os.makedirs(workdir, exist_ok=True)
  # An unknown method, or a config that does not fit it or its network,
  # fails before the data is read.
  methods_lib.get(config.method).check_config(config)
  pipeline.validate(config.data, config.train.batch_size)
  validation_selection(config)
  _check_resumable(config, workdir)

  data = pipeline.load_data(config.data)
  method = methods_lib.create(
      config, len(data.classes),
      class_counts=data.source_train.class_counts(len(data.classes)))
  # Multi-phase methods train on in-memory array sets (method.arrays adds
  # the ones it needs: up-sampled sources, selection sets...).
  arrays = {}
  if hasattr(method, 'arrays'):
    arrays = method.arrays(pipeline.load_arrays(data), config.seed)
    eval_set = arrays['target_eval']
  else:
    eval_set = data.target_eval.load(with_index=True)
  if data.source_val is not None:
    arrays['source_val'] = data.source_val.load()
  groups = method_groups(method)
  tx = None if groups else method_optimizer(
      config, method, example_batch(data, config.train.batch_size))
  phases = method_phases(method, tx, config, arrays)
  mesh = make_mesh()
  replicated = NamedSharding(mesh, P())
  batch_size = config.train.batch_size
  lengths = [phase_steps(p, arrays, batch_size) for p in phases]
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int).tolist()

  state = jax.jit(
      lambda: create_train_state(method, tx, config.seed,
                                 example_batch(data, batch_size), phases),
      out_shardings=replicated)()
  ckpt = ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, 'checkpoints')),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=config.train.keep_checkpoints, create=True))
  if ckpt.latest_step() is None:
    # A fresh run starts from the network's pretrained checkpoint, if any
    # (config.model.<network>.checkpoint), in every copy of the network.
    state = state.replace(params=registry.load_pretrained(config,
                                                          state.params))
  else:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    state = ckpt.restore(ckpt.latest_step(),
                         args=ocp.args.StandardRestore(abstract))
    if jax.process_index() == 0:
      print(f'resumed from step {int(state.step)} of phase '
            f'{phases[min(int(state.phase), len(phases) - 1)].name} of '
            f'{workdir}', flush=True)
  _write_config(config, workdir)
  start_phase = int(state.phase)
  writer = MetricWriter(workdir, offsets[min(start_phase, len(phases))]
                        + int(state.step))
  records = _read_phase_records(workdir, start_phase)
  multi = hasattr(method, 'phases')  # Declared phases are reported.
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
          last=index == len(phases) - 1, prefix=f'{phase.name}/' if multi
          else '')
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
          io_lib.write_json(os.path.join(workdir, 'phases.json'), records)
        ckpt.save(offsets[index + 1], args=ocp.args.StandardSave(state),
                  force=True)
  finally:
    ckpt.wait_until_finished()
    ckpt.close()

  result, logits = evaluate(method, state, eval_set, data.classes,
                            config.train.eval_batch_size, mesh,
                            return_logits=True)
  if jax.process_index() == 0:
    predictions_lib.write(os.path.join(workdir, predictions_lib.FILE),
                      data.target_eval.utterances_of(eval_set),
                      eval_set['label'], logits, data.classes)
  if config.data.protocol == 'multi_corpus':
    result['per_corpus'] = evaluate_per_corpus(
        method, state, eval_set, data, config.train.eval_batch_size, mesh)
  writer.write(offsets[-1], _eval_scalars(result))
  writer.close()
  steps = offsets[-1]
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
    io_lib.write_json(os.path.join(workdir, 'results.json'), result)
  return result


def _read_phase_records(workdir: str, start_phase: int) -> list[dict]:
  """The records of the phases finished before an interruption."""
  path = os.path.join(workdir, 'phases.json')
  if not start_phase or not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f)[:start_phase]


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
        jax.profiler.start_trace(os.path.join(workdir, 'profile'))
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
      if (config.train.eval_every and last
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
