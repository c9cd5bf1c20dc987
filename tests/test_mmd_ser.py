"""MMD-SER: class weights, the DSN kernel, the CNN + BiGRU network, the loss,
training end to end and labelling an unlabelled folder with `jaxser.label`."""

import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import soundfile as sf
from jax.sharding import Mesh

from conftest import tiny_config
from jaxser import grid
from jaxser import label as label_lib
from jaxser import losses
from jaxser import methods as methods_lib
from jaxser import train
from jaxser.data import corpus as corpus_lib
from jaxser.data import pipeline
from jaxser.models import cnn_gru

NUM_CLASSES = 4
CLASSES = ('neutral', 'happy', 'sad', 'angry')
BATCH, FRAMES, DIMS = 4, 48, 80
LENGTHS = np.array([48, 30, 17, 5], np.int32)


def _config(name='mmd_ser'):
  return grid.load_config(name, grid.default_configs_dir())


def _batch(seed=0):
  rng = np.random.default_rng(seed)

  def domain(with_label, shift):
    b = {'features': (rng.standard_normal((BATCH, FRAMES, DIMS)) + shift
                      ).astype(np.float32),
         'length': LENGTHS.copy(), 'domain': np.zeros(BATCH, np.int32)}
    if with_label:
      b['label'] = np.array([0, 1, 1, 3], np.int32)
    return b
  return {'source': domain(True, 0.0), 'target': domain(False, 0.5)}


def _finite(tree):
  return all(np.all(np.isfinite(np.asarray(t))) for t in jax.tree.leaves(tree))


def _norm(tree):
  return float(jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(tree))))


################################################################################
# Losses.
################################################################################


def test_class_weights_and_weighted_cross_entropy_match_numpy():
  counts = [3, 0, 6, 1]
  w = np.asarray(losses.class_weights(counts))
  np.testing.assert_allclose(w, [10 / 12, 0.0, 10 / 24, 10 / 4], rtol=1e-6)
  np.testing.assert_allclose(losses.class_weights([5, 5, 5]), 1.0)

  rng = np.random.default_rng(0)
  logits = rng.standard_normal((6, 4)).astype(np.float32)
  labels = np.array([0, 2, 2, 3, 0, 3])
  ce = -(logits - np.log(np.exp(logits).sum(1, keepdims=True)))[
      np.arange(6), labels]
  want = np.sum(w[labels] * ce) / np.sum(w[labels])
  np.testing.assert_allclose(
      losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                           weights=jnp.asarray(w)), want, rtol=1e-5)


def test_fixed_bandwidth_mmd_matches_numpy():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((5, 3))
  y = rng.standard_normal((4, 3)) + 0.5
  sigmas = losses.DSN_SIGMAS

  def k(a, b):
    d = ((a[:, None] - b[None]) ** 2).sum(-1)
    return sum(np.exp(-d / (2 * s)) for s in sigmas)
  want = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
  got = losses.mk_mmd(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32),
                      estimator='biased',
                      kernel=losses.FixedBandwidthKernels())
  np.testing.assert_allclose(got, want, rtol=1e-4)


################################################################################
# Network and method. One initialisation and one compiled forward pass serve
# all the tests (compiling is what takes time here).
################################################################################

COUNTS = [5, 1, 2, 8]


@pytest.fixture(scope='module')
def mmd_method():
  """(method, variables, forward): MMD-SER without dropout, so that the loss
  sees the logits `forward` gives; forward(x, lengths) = (logits, E)."""
  config = _config()
  config.model.cnn_gru.dropout = 0.0
  method = methods_lib.create(config, NUM_CLASSES, class_counts=COUNTS)
  variables = jax.jit(method.init_variables)(jax.random.PRNGKey(0), _batch())

  @jax.jit
  def forward(x, n):
    out = method.model.apply(variables, x, n, train=False)
    return out['logits'], out['embedding']
  return method, variables, forward


def test_network_shapes_lengths_and_padding_are_ignored(mmd_method):
  _, _, forward = mmd_method
  x = _batch()['source']['features']
  # Garbage in the padding changes nothing.
  garbage = x.copy()
  for i, n in enumerate(LENGTHS):
    garbage[i, n:] = 100.0
  logits, e = forward(np.concatenate([x, garbage]), np.tile(LENGTHS, 2))
  assert logits.shape == (2 * BATCH, NUM_CLASSES)
  assert e.shape == (2 * BATCH, 256)
  np.testing.assert_allclose(logits[BATCH:], logits[:BATCH], rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(e[BATCH:], e[:BATCH], rtol=1e-4, atol=1e-5)

  # TF's length arithmetic: ceil(n / 2) for the strided conv, then three
  # poolings of floor(n / 2) (at least 1); F bands -> F / 16 x 96 channels.
  (h, h_len), _ = cnn_gru.CNNEncoder().init_with_output(
      jax.random.PRNGKey(0), x[:, :, :16], LENGTHS)
  want = -(-LENGTHS // 2)
  for _ in range(3):
    want = np.maximum(want // 2, 1)
  np.testing.assert_array_equal(h_len, want)
  assert h.shape == (BATCH, FRAMES // 16, 96)


def test_create_gives_mmd_ser_its_class_weights():
  method = methods_lib.create(_config(), NUM_CLASSES, class_counts=[1, 2, 3, 4])
  assert method.class_counts == (1, 2, 3, 4)
  np.testing.assert_allclose(method.class_weights,
                             losses.class_weights([1, 2, 3, 4]))
  assert methods_lib.create(_config(), NUM_CLASSES).class_weights is None
  config = _config()
  config.mmd_ser.class_weighted = False
  assert methods_lib.create(config, NUM_CLASSES,
                            class_counts=[1, 2, 3, 4]).class_weights is None
  with pytest.raises(ValueError, match='class_counts'):
    methods_lib.create(_config(), NUM_CLASSES, class_counts=[1, 2])
  config.mmd_ser.kernel = 'laplace'
  with pytest.raises(ValueError, match='config.mmd_ser.kernel'):
    methods_lib.create(config, NUM_CLASSES)


def test_loss_is_weighted_ce_plus_half_mmd(mmd_method):
  method, variables, forward = mmd_method
  batch = _batch()
  (loss, (_, _, metrics)), grads = jax.jit(jax.value_and_grad(
      method.loss, has_aux=True))(variables['params'], {}, {}, batch,
                                  jax.random.PRNGKey(1), 0)
  assert _finite((loss, metrics, grads))
  np.testing.assert_allclose(
      loss, metrics['loss_emotion'] + 0.5 * metrics['loss_mmd'], rtol=1e-6)
  for part in ('cnn', 'gru', 'fc1', 'emotion_head'):
    assert _norm(grads[part]) > 0
  src, tgt = batch['source'], batch['target']
  logits, e = forward(np.concatenate([src['features'], tgt['features']]),
                      np.concatenate([src['length'], tgt['length']]))
  np.testing.assert_allclose(
      metrics['loss_emotion'], losses.cross_entropy(
          logits[:BATCH], src['label'], weights=losses.class_weights(COUNTS)),
      rtol=1e-5)
  np.testing.assert_allclose(
      metrics['loss_mmd'], losses.mk_mmd(
          e[:BATCH], e[BATCH:], estimator='biased',
          kernel=losses.FixedBandwidthKernels()), rtol=1e-4, atol=1e-6)


def test_source_only_ignores_the_target(mmd_method):
  _, variables, _ = mmd_method
  config = _config('mmd_ser_source_only')
  method = methods_lib.create(config, NUM_CLASSES, class_counts=COUNTS)
  run = jax.jit(jax.value_and_grad(method.loss, has_aux=True))
  batch = _batch()
  (loss, (_, _, metrics)), grads = run(variables['params'], {}, {}, batch,
                                       jax.random.PRNGKey(1), 0)
  assert 'loss_mmd' not in metrics
  np.testing.assert_allclose(loss, metrics['loss_emotion'])
  moved = dict(batch, target=dict(batch['target'],
                                  features=batch['target']['features'] + 3))
  (loss2, _), grads2 = run(variables['params'], {}, {}, moved,
                           jax.random.PRNGKey(1), 0)
  assert loss2 == loss
  assert _norm(jax.tree.map(jnp.subtract, grads, grads2)) == 0


def test_constant_warmup_learning_rate():
  config = _config()
  config.train.warmup_steps = 2
  tx = train.make_optimizer(config.train)
  params = {'w': jnp.ones(3)}
  grads = {'w': jnp.array([1.0, -2.0, 0.5])}
  state = tx.init(params)
  got = []
  for _ in range(3):
    updates, state = tx.update(grads, state, params)
    got.append(np.asarray(updates['w']))
  # Adam's update under a constant gradient is -lr * sign(g).
  sign = np.sign(np.asarray(grads['w']))
  for update, lr in zip(got, (3e-5, 3e-5, 3e-4)):
    np.testing.assert_allclose(update, -lr * sign, rtol=1e-4)
  assert isinstance(train.make_optimizer(_config('dan').train),
                    optax.GradientTransformation)


################################################################################
# Training, sharding and labelling.
################################################################################


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory, cache_dir):
  """A tiny finished mmd_ser run; the class counts it passed to the method."""
  seen = []
  original = losses.class_weights
  losses.class_weights = lambda counts: seen.append(counts) or original(counts)
  try:
    workdir = str(tmp_path_factory.mktemp('mmd_ser_run'))
    config = tiny_config('mmd_ser', cache_dir, steps=2)
    result = train.train_and_evaluate(config, workdir)
  finally:
    losses.class_weights = original
  return workdir, result, seen


@pytest.fixture(scope='module')
def tts_folder(tmp_path_factory):
  """An unlabelled `folder` corpus: 7 tones and one silent (unusable) file."""
  root = tmp_path_factory.mktemp('tts')
  rng = np.random.default_rng(0)
  t = np.arange(8000) / 16000
  for i in range(7):
    wav = (0.3 * np.sin(2 * np.pi * (120 + 40 * i) * t)
           + 0.05 * rng.standard_normal(t.size))
    sub = root / ('a' if i % 2 else 'b')
    sub.mkdir(exist_ok=True)
    sf.write(str(sub / f'utt{i}.wav'), wav.astype(np.float32), 16000)
  sf.write(str(root / 'silent.wav'), np.zeros(8000, np.float32), 16000)
  return str(root)


def _read(path):
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def test_trains_with_source_class_counts(trained_run):
  _, result, seen = trained_run
  assert result['method'] == 'mmd_ser' and result['steps'] == 2
  assert 0.0 <= result['uar'] <= 1.0
  assert [list(c) for c in seen] == [[12, 12, 12, 12]]  # The tiny source.


def test_label_writes_soft_labels_and_top_k(trained_run, tts_folder, cache_dir,
                                            tmp_path):
  workdir, _, _ = trained_run
  summary = label_lib.label(workdir, 'folder', root=tts_folder, top_k=2,
                            workers=0)
  out = os.path.join(workdir, 'labels', 'folder')
  assert summary['out'] == out and summary['step'] == 2
  assert summary['utterances'] == 7 and summary['skipped'] == 1
  assert not [f for f in os.listdir(out) if f.endswith('.tmp')]
  with open(os.path.join(out, 'summary.json')) as f:
    assert json.load(f)['predicted'] == summary['predicted']

  rows = _read(os.path.join(out, 'soft_labels.csv'))
  assert [r['utt_id'] for r in rows] == sorted(
      f'{"a" if i % 2 else "b"}/utt{i}.wav' for i in range(7))
  assert all(r['path'] == os.path.join(tts_folder, r['utt_id']) for r in rows)
  p = np.array([[float(r[f'p_{c}']) for c in CLASSES] for r in rows])
  np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
  assert [r['predicted'] for r in rows] == [CLASSES[k] for k in p.argmax(1)]
  np.testing.assert_allclose([float(r['confidence']) for r in rows],
                             p.max(1), rtol=1e-6)

  def check_top(k, folder):
    rows = _read(os.path.join(folder, 'soft_labels.csv'))
    by_id = {r['utt_id']: r for r in rows}
    listed = []
    for c in CLASSES:
      top = _read(os.path.join(folder, f'top_{k}_{c}.csv'))
      predicted = [r for r in rows if r['predicted'] == c]
      assert len(top) == min(k, len(predicted))
      assert [int(r['rank']) for r in top] == list(range(1, len(top) + 1))
      post = [float(r['posterior']) for r in top]
      assert post == sorted(post, reverse=True)
      assert all(by_id[r['utt_id']]['predicted'] == c for r in top)
      assert post == [float(by_id[r['utt_id']][f'p_{c}']) for r in top]
      # Nothing predicted as c and left out is surer than the last listed.
      rest = [float(r[f'p_{c}']) for r in predicted
              if r['utt_id'] not in {t['utt_id'] for t in top}]
      assert not rest or max(rest) <= post[-1]
      listed += [r['utt_id'] for r in top]
    return listed

  check_top(2, out)
  # K above what there is: every utterance in exactly one reference set.
  other = str(tmp_path / 'k50')
  label_lib.label(workdir, 'folder', root=tts_folder, out=other, workers=0)
  assert sorted(check_top(50, other)) == sorted(r['utt_id'] for r in rows)
  assert _read(os.path.join(other, 'soft_labels.csv')) == rows


def test_label_errors_name_the_problem(trained_run, tts_folder, tmp_path):
  workdir, _, _ = trained_run
  with pytest.raises(ValueError, match=f'{tmp_path}.*config.json'):
    label_lib.label(str(tmp_path), 'folder', root=tts_folder)
  (tmp_path / 'config.json').write_text('{}')
  with pytest.raises(ValueError, match='no finished checkpoint in '
                     f'{tmp_path}/checkpoints'):
    label_lib.label(str(tmp_path), 'folder', root=tts_folder)
  with pytest.raises(corpus_lib.CorpusError, match="unknown corpus 'nope'"):
    label_lib.label(workdir, 'nope')
  with pytest.raises(corpus_lib.CorpusError, match='does not exist'):
    label_lib.label(workdir, 'folder', root=str(tmp_path / 'missing'))
  with pytest.raises(ValueError, match='--top_k'):
    label_lib.label(workdir, 'folder', root=tts_folder, top_k=0)


def test_sharded_step_matches_single_device(cache_dir):
  # As `trained_run`'s, so that the 8-device programs come from the
  # compilation cache when it ran first.
  config = tiny_config('mmd_ser', cache_dir, steps=2)
  data = pipeline.load_data(config.data)
  mesh8 = train.make_mesh()
  mesh1 = Mesh(np.array(jax.devices()[:1]), ('data',))
  method = methods_lib.create(config, len(data.classes),
                              class_counts=data.source_train.class_counts(4))
  tx = train.make_optimizer(config.train)
  init = jax.device_get(jax.jit(
      lambda: train.create_train_state(method, tx, config.seed,
                                       train.example_batch(data, 8)),
      out_shardings=jax.sharding.NamedSharding(
          mesh8, jax.sharding.PartitionSpec()))())
  sharding1 = jax.sharding.NamedSharding(mesh1,
                                         jax.sharding.PartitionSpec('data'))
  host_batch = jax.tree.map(np.asarray, next(pipeline.train_batches(
      data, 8, config.seed, 0, sharding1)))
  outs = []
  for mesh in (mesh8, mesh1):
    state = jax.device_put(init, jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec()))
    step = train.jit_train_step(method, tx, mesh)
    batch = jax.device_put(host_batch, jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec('data')))
    assert len(batch['source']['features'].sharding.device_set) == (
        mesh.devices.size)
    state, metrics = step(state, batch)
    outs.append(jax.device_get((state, metrics)))
  (s8, m8), (s1, m1) = outs
  # One step: the metrics and Adam's moments (the gradient and its square)
  # must agree tightly. Adam's first step moves each weight by about +-lr
  # whatever the size of its gradient, so a near-zero gradient whose sign
  # depends on the summation order may differ by 2 lr: params get that
  # tolerance (and a second step would spread it to everything).
  lr = config.train.warmup_learning_rate
  for a, b in zip(jax.tree.leaves(s8.params), jax.tree.leaves(s1.params)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2.5 * lr)
  for a, b in zip(jax.tree.leaves(s8.replace(params=None)),
                  jax.tree.leaves(s1.replace(params=None))):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
  for k in m1:
    np.testing.assert_allclose(m8[k], m1[k], rtol=2e-4, atol=2e-5)
