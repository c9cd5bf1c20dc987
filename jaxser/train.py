"""The generic train loop shared by all methods.

The loop owns one `TrainState` pytree (step, params, batch stats, optimiser
state, RNG key and the method's own state), replicated over a `Mesh` of all
devices; batches are sharded on its 'data' axis. The train step is one
`jax.jit` with explicit shardings and the state donated. Checkpoints are orbax
saves of the whole state; a rerun on the same workdir resumes from the latest
one and, since the input stream is a function of (seed, step), ends with the
same results as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import tempfile
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

from jaxser import metrics as metrics_lib
from jaxser import methods as methods_lib
from jaxser.data import pipeline

# Config fields that may change between a run and its resumption.
_RESUMABLE_CHANGES = ('train.steps', 'train.eval_every', 'train.log_every',
                      'train.checkpoint_every', 'profile.', 'data.workers',
                      'data.cache_dir', 'data.root', 'data.paths.')


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  method_state: Any


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


def example_batch(data: pipeline.Data, batch_size: int) -> dict:
  """A batch of zeros with the shapes and dtypes of the training stream."""
  shape = data.source_train.parts[0].cached.feature_shape
  def domain(with_label):
    b = {'features': np.zeros((batch_size,) + shape, np.float32),
         'length': np.ones((batch_size,), np.int32),
         'domain': np.zeros((batch_size,), np.int32),
         'gender': np.zeros((batch_size,), np.int32),
         'language': np.zeros((batch_size,), np.int32)}
    if with_label:
      b['label'] = np.zeros((batch_size,), np.int32)
    return b
  return {'source': domain(True), 'target': domain(False)}


def create_train_state(method: methods_lib.Method,
                       tx: optax.GradientTransformation, seed: int,
                       batch: dict) -> TrainState:
  rng = jax.random.PRNGKey(seed)
  variables = method.init_variables(jax.random.fold_in(rng, 1), batch)
  params = variables['params']
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      batch_stats=variables.get('batch_stats', {}),
      opt_state=tx.init(params), rng=rng,
      method_state=method.init_state())


def make_train_step(method: methods_lib.Method,
                    tx: optax.GradientTransformation):
  """(state, batch) -> (new state, metrics); pure, to be jitted."""

  def train_step(state: TrainState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    grad_fn = jax.value_and_grad(method.loss, has_aux=True)
    (loss, (batch_stats, method_state, metrics)), grads = grad_fn(
        state.params, state.batch_stats, state.method_state, batch, rng,
        state.step)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads))
    new_state = state.replace(
        step=state.step + 1, params=params, batch_stats=batch_stats,
        opt_state=opt_state, method_state=method_state)
    return new_state, metrics

  return train_step


def jit_train_step(method, tx, mesh):
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))
  return jax.jit(make_train_step(method, tx),
                 in_shardings=(replicated, batch_sharding),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def evaluate(method: methods_lib.Method, state: TrainState,
             eval_set: dict[str, np.ndarray], classes, batch_size: int,
             mesh) -> dict:
  """Metrics of the model on `eval_set` (arrays with a 'label' key)."""
  batch_sharding = NamedSharding(mesh, P('data'))
  logits_fn = _jit_logits(method, mesh)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  n = len(eval_set['label'])
  batch_size = -(-batch_size // jax.device_count()) * jax.device_count()
  per_host = batch_size // jax.process_count()
  lo = jax.process_index() * per_host
  preds = []
  for start in range(0, n, batch_size):
    feats = eval_set['features'][start:start + batch_size]
    lengths = eval_set['length'][start:start + batch_size]
    pad = batch_size - len(feats)
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
    preds.append(np.asarray(logits).argmax(-1)[:batch_size - pad])
  return metrics_lib.summary(eval_set['label'], np.concatenate(preds),
                             classes)


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
  if jax.process_index() == 0:
    _write_json(path, new)


def _write_json(path: str, obj: Any) -> None:
  """Writes atomically, so an interruption never leaves half a file."""
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.', suffix='.tmp')
  with os.fdopen(fd, 'w') as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)


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
  os.makedirs(workdir, exist_ok=True)
  methods_lib.get(config.method)  # An unknown method fails before the data.
  pipeline.validate(config.data, config.train.batch_size)
  _check_resumable(config, workdir)

  data = pipeline.load_data(config.data)
  eval_set = data.target_eval.load()
  method = methods_lib.create(
      config, len(data.classes),
      class_counts=data.source_train.class_counts(len(data.classes)))
  tx = make_optimizer(config.train)
  mesh = make_mesh()
  replicated = NamedSharding(mesh, P())
  batch_size = config.train.batch_size

  state = jax.jit(
      lambda: create_train_state(method, tx, config.seed,
                                 example_batch(data, batch_size)),
      out_shardings=replicated)()
  ckpt = ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, 'checkpoints')),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=config.train.keep_checkpoints, create=True))
  if ckpt.latest_step() is not None:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    state = ckpt.restore(ckpt.latest_step(),
                         args=ocp.args.StandardRestore(abstract))
    if jax.process_index() == 0:
      print(f'resumed from step {int(state.step)} of {workdir}', flush=True)
  start = int(state.step)
  steps = config.train.steps

  train_step = jit_train_step(method, tx, mesh)
  writer = MetricWriter(workdir, start)
  batches = pipeline.train_batches(data, batch_size, config.seed, start,
                                   NamedSharding(mesh, P('data')))
  log_every = max(1, config.train.log_every)
  profile_start = config.profile.start_step
  profile_stop = profile_start + config.profile.num_steps
  bar = tqdm.tqdm(total=steps, initial=start, desc=config.method,
                  unit='step', dynamic_ncols=True,
                  disable=jax.process_index() != 0)
  pending, t0, t0_step = [], time.perf_counter(), start
  step = start
  try:
    for step in range(start + 1, steps + 1):
      if profile_start > 0 and step == profile_start:
        jax.profiler.start_trace(os.path.join(workdir, 'profile'))
      state, step_metrics = train_step(state, next(batches))
      pending.append(step_metrics)
      if profile_start > 0 and step == profile_stop:
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
      if step % log_every == 0 or step == steps:
        means = {k: float(np.mean([float(m[k]) for m in pending]))
                 for k in pending[0]}
        dt = time.perf_counter() - t0
        means['samples_per_s'] = 2 * batch_size * (step - t0_step) / dt
        writer.write(step, {f'train/{k}': v for k, v in means.items()})
        bar.set_postfix(loss=f'{means["loss"]:.3f}',
                        samples_per_s=f'{means["samples_per_s"]:.0f}')
        bar.update(step - bar.n)
        pending, t0, t0_step = [], time.perf_counter(), step
      if config.train.eval_every and step % config.train.eval_every == 0:
        result = evaluate(method, state, eval_set, data.classes,
                          config.train.eval_batch_size, mesh)
        writer.write(step, _eval_scalars(result))
        bar.write(f'step {step}: target UAR {result["uar"]:.3f} '
                  f'WAR {result["war"]:.3f} F1 {result["macro_f1"]:.3f}')
      if step % config.train.checkpoint_every == 0 or step == steps:
        ckpt.save(step, args=ocp.args.StandardSave(state))
  except KeyboardInterrupt:
    # Keep the finished steps: a rerun resumes from here.
    if int(state.step) > (ckpt.latest_step() or 0):
      ckpt.save(int(state.step), args=ocp.args.StandardSave(state),
                force=True)
    raise
  finally:
    bar.close()
    ckpt.wait_until_finished()
    ckpt.close()

  result = evaluate(method, state, eval_set, data.classes,
                    config.train.eval_batch_size, mesh)
  if config.data.protocol == 'multi_corpus':
    result['per_corpus'] = evaluate_per_corpus(
        method, state, eval_set, data, config.train.eval_batch_size, mesh)
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
      devices=jax.device_count())
  if jax.process_index() == 0:
    _write_json(os.path.join(workdir, 'results.json'), result)
  return result
