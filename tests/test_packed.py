"""Packed runs, device-resident sampling, steps per dispatch, seeds."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import conftest
from conftest import tiny_config
from jaxser import predictions
from jaxser import train
from jaxser.data import corpus as corpus_lib
from jaxser.data import resident

# A second source of another size (36 utterances against tiny_src's 48):
# two pairs of one task packed together pad the smaller set.
corpus_lib.register('tiny_src_b', synthetic=True)(
    conftest._tiny('tiny_src_b', per_class=3))

METHOD = 'emodna'  # Has method state (EMA threshold, class centres).


def _config(cache_dir, source='tiny_src', seed=0, steps=4):
  c = tiny_config(METHOD, cache_dir, steps=steps)
  c.data.source = source
  c.seed = seed
  return c


def _cells(cache_dir):
  return [_config(cache_dir, 'tiny_src', 0), _config(cache_dir, 'tiny_src', 1),
          _config(cache_dir, 'tiny_src_b', 0),
          _config(cache_dir, 'tiny_src_b', 1)]


def _logits(workdir):
  return predictions.read(os.path.join(workdir, predictions.FILE))[2]


def _same(a_dir, a, b_dir, b, atol=1e-5):
  """Identical confusion matrices; logits within `atol`."""
  assert a['confusion'] == b['confusion']
  np.testing.assert_allclose(_logits(a_dir), _logits(b_dir), atol=atol,
                             rtol=1e-5)


# On CPU packed runs take turns through the lone run's program
# (config.train.pack_step 'auto' -> 'in_turn'): exactly the run alone.
# A vmapped program (4 runs x 2 data devices) and a run alone (1 x 8) order
# their float reductions differently (batched kernels, another split of the
# batch): the parameters differ by ~1e-6 after 3 steps
# (test_packed_step_equals_alone_to_float_rounding), which Emo-DNA's
# thresholded pseudo-labels and RAdam amplify to ~1e-3 in the logits after
# 4 steps.
PACKED_ATOL = 5e-3


@pytest.fixture(scope='module')
def packed(tmp_path_factory, cache_dir):
  """Two seeds of two pairs (sources of different sizes) in one program."""
  root = tmp_path_factory.mktemp('packed')
  workdirs = [str(root / f'run{i}') for i in range(4)]
  results = train.train_many(_cells(cache_dir), workdirs)
  return workdirs, results


def test_packed_runs_write_their_own_workdirs(packed):
  workdirs, results = packed
  for w, r in zip(workdirs, results):
    saved = json.load(open(os.path.join(w, 'results.json')))
    assert saved['uar'] == r['uar'] and saved['steps'] == 4
    rows = [json.loads(l) for l in open(os.path.join(w, 'metrics.jsonl'))]
    assert [x['step'] for x in rows if 'train/loss' in x] == [2, 4]
    assert os.path.exists(os.path.join(w, 'checkpoints', '4'))
  # Different seeds and sources give different runs.
  assert len({json.dumps(r['confusion']) + str(_logits(w)[0])
              for w, r in zip(workdirs, results)}) == 4


def test_packed_equals_alone(packed, tmp_path, cache_dir):
  workdirs, results = packed
  assert train.runs_in_turn(_config(cache_dir))  # CPU default.
  cells = _cells(cache_dir)
  for i in (1, 2):  # Seed 1 of the first pair, seed 0 of the second.
    alone = train.train_and_evaluate(cells[i], str(tmp_path / f'alone{i}'))
    _same(str(tmp_path / f'alone{i}'), alone, workdirs[i], results[i],
          atol=0)


@pytest.mark.slow
def test_vmapped_packed_runs_equal_alone_to_float_rounding(packed, tmp_path,
                                                           cache_dir):
  workdirs, results = packed
  cells = [_cells(cache_dir)[i] for i in (1, 2)]
  for c in cells:
    c.train.pack_step = 'vmap'
  assert not train.runs_in_turn(cells[0])
  dirs = [str(tmp_path / 'v1'), str(tmp_path / 'v2')]
  out = train.train_many(cells, dirs)
  for d, r, i in zip(dirs, out, (1, 2)):
    _same(d, r, workdirs[i], results[i], atol=PACKED_ATOL)


def test_runs_in_turn_equal_each_run_alone_and_skip_disabled(tmp_path,
                                                             cache_dir):
  """make_dispatch(in_turn=True) on 3 stacked runs (different seeds, one
  disabled) against each run's own lone program: bit for bit."""
  cache = {}
  run = train._prepare(_config(cache_dir), str(tmp_path), cache)
  example = train.example_batch(run.data, 8)
  tx = train.method_optimizer(run.config, run.method, example)
  step = train.make_train_step(run.method, tx)
  init = jax.jit(lambda s: train.create_train_state(run.method, tx, s,
                                                    example))
  sets = train._training_sets(run, cache)
  mesh = train.make_runs_mesh(1, 8)
  replicated = NamedSharding(mesh, P())
  runs = NamedSharding(mesh, P('runs'))
  pool = resident.make_pool({'source': [sets['source']],
                             'target': [sets['target']]}, replicated)
  seeds = [0, 3, 7]
  enabled = [True, False, True]

  def call(dispatch, states, seed, on):
    info = {k: jax.device_put(
        jnp.asarray(seed if k == 'seed' else [0] * len(seed), jnp.int32),
        runs) for k in ('seed', 'source', 'target')}
    return dispatch(states, info, jax.device_put(jnp.asarray(on), runs),
                    pool.arrays, pool.sizes,
                    jax.device_put(jnp.int32(0), replicated), None)

  stacked = jax.device_put(jax.tree.map(
      lambda *x: jnp.stack(x), *[init(jnp.int32(s)) for s in seeds]), runs)
  in_turn = train.make_dispatch(run.method, step, mesh, 2, 8, pool,
                                in_turn=True)
  out, metrics = call(in_turn, stacked, seeds, enabled)
  assert metrics['loss'].shape == (2, 3)
  assert jax.device_get(out.step).tolist() == [2, 0, 2]
  lone = train.make_dispatch(run.method, step, mesh, 2, 8, pool)
  for k, s in enumerate(seeds):
    alone, m = call(lone, jax.device_put(jax.tree.map(
        lambda x: x[None], init(jnp.int32(s))), runs), [s], [enabled[k]])
    for a, b in zip(jax.tree.leaves(jax.device_get(alone)),
                    jax.tree.leaves(jax.device_get(out))):
      np.testing.assert_array_equal(a[0], b[k])
    np.testing.assert_array_equal(m['loss'][:, 0], metrics['loss'][:, k])
  with pytest.raises(ValueError, match='in_turn'):
    train.make_dispatch(run.method, step, train.make_runs_mesh(2, 8), 1, 8,
                        pool, in_turn=True)


@pytest.mark.slow
def test_packed_resume_with_runs_at_different_steps(packed, tmp_path,
                                                    cache_dir):
  workdirs, results = packed
  cells = _cells(cache_dir)
  # Run 0 was trained to step 2 (its checkpoint), run 3 not at all.
  short = _config(cache_dir, 'tiny_src', 0, steps=2)
  train.train_and_evaluate(short, str(tmp_path / 'r0'))
  out = train.train_many([cells[0], cells[3]],
                         [str(tmp_path / 'r0'), str(tmp_path / 'r3')])
  _same(str(tmp_path / 'r0'), out[0], workdirs[0], results[0],
        atol=PACKED_ATOL)
  _same(str(tmp_path / 'r3'), out[1], workdirs[3], results[3],
        atol=PACKED_ATOL)


@pytest.mark.slow
def test_interrupted_packed_program_resumes_as_uninterrupted(
    packed, tmp_path, cache_dir, monkeypatch):
  workdirs, results = packed
  cells = [_cells(cache_dir)[i] for i in (1, 2)]
  for c in cells:
    c.train.checkpoint_every = 100
  dirs = [str(tmp_path / 'a'), str(tmp_path / 'b')]
  real = train.make_dispatch
  calls = []

  def dying(*args, **kwargs):
    step = real(*args, **kwargs)

    def call(*a):
      calls.append(1)
      if len(calls) == 4:
        raise KeyboardInterrupt
      return step(*a)
    return call
  monkeypatch.setattr(train, 'make_dispatch', dying)
  with pytest.raises(train.Interrupted) as e:
    train.train_many(cells, dirs, pack=2)  # pack=2: no memory probe.
  assert e.value.step == 3
  for d in dirs:
    assert sorted(os.listdir(os.path.join(d, 'checkpoints'))) == ['3']
    assert not os.path.exists(os.path.join(d, 'results.json'))
  monkeypatch.setattr(train, 'make_dispatch', real)
  out = train.train_many(cells, dirs)
  for d, r, i in zip(dirs, out, (1, 2)):
    _same(d, r, workdirs[i], results[i], atol=PACKED_ATOL)


@pytest.mark.slow
def test_steps_per_dispatch_equals_single_steps(packed, tmp_path, cache_dir):
  workdirs, results = packed
  cells = [_cells(cache_dir)[i] for i in (0, 3)]
  for c in cells:
    c.train.steps_per_dispatch = 2
  dirs = [str(tmp_path / 'k0'), str(tmp_path / 'k3')]
  out = train.train_many(cells, dirs)
  for d, r, i in zip(dirs, out, (0, 3)):
    _same(d, r, workdirs[i], results[i], atol=PACKED_ATOL)
    rows = [json.loads(l) for l in open(os.path.join(d, 'metrics.jsonl'))]
    assert [x['step'] for x in rows if 'train/loss' in x] == [2, 4]


@pytest.mark.slow
def test_packed_on_eight_devices_equals_one_device(packed, tmp_path,
                                                   cache_dir, monkeypatch):
  workdirs, results = packed
  assert train.make_runs_mesh(4, 8).shape == {'runs': 4, 'data': 2}
  one = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ('runs', 'data'))
  monkeypatch.setattr(train, 'make_runs_mesh', lambda runs, batch: one)
  dirs = [str(tmp_path / f'd{i}') for i in range(4)]
  out = train.train_many(_cells(cache_dir), dirs)
  for d, r, w, s in zip(dirs, out, workdirs, results):
    _same(d, r, w, s, atol=PACKED_ATOL)


@pytest.mark.slow
def test_seeds_run_packed_and_summarise(packed, tmp_path, cache_dir):
  workdirs, results = packed
  config = _config(cache_dir)
  config.seeds = '0,1'
  summary = train.run_experiment(config, str(tmp_path))
  saved = json.load(open(tmp_path / 'summary.json'))
  assert saved['seeds'] == [0, 1]
  assert saved['uar']['values'] == pytest.approx(
      [results[0]['uar'], results[1]['uar']])
  assert saved['uar']['mean'] == pytest.approx(
      np.mean(saved['uar']['values']))
  assert summary['war']['std'] == pytest.approx(
      np.std([results[0]['war'], results[1]['war']]))
  _same(str(tmp_path / 'seed1'),
        json.load(open(tmp_path / 'seed1' / 'results.json')),
        workdirs[1], results[1], atol=PACKED_ATOL)


def test_packing_refuses_different_shapes_and_runs_them_apart(
    tmp_path, cache_dir, monkeypatch):
  a = _config(cache_dir)
  b = _config(cache_dir, 'tiny_src,tiny_src_b', seed=1)  # Two sources.
  with pytest.raises(ValueError, match='differ in source corpora.*apart'):
    train.train_runs([a, b], [str(tmp_path / 'a'), str(tmp_path / 'b')])
  groups, lines = [], []
  monkeypatch.setattr(train, '_train_group', lambda runs, cache, **kw: (
      groups.append([r.workdir for r in runs]) or [{}] * len(runs)))
  c = _config(cache_dir, seed=2)
  train.train_many([a, b, c], [str(tmp_path / x) for x in 'abc'],
                   log=lines.append)
  assert groups == [[str(tmp_path / 'a'), str(tmp_path / 'c')],
                    [str(tmp_path / 'b')]]
  assert len(lines) == 1 and 'source corpora' in lines[0]
  frames = _config(cache_dir)
  frames.data.frames = 40
  with pytest.raises(ValueError, match=r'config\.data\.frames.*apart'):
    train.train_runs([a, frames], [str(tmp_path / 'a'), str(tmp_path / 'f')])
  # --pack bounds the runs per program.
  groups.clear()
  train.train_many([a, c], [str(tmp_path / 'a'), str(tmp_path / 'c')],
                   pack=1)
  assert groups == [[str(tmp_path / 'a')], [str(tmp_path / 'c')]]


def test_packed_step_equals_alone_to_float_rounding(tmp_path, cache_dir):
  """Three steps of 4 packed copies of a run on a (4 runs x 2 data) mesh
  against the run alone on one device: every parameter within 1e-5."""
  cache = {}
  run = train._prepare(_config(cache_dir), str(tmp_path), cache)
  example = train.example_batch(run.data, 8)
  tx = train.method_optimizer(run.config, run.method, example)
  step = train.make_train_step(run.method, tx)
  state = jax.jit(lambda: train.create_train_state(run.method, tx, 0,
                                                   example))()
  sets = train._training_sets(run, cache)
  params = []
  for shape, num in (((1, 1), 1), ((4, 2), 4)):
    mesh = Mesh(np.array(jax.devices()[:shape[0] * shape[1]]).reshape(shape),
                ('runs', 'data'))
    pool = resident.make_pool({'source': [sets['source']],
                               'target': [sets['target']]},
                              NamedSharding(mesh, P()))
    runs = NamedSharding(mesh, P('runs'))
    states = jax.device_put(jax.tree.map(lambda x: jnp.stack([x] * num),
                                         state), runs)
    info = {k: jax.device_put(jnp.zeros(num, jnp.int32), runs)
            for k in ('seed', 'source', 'target')}
    out, metrics = train.make_dispatch(run.method, step, mesh, 3, 8, pool)(
        states, info, jax.device_put(jnp.ones(num, bool), runs), pool.arrays,
        pool.sizes, jax.device_put(jnp.int32(0), NamedSharding(mesh, P())),
        None)
    assert metrics['loss'].shape == (3, num)
    assert int(out.step[0]) == 3
    params.append(jax.device_get(jax.tree.map(lambda x: x[-1], out.params)))
  for a, b in zip(*map(jax.tree.leaves, params)):
    np.testing.assert_allclose(a, b, atol=1e-5)


# Device-resident sampling.


def test_every_epoch_is_a_permutation_whatever_the_padding():
  n, b = 10, 4
  rows = np.concatenate([resident.positions_np(n, b, 3, 0, s)
                         for s in range(10)])  # 4 epochs.
  for e in range(4):
    assert sorted(rows[e * n:(e + 1) * n]) == list(range(n))
  # Another seed or stream: another order.
  other = np.concatenate([resident.positions_np(n, b, 4, 0, s)
                          for s in range(3)])
  assert not np.array_equal(other, rows[:12])
  padded = jax.jit(resident.batch_positions, static_argnums=(1, 2, 3))
  for s in range(10):
    np.testing.assert_array_equal(
        padded(n, 37, 5, b, 3, 0, s), rows[s * b:(s + 1) * b])
  # A batch larger than the set spans several epochs.
  big = resident.positions_np(3, 8, 0, 1, 0)
  assert sorted(big[:3]) == sorted(big[3:6]) == [0, 1, 2]


def test_draw_is_the_same_alone_packed_and_on_eight_devices():
  rng = np.random.default_rng(0)

  def arrays(n, labelled):
    out = {'features': rng.standard_normal((n, 6, 2)).astype(np.float32),
           'length': rng.integers(1, 6, n).astype(np.int32),
           'domain': np.zeros(n, np.int32), 'gender': np.zeros(n, np.int32),
           'language': np.zeros(n, np.int32),
           'speaker': np.zeros(n, np.int32)}
    if labelled:
      out['label'] = rng.integers(0, 4, n).astype(np.int32)
    return out
  sets = {'source': [arrays(12, True), arrays(7, True)],
          'target': [arrays(9, False)]}
  mesh8 = Mesh(np.array(jax.devices()), ('data',))
  mesh1 = Mesh(np.array(jax.devices()[:1]), ('data',))
  alone = resident.make_pool({'source': sets['source'][1:],
                              'target': sets['target']},
                             NamedSharding(mesh1, P()))
  n_max = lambda pool: {r: a['features'].shape[1]
                        for r, a in pool.arrays.items()}
  refs0 = {'source': jnp.int32(0), 'target': jnp.int32(0)}
  want = [jax.device_get(resident.draw(
      alone.arrays, alone.sizes, alone.min_size, n_max(alone), 8, refs0,
      5, s)) for s in (0, 3)]
  for mesh in (mesh8, mesh1):
    pool = resident.make_pool(sets, NamedSharding(mesh, P()))

    @jax.jit
    def packed(seeds, src, step):
      return jax.vmap(lambda seed, s: resident.draw(
          pool.arrays, pool.sizes, pool.min_size, n_max(pool), 8,
          {'source': s, 'target': jnp.int32(0)}, seed, step))(seeds, src)
    for w, s in zip(want, (0, 3)):
      got = jax.device_get(packed(jnp.array([1, 5]), jnp.array([0, 1]), s))
      for role in w:
        for k in w[role]:
          np.testing.assert_array_equal(got[role][k][1], w[role][k])
      assert not np.array_equal(got['source']['label'][0],
                                w['source']['label'])
