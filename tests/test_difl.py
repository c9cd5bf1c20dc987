"""DIFL: its losses against NumPy, the reversed and gamma-scaled gradients of
its three heads, masking of unknown gender / language, the CNN-BLSTM
source-only baseline, the multi_corpus protocol, an end-to-end run and the
sharded step.

A tiny CNN-BLSTM (one conv block, no dropout, 4 segments per utterance)
keeps the compilations few and short: the loss and its gradient compile once
(the GRL coefficient is an argument) and serve every unit test.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from conftest import tiny_config
from jaxser import methods as methods_lib
from jaxser import train
from jaxser.data import pipeline
from jaxser.methods import difl
from jaxser.models import classifier

NUM_CLASSES = 4
BATCH = 4  # Utterances per domain in the unit tests.
SEGMENTS = 4
RTOL, ATOL = 1e-4, 1e-5


def _tiny(config):
  """The tiny CNN-BLSTM on 4-segment utterances."""
  config.data.feature_params.spec_segments.n_segments = SEGMENTS
  net = config.model.cnn_blstm
  net.conv_features = (4,)
  net.time_pool = (4,)
  net.freq_pool = (8,)
  net.lstm_hidden = 4
  net.embed_dim = 8
  net.dropout = 0.0  # Lets NumPy recompute the training forward.
  if 'difl' in config:
    config.difl.head_hidden = 8
  return config


def _config(name='difl', cache_dir='/nonexistent'):
  return _tiny(tiny_config(name, cache_dir))


def _np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_ce(z, y, known):
  """Mean of -log softmax(z_i)[y_i] over the rows with known[i]."""
  lp = _np_log_softmax(np.asarray(z, np.float64))
  rows = [-lp[i, y[i]] for i in range(len(y)) if known[i]]
  return float(np.mean(rows)) if rows else 0.0


################################################################################
# Pure functions.
################################################################################


def test_average_segment_posteriors_matches_numpy():
  rng = np.random.default_rng(0)
  z = rng.standard_normal((3, 5, 4)).astype(np.float32) * 2
  lengths = np.array([1, 5, 3])
  average = jax.jit(classifier.average_frame_posteriors)
  got = average(jnp.asarray(z),
                jnp.asarray(np.arange(5)[None] < lengths[:, None]))
  for b, n in enumerate(lengths):
    p = np.exp(_np_log_softmax(z[b, :n].astype(np.float64))).mean(0)
    np.testing.assert_allclose(got[b], np.log(p), rtol=RTOL, atol=ATOL)
  # Padding segments do not count, whatever their logits.
  z2 = z.copy()
  z2[0, 1:] = 100.0
  np.testing.assert_allclose(average(
      jnp.asarray(z2), np.arange(5)[None] < lengths[:, None]), got,
                             rtol=1e-6)


@pytest.mark.parametrize('form,scale', [('difl', 2.0), ('wen', 1.0)])
def test_emotion_loss_matches_numpy(form, scale):
  rng = np.random.default_rng(1)
  n, d = 10, 3
  z = rng.standard_normal((n, NUM_CLASSES)).astype(np.float32)
  f = rng.standard_normal((n, d)).astype(np.float32)
  c = rng.standard_normal((NUM_CLASSES, d)).astype(np.float32)
  y = rng.integers(0, NUM_CLASSES, n)
  m = rng.random(n) > 0.3
  lam = 0.5

  @jax.jit
  def run(f, c):
    return difl.emotion_loss(jnp.asarray(z), f, jnp.asarray(y), c,
                             jnp.asarray(m), softmax_weight=lam,
                             center_scale=difl.CENTER_LOSS_FORMS[form])
  loss_e, ce, center = run(jnp.asarray(f), jnp.asarray(c))
  want_ce = _np_ce(z, y, m)
  # Eq. 4: 1/M sum ||f_i - c_{y_i}||^2 ('wen': half of it).
  want_center = scale / 2 * np.mean([np.sum((f[i] - c[y[i]]) ** 2)
                                     for i in range(n) if m[i]])
  np.testing.assert_allclose(ce, want_ce, rtol=RTOL)
  np.testing.assert_allclose(center, want_center, rtol=RTOL)
  np.testing.assert_allclose(loss_e, lam * want_ce + (1 - lam) * want_center,
                             rtol=RTOL)
  # The centres get no gradient (eq. 5 moves them); features get
  # (1 - lambda) s (f_i - c_{y_i}) / M on the masked rows.
  gf, gc = jax.jit(jax.grad(lambda f, c: run(f, c)[2] * (1 - lam),
                            argnums=(0, 1)))(jnp.asarray(f), jnp.asarray(c))
  assert np.all(np.asarray(gc) == 0.0)
  want = (1 - lam) * scale * (f - c[y]) / m.sum() * m[:, None]
  np.testing.assert_allclose(gf, want, rtol=RTOL, atol=ATOL)


def test_domain_loss_masks_unknown_labels():
  rng = np.random.default_rng(2)
  n = 12
  logits = {'corpus': rng.standard_normal((n, 3)).astype(np.float32),
            'language': rng.standard_normal((n, 2)).astype(np.float32),
            'gender': rng.standard_normal((n, 2)).astype(np.float32)}
  labels = {'corpus': rng.integers(0, 3, n),
            # -1: unknown; 2: past the head's 2 classes: both left out.
            'language': np.r_[np.zeros(4), -np.ones(4), np.full(4, 2)],
            'gender': -np.ones(n)}
  labels = {k: v.astype(np.int32) for k, v in labels.items()}
  mask = np.arange(n) % 5 != 0
  total, per_head, acc = jax.jit(difl.domain_loss)(
      {k: jnp.asarray(v) for k, v in logits.items()},
      {k: jnp.asarray(v) for k, v in labels.items()}, jnp.asarray(mask))
  want = {}
  for k in logits:
    known = mask & (labels[k] >= 0) & (labels[k] < logits[k].shape[1])
    want[k] = _np_ce(logits[k], labels[k], known)
    np.testing.assert_allclose(per_head[k], want[k], rtol=RTOL, atol=1e-7)
    hits = logits[k].argmax(-1) == labels[k]
    np.testing.assert_allclose(
        acc[k], hits[known].mean() if known.any() else 0.0, rtol=1e-6)
  assert per_head['gender'] == 0.0  # No known gender: the head adds nothing.
  np.testing.assert_allclose(total, sum(want.values()), rtol=RTOL)
  # ... and its logits get no gradient.
  g = jax.jit(jax.grad(lambda z: difl.domain_loss(
      {'gender': z}, {'gender': jnp.asarray(labels['gender'])},
      jnp.asarray(mask))[0]))(jnp.asarray(logits['gender']))
  assert np.all(np.asarray(g) == 0.0)


################################################################################
# The DIFL loss on a random batch: one compilation for all these tests.
################################################################################


def _random_batch(seed=0):
  rng = np.random.default_rng(seed)

  def domain(with_label, d):
    b = {'features': rng.standard_normal(
        (BATCH, SEGMENTS, 32, 129)).astype(np.float32),
         'length': np.array([1, 4, 2, 3], np.int32),
         'domain': np.full(BATCH, d, np.int32),
         'gender': np.array([0, 1, -1, 1], np.int32),
         'language': np.array([0, -1, 1, 0], np.int32)}
    if with_label:
      b['label'] = rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32)
    return b
  return {'source': domain(True, 0), 'target': domain(False, 1)}


@pytest.fixture(scope='module')
def setup():
  config = _config()
  method = methods_lib.get('difl')(config, NUM_CLASSES)
  batch = _random_batch()
  variables = method.init_variables(jax.random.PRNGKey(0), batch)
  # Random centres, so that eq. 5 and the center loss are not trivial.
  state = {'centers': jax.random.normal(
      jax.random.PRNGKey(3), method.init_state()['centers'].shape)}
  # The step argument carries the GRL coefficient: one compilation serves
  # every coefficient.
  patched = methods_lib.get('difl')(config, NUM_CLASSES)
  patched.coefficient = lambda step: step

  @jax.jit
  def run(params, batch, coeff):
    (loss, aux), grads = jax.value_and_grad(patched.loss, has_aux=True)(
        params, variables['batch_stats'], state, batch,
        jax.random.PRNGKey(1), coeff)
    return loss, aux, grads

  @jax.jit
  def forward(params, batch):
    x = jnp.concatenate([batch['source']['features'],
                         batch['target']['features']])
    lengths = jnp.concatenate([batch['source']['length'],
                               batch['target']['length']])
    return method.model.apply(
        {'params': params, 'batch_stats': variables['batch_stats']}, x,
        lengths, 1.0, train=True, method=method._forward,
        mutable=['batch_stats'])[0]
  return dict(config=config, method=method, batch=batch,
              variables=variables, state=state, run=run, forward=forward)


def _norm(tree):
  return float(jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(tree))))


def _sub(a, b):
  return jax.tree.map(jnp.subtract, a, b)


def test_difl_loss_and_center_update_match_numpy(setup):
  method, batch, params = setup['method'], setup['batch'], setup[
      'variables']['params']
  loss, (_, new_state, metrics), _ = setup['run'](params, batch,
                                                  jnp.float32(0.3))
  out, heads = jax.device_get(setup['forward'](params, batch))
  s = SEGMENTS
  mask = np.asarray(out['instance_mask']).reshape(-1)
  z = np.asarray(out['instance_logits']).reshape(-1, NUM_CLASSES)
  f = np.asarray(out['instances']).reshape(z.shape[0], -1)
  n_s = BATCH * s
  y = np.repeat(batch['source']['label'], s)
  c = np.asarray(setup['state']['centers'], np.float64)

  ce = _np_ce(z[:n_s], y, mask[:n_s])
  center = np.mean([np.sum((f[i] - c[y[i]]) ** 2) for i in range(n_s)
                    if mask[i]])                                    # Eq. 4.
  loss_e = 0.5 * ce + 0.5 * center                                  # Eq. 6.
  head_loss = {}
  for name, key, k in (('corpus', 'domain', 2), ('language', 'language', 2),
                       ('gender', 'gender', 2)):
    g = np.repeat(np.r_[batch['source'][key], batch['target'][key]], s)
    known = mask & (g >= 0) & (g < k)
    head_loss[name] = _np_ce(heads[name], g, known)
    np.testing.assert_allclose(metrics[f'loss_{name}'], head_loss[name],
                               rtol=RTOL)
  np.testing.assert_allclose(metrics['loss_emotion'], ce, rtol=RTOL)
  np.testing.assert_allclose(metrics['loss_center'], center, rtol=RTOL)
  np.testing.assert_allclose(loss, loss_e + sum(head_loss.values()),
                             rtol=RTOL)                             # Eq. 1-2.

  # Eq. 5 with alpha = 0.5: c_j -= alpha sum_{y_i = j} (c_j - f_i) / (1 + m_j)
  # over the valid source segments.
  want = c.copy()
  for j in range(NUM_CLASSES):
    rows = [i for i in range(n_s) if mask[i] and y[i] == j]
    delta = sum((c[j] - f[i] for i in rows), np.zeros(c.shape[1]))
    want[j] = c[j] - 0.5 * delta / (1 + len(rows))
  np.testing.assert_allclose(new_state['centers'], want, rtol=RTOL,
                             atol=ATOL)


def test_three_heads_get_the_gradient_reversed_and_scaled_by_gamma(setup):
  config, params = setup['config'], setup['variables']['params']
  assert config.difl.gamma == 0.3
  default = methods_lib.get('difl')(config, NUM_CLASSES)
  for step in (0, 1000):
    np.testing.assert_allclose(default.coefficient(step), 0.3, rtol=1e-7)

  grads = {coeff: setup['run'](params, setup['batch'], jnp.float32(coeff))[2]
           for coeff in (0.0, 0.3, -1.0)}
  g0, g_gamma, g_plain = grads[0.0], grads[0.3], grads[-1.0]
  # The encoder: the domain part of its gradient is -gamma times the plain
  # gradient of L_D (coefficient -1 undoes the reversal).
  enc = lambda g: g['emotion_net']['encoder']
  domain_plain = _sub(enc(g_plain), enc(g0))
  assert _norm(domain_plain) > 1e-6
  domain_gamma = _sub(enc(g_gamma), enc(g0))
  err = _sub(domain_gamma, jax.tree.map(lambda x: -0.3 * x, domain_plain))
  assert _norm(err) < 1e-3 * _norm(domain_plain)
  # Each of the three heads minimises its loss with the plain gradient,
  # whatever the coefficient; the emotion classifier never sees L_D.
  for part in ('heads_corpus', 'heads_language', 'heads_gender',
               'emotion_net'):
    sub = ((lambda g: g['emotion_net']['emotion_head']) if part ==
           'emotion_net' else (lambda g, p=part: g[p]))
    assert _norm(sub(g0)) > 0
    for g in (g_gamma, g_plain):
      assert _norm(_sub(sub(g), sub(g0))) < 1e-5 * _norm(sub(g0))


def test_unknown_gender_and_language_carry_no_gradient(setup):
  params, batch = setup['variables']['params'], setup['batch']
  unknown = jax.tree.map(np.copy, batch)
  for half in unknown.values():
    half['gender'][:] = -1
    half['language'][:] = -1
  loss, (_, _, metrics), grads = setup['run'](params, unknown,
                                              jnp.float32(0.3))
  assert np.isfinite(loss)
  for name in ('gender', 'language'):
    assert metrics[f'loss_{name}'] == 0.0
    assert _norm(grads[f'heads_{name}']) == 0.0
  assert metrics['loss_corpus'] > 0


def test_source_only_on_the_cnn_blstm(cache_dir):
  config = _tiny(tiny_config('difl_source_only', cache_dir))
  assert config.method == 'source_only'
  method = methods_lib.get('source_only')(config, NUM_CLASSES)
  batch = _random_batch(1)
  variables = method.init_variables(jax.random.PRNGKey(0), batch)

  @jax.jit
  def run(variables):
    loss, (_, _, metrics) = method.loss(
        variables['params'], variables['batch_stats'], {}, batch,
        jax.random.PRNGKey(0), 0)
    out, _ = method.model.apply(variables, batch['source']['features'],
                                batch['source']['length'], train=True,
                                mutable=['batch_stats'])
    return loss, metrics, out, method.logits(
        variables, batch['source']['features'], batch['source']['length'])
  loss, metrics, out, logits = jax.device_get(run(variables))
  z = out['instance_logits'].reshape(-1, NUM_CLASSES)
  y = np.repeat(batch['source']['label'], SEGMENTS)
  np.testing.assert_allclose(
      loss, _np_ce(z, y, out['instance_mask'].reshape(-1)), rtol=RTOL)
  assert logits.shape == (BATCH, NUM_CLASSES)
  np.testing.assert_allclose(np.exp(logits).sum(-1), 1.0, rtol=1e-5)


def test_bad_config_names_the_field():
  for field, value in (('heads', 'corpus,accent'), ('schedule', 'linear'),
                       ('center_loss_form', 'half'),
                       ('softmax_weight', 1.5)):
    config = _config()
    config.difl[field] = value
    with pytest.raises(ValueError, match=f'config.difl.{field}'):
      methods_lib.get('difl')(config, NUM_CLASSES)
  config = _config()
  config.data.features = 'mfcc40'
  with pytest.raises(ValueError, match='config.data.features'):
    methods_lib.get('difl')(config, NUM_CLASSES)
  config = _config('difl_source_only')
  config.model.name = 'transformer'
  with pytest.raises(ValueError, match='config.model.name'):
    methods_lib.get('source_only')(config, NUM_CLASSES)
  config = _config()
  config.model.cnn_blstm.embed_activation = 'gelu'
  with pytest.raises(ValueError,
                     match='config.model.cnn_blstm.embed_activation'):
    methods_lib.get('difl')(config, NUM_CLASSES)


################################################################################
# Data: metadata keys and the multi_corpus protocol.
################################################################################


def test_multi_corpus_protocol_and_metadata(cache_dir):
  config = _config('difl', cache_dir)
  config.data.protocol = 'multi_corpus'
  data = pipeline.load_data(config.data)
  assert data.languages == ('xx',)
  assert pipeline.corpus_names(config.data) == ['tiny_src', 'tiny_tgt']
  assert [p.domain for p in data.source_train.parts] == [0, 1]
  assert [p.domain for p in data.target_eval.parts] == [0, 1]
  for train_part, hidden, test_part in zip(data.source_train.parts,
                                           data.target_train.parts,
                                           data.target_eval.parts):
    utts = train_part.cached.corpus.utterances
    assert (train_part.labels >= 0).all() and (hidden.labels == -1).all()
    np.testing.assert_array_equal(train_part.indices, hidden.indices)
    train_spk = {utts[i].speaker for i in train_part.indices}
    test_spk = {utts[i].speaker for i in test_part.indices}
    assert train_spk and test_spk and not train_spk & test_spk
    assert len(train_part.indices) + len(test_part.indices) == 48
  eval_set = data.target_eval.load()
  np.testing.assert_array_equal(np.unique(eval_set['domain']), [0, 1])
  # Gender (speaker a is f, the others m) and language, target included.
  batch = next(pipeline.train_batches(
      data, 8, 0, 0, NamedSharding(Mesh(np.array(jax.devices()[:1]),
                                        ('data',)), P('data'))))
  for half in ('source', 'target'):
    assert set(np.asarray(batch[half]['gender']).tolist()) <= {0, 1}
    np.testing.assert_array_equal(batch[half]['language'], 0)
  assert 'label' not in batch['target']

  # The other protocols are unchanged: one target part, its own split.
  config.data.protocol = 'split'
  split = pipeline.load_data(config.data)
  assert len(split.target_eval.parts) == 1
  assert [p.domain for p in split.source_train.parts] == [0]
  np.testing.assert_array_equal(split.target_eval.parts[0].indices,
                                data.target_eval.parts[1].indices)


def test_difl_trains_end_to_end_multi_corpus(tmp_path, cache_dir):
  config = _config('difl', cache_dir)
  config.train.steps = 2
  config.data.protocol = 'multi_corpus'
  result = train.train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / 'results.json') as f:
    saved = json.load(f)
  for key in ('uar', 'war', 'macro_f1', 'per_class_recall', 'confusion',
              'classes', 'num_eval', 'protocol', 'method', 'per_corpus'):
    assert key in saved
  assert saved['method'] == 'difl' and saved['protocol'] == 'multi_corpus'
  assert set(saved['per_corpus']) == {'tiny_src', 'tiny_tgt'}
  assert sum(r['num_eval'] for r in saved['per_corpus'].values()) == (
      saved['num_eval'])
  for r in saved['per_corpus'].values():
    assert 0.0 <= r['uar'] <= 1.0 and set(r) == {'uar', 'war', 'macro_f1',
                                                   'num_eval'}
  assert result['num_eval'] == saved['num_eval']
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  last = [r for r in rows if 'train/loss' in r][-1]
  for k in ('loss_center', 'loss_corpus', 'loss_language', 'loss_gender',
            'grl_coeff'):
    assert np.isfinite(last[f'train/{k}'])


def test_sharded_step_matches_single_device(cache_dir):
  config = _config('difl', cache_dir)
  data = pipeline.load_data(config.data)
  method = methods_lib.get('difl')(config, len(data.classes))
  tx = train.make_optimizer(config.train)
  mesh1 = Mesh(np.array(jax.devices()[:1]), ('data',))
  host_batch = jax.tree.map(np.asarray, next(pipeline.train_batches(
      data, 8, config.seed, 0, NamedSharding(mesh1, P('data')))))
  outs = []
  for mesh in (train.make_mesh(), mesh1):
    state = jax.jit(lambda: train.create_train_state(
        method, tx, config.seed, train.example_batch(data, 8)))()
    step = train.jit_train_step(method, tx, mesh)
    batch = jax.device_put(host_batch, NamedSharding(mesh, P('data')))
    for _ in range(2):
      state, metrics = step(state, batch)
    outs.append(jax.device_get((state, metrics)))
  (s8, m8), (s1, m1) = outs
  assert jax.device_count() == 8
  for a, b in zip(jax.tree.leaves(s8), jax.tree.leaves(s1)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  for k in m1:
    np.testing.assert_allclose(m8[k], m1[k], rtol=2e-4, atol=2e-5)
  # The centres moved (eq. 5 ran) and are part of the checkpointed state.
  assert np.abs(s1.method_state['centers']).sum() > 0
