"""The adaptation methods DANN, CDAN(+E), BSP, DAN and JAN.

Each method's full loss is compiled once (one `jax.jit` per method, on a tiny
batch) and checked for finite values and for where its gradients go; the
pieces (schedules, domain loss, CDAN maps and weights, discrepancies) are
checked against NumPy formulas.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from jaxser import grid
from jaxser import losses
from jaxser import methods as methods_lib
from jaxser import train
from jaxser.methods import cdan
from jaxser.methods import dann

NUM_CLASSES = 4
BATCH = 8  # Per domain.
FRAMES = 48
DIMS = 40


def _config(method: str):
  return grid.load_config(method, grid.default_configs_dir())


def _batch(seed=0):
  rng = np.random.default_rng(seed)

  def domain(with_label, shift):
    b = {'features': (rng.standard_normal((BATCH, FRAMES, DIMS)) + shift
                      ).astype(np.float32),
         'length': rng.integers(FRAMES // 2, FRAMES + 1,
                                BATCH).astype(np.int32),
         'domain': np.zeros(BATCH, np.int32)}
    if with_label:
      b['label'] = rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32)
    return b
  return {'source': domain(True, 0.0), 'target': domain(False, 0.5)}


def _setup(name, **hparams):
  config = _config(name)
  for k, v in hparams.items():
    config[name][k] = v
  method = methods_lib.get(name)(config, NUM_CLASSES)
  batch = _batch()
  variables = method.init_variables(jax.random.PRNGKey(0), batch)
  return method, variables, batch


def _loss_and_grads(method, variables, batch, step):
  """(loss, metrics, grads) of method.loss under one jit."""
  @jax.jit
  def run(params, batch_stats, step):
    (loss, (_, _, metrics)), grads = jax.value_and_grad(
        method.loss, has_aux=True)(params, batch_stats, method.init_state(),
                                   batch, jax.random.PRNGKey(1), step)
    return loss, metrics, grads
  return run(variables['params'], variables['batch_stats'], jnp.asarray(step))


def _norm(tree):
  return float(jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(tree))))


def _finite(tree):
  return all(np.all(np.isfinite(np.asarray(t))) for t in jax.tree.leaves(tree))


################################################################################
# GRL schedules and the domain loss.
################################################################################


def test_grl_schedules_match_formulas():
  def ws(i, lo, hi, alpha, n):
    return 2 * (hi - lo) / (1 + math.exp(-alpha * i / n)) - (hi - lo) + lo

  for i in (0, 10, 500, 1000, 5000):
    got = dann.grl_coefficient(i, 2000, schedule='warm_start')
    np.testing.assert_allclose(got, ws(i, 0.0, 1.0, 1.0, 1000), rtol=1e-6,
                               atol=1e-7)
    got = dann.grl_coefficient(i, 2000, schedule='warm_start', lo=0.1, hi=0.7,
                               alpha=10.0, max_iters=10000.0)
    np.testing.assert_allclose(got, ws(i, 0.1, 0.7, 10.0, 10000), rtol=1e-6)
    got = dann.grl_coefficient(i, 2000, schedule='dann_paper')
    np.testing.assert_allclose(got, 2 / (1 + math.exp(-10 * i / 2000)) - 1,
                               rtol=1e-6, atol=1e-7)
    got = dann.grl_coefficient(i, 2000, schedule='constant', hi=0.3)
    np.testing.assert_allclose(got, 0.3, rtol=1e-7)
  # Landmarks: warm_start starts at lo and reaches tanh(1/2) at i = N;
  # dann_paper reaches tanh(5/2) half-way.
  assert float(dann.grl_coefficient(0, 10, schedule='warm_start',
                                    lo=0.2)) == pytest.approx(0.2)
  assert float(dann.grl_coefficient(1000, 10, schedule='warm_start')
               ) == pytest.approx(0.46211716, abs=1e-6)
  assert float(dann.grl_coefficient(1000, 2000, schedule='dann_paper')
               ) == pytest.approx(0.98661430, abs=1e-6)
  with pytest.raises(ValueError, match='unknown GRL schedule'):
    dann.grl_coefficient(0, 10, schedule='linear')


def test_bad_hyper_parameters_name_the_field():
  for name, field, value in (('dann', 'schedule', 'linear'),
                             ('bsp', 'schedule', 'linear'),
                             ('cdan', 'randomized', 'sometimes'),
                             ('cdan_e', 'entropy_gradient', 'both'),
                             ('dan', 'estimator', 'median'),
                             ('jan', 'kernel', 'laplace')):
    config = _config(name)
    config[name][field] = value
    with pytest.raises(ValueError, match=f'config.{name}.{field}'):
      methods_lib.get(name)(config, NUM_CLASSES)


def test_create_builds_every_method_with_class_counts():
  counts = (5, 6, 7, 8)
  for name in methods_lib.names():
    config = _config(name)
    if methods_lib.get(name).own_data:
      # A TTS model: no emotion classes; its default variant asks for a
      # jaxser.label output folder.
      config.tts.labels = '/labels'
      assert type(methods_lib.create(config, 0)) is methods_lib.get(name)
      continue
    method = methods_lib.create(config, NUM_CLASSES, counts)
    assert type(method) is methods_lib.get(name)
    assert method.class_counts == counts
    assert methods_lib.create(config, NUM_CLASSES).class_counts is None
  with pytest.raises(ValueError, match='class_counts: 3 counts for 4'):
    methods_lib.create(_config('source_only'), NUM_CLASSES, (1, 2, 3))


################################################################################
# DANN.
################################################################################


def test_dann_reverses_the_domain_gradient_into_the_encoder_only(monkeypatch):
  method, variables, batch = _setup('dann', trade_off=0.7)
  # The step argument carries the coefficient, so one compilation serves
  # all coefficients: 0 (no domain gradient into the encoder), 0.5, and -1
  # (the reversal undone: the plain gradient of the domain loss).
  monkeypatch.setattr(method, 'coefficient', lambda step: step)

  @jax.jit
  def run(params, coeffs):
    def one(coeff):
      (loss, (_, _, metrics)), grads = jax.value_and_grad(
          method.loss, has_aux=True)(params, variables['batch_stats'], {},
                                     batch, jax.random.PRNGKey(1), coeff)
      return loss, metrics, grads
    return jax.vmap(one)(coeffs)

  coeffs = jnp.array([0.0, 0.5, -1.0])
  loss, metrics, grads = run(variables['params'], coeffs)
  assert _finite((loss, metrics, grads))
  np.testing.assert_allclose(metrics['grl_coeff'], coeffs)
  for k in ('loss_emotion', 'loss_domain', 'domain_acc', 'source_acc'):
    assert k in metrics
  np.testing.assert_allclose(
      loss, metrics['loss_emotion'] + 0.7 * metrics['loss_domain'], rtol=1e-6)
  at = lambda tree, i: jax.tree.map(lambda x: x[i], tree)
  g0, g_half, g_plain = at(grads, 0), at(grads, 1), at(grads, 2)

  # Encoder (backbone + TCN): the domain part of the gradient is -coeff times
  # the plain one.
  for part in ('Backbone_0', 'emotion_encoder'):
    base = g0['emotion_net'][part]
    domain_plain = jax.tree.map(jnp.subtract, g_plain['emotion_net'][part],
                                base)
    domain_half = jax.tree.map(jnp.subtract, g_half['emotion_net'][part], base)
    assert _norm(domain_plain) > 1e-4
    want = jax.tree.map(lambda x: -0.5 * x, domain_plain)
    assert _norm(jax.tree.map(jnp.subtract, domain_half, want)) < (
        1e-3 * _norm(domain_plain))
  # The emotion classifier never sees the domain loss; the discriminator gets
  # the same (unreversed) gradient whatever the coefficient.
  for part in (('emotion_net', 'emotion_head'), ('discriminator',)):
    sub = lambda g: g[part[0]][part[1]] if len(part) == 2 else g[part[0]]
    assert _norm(sub(g0)) > 0
    for g in (g_half, g_plain):
      assert _norm(jax.tree.map(jnp.subtract, sub(g), sub(g0))) < (
          1e-5 * _norm(sub(g0)))

  # ... and a step against it lowers the domain loss: the discriminator
  # minimises L_d.
  g_disc = g0['discriminator']
  scale = 1e-2 / _norm(g_disc)
  stepped = dict(variables['params'], discriminator=jax.tree.map(
      lambda p, g: p - scale * g, variables['params']['discriminator'],
      g_disc))
  _, metrics_after, _ = run(stepped, coeffs)
  assert float(metrics_after['loss_domain'][0]) < float(
      metrics['loss_domain'][0])


def test_dann_trains_end_to_end(tmp_path, cache_dir):
  config = tiny_config('dann', cache_dir, steps=2)
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result['method'] == 'dann' and result['steps'] == 2
  assert 0.0 <= result['war'] <= 1.0
  rows = [l for l in open(tmp_path / 'metrics.jsonl') if 'train/loss' in l]
  assert rows and 'train/grl_coeff' in rows[-1]


################################################################################
# CDAN and CDAN+E.
################################################################################


def test_multilinear_maps_match_numpy():
  rng = np.random.default_rng(0)
  f = rng.standard_normal((6, 5)).astype(np.float32)
  g = rng.dirichlet(np.ones(3), 6).astype(np.float32)
  full = cdan.multilinear_map(jnp.asarray(f), jnp.asarray(g))
  assert full.shape == (6, 15)
  np.testing.assert_allclose(full, np.einsum('bc,bd->bcd', g, f).reshape(6, -1),
                             rtol=1e-6)

  r_f, r_g = cdan.random_matrices(3, 5, 3, 16)
  assert r_f.shape == (5, 16) and r_g.shape == (3, 16)
  rand = cdan.randomized_multilinear_map(jnp.asarray(f), jnp.asarray(g),
                                         r_f, r_g)
  assert rand.shape == (6, 16)
  np.testing.assert_allclose(
      rand, (f @ np.asarray(r_f)) * (g @ np.asarray(r_g)) / 4.0, rtol=1e-4,
      atol=1e-5)


def test_random_matrices_are_a_function_of_the_seed():
  a = cdan.random_matrices(0, 128, 4, 1024)
  b = cdan.random_matrices(0, 128, 4, 1024)
  c = cdan.random_matrices(1, 128, 4, 1024)
  for x, y, z in zip(a, b, c):
    np.testing.assert_array_equal(x, y)
    assert not np.allclose(x, z)
  np.testing.assert_allclose(np.std(np.asarray(a[0])), 1.0, atol=0.02)


def test_cdan_map_choice_and_deterministic_random_map():
  config = _config('cdan')
  method = methods_lib.get('cdan')(config, NUM_CLASSES)
  assert not method.use_random_map(128)   # 128 * 4 <= 4096.
  config.cdan.max_multilinear_dim = 256
  assert method.use_random_map(128)
  config.cdan.randomized = 'never'
  assert not method.use_random_map(128)

  config.cdan.randomized = 'always'
  config.cdan.random_dim = 32
  rng = np.random.default_rng(0)
  e = jnp.asarray(rng.standard_normal((8, 16)), jnp.float32)
  logits = jnp.asarray(rng.standard_normal((8, NUM_CLASSES)), jnp.float32)
  step_fn = jax.jit(method.domain_input)
  first, again = step_fn(e, logits), step_fn(e, logits)
  # A fresh method (a resumed run) draws the same matrices.
  resumed = jax.jit(methods_lib.get('cdan')(config, NUM_CLASSES).domain_input)
  assert first.shape == (8, 32)
  np.testing.assert_array_equal(first, again)
  np.testing.assert_array_equal(first, resumed(e, logits))
  r_f, r_g = cdan.random_matrices(config.seed, 16, NUM_CLASSES, 32)
  np.testing.assert_allclose(first, cdan.randomized_multilinear_map(
      e, jax.nn.softmax(logits), r_f, r_g), rtol=1e-5, atol=1e-6)
  # The prediction conditions the discriminator as a constant.
  grad = jax.grad(lambda l: jnp.sum(method.domain_input(e, l) ** 2))(logits)
  np.testing.assert_array_equal(grad, 0.0)


def test_cdan_loss_and_gradients():
  method, variables, batch = _setup('cdan')
  loss, metrics, grads = _loss_and_grads(method, variables, batch, 100)
  assert _finite((loss, metrics, grads))
  # The discriminator's first layer sees the full d * C = 512 map.
  assert variables['params']['discriminator']['Dense_0']['kernel'].shape == (
      128 * NUM_CLASSES, 1024)
  assert _norm(grads['discriminator']) > 0
  assert _norm(grads['emotion_net']['emotion_encoder']) > 0
  np.testing.assert_allclose(
      loss, metrics['loss_emotion'] + metrics['loss_domain'], rtol=1e-6)


def test_cdan_e_weights_and_their_gradient():
  rng = np.random.default_rng(0)
  logits = rng.standard_normal((8, NUM_CLASSES)).astype(np.float32) * 3
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  want = 1 + np.exp(np.sum(p * np.log(p), axis=1))

  config = _config('cdan_e')
  method = methods_lib.get('cdan_e')(config, NUM_CLASSES)
  np.testing.assert_allclose(method.domain_weights(jnp.asarray(logits), 0.4),
                             want, rtol=1e-5)
  assert methods_lib.get('cdan')(_config('cdan'), NUM_CLASSES).domain_weights(
      jnp.asarray(logits), 0.4) is None

  def weight_grad(m):
    return jax.grad(lambda l: jnp.sum(m.domain_weights(l, 0.4)))(
        jnp.asarray(logits))
  plain = jax.grad(lambda l: jnp.sum(losses.entropy_weights(
      jax.nn.softmax(l))))(jnp.asarray(logits))
  # 'reverse': the reference's GRL on the entropy; 'stop': no gradient.
  np.testing.assert_allclose(weight_grad(method), -0.4 * plain, rtol=1e-5,
                             atol=1e-7)
  config.cdan_e.entropy_gradient = 'stop'
  np.testing.assert_array_equal(
      weight_grad(methods_lib.get('cdan_e')(config, NUM_CLASSES)), 0.0)


def test_cdan_e_loss_and_gradients():
  method, variables, batch = _setup('cdan_e', randomized='always',
                                    random_dim=64)
  loss, metrics, grads = _loss_and_grads(method, variables, batch, 100)
  assert _finite((loss, metrics, grads))
  assert variables['params']['discriminator']['Dense_0']['kernel'].shape == (
      64, 1024)
  assert _norm(grads['discriminator']) > 0
  assert _norm(grads['emotion_net']['emotion_encoder']) > 0
  np.testing.assert_allclose(
      loss, metrics['loss_emotion'] + metrics['loss_domain'], rtol=1e-6)


################################################################################
# BSP.
################################################################################


def test_bsp_penalty_matches_numpy_and_adds_to_dann():
  method, variables, batch = _setup('bsp')
  rng = np.random.default_rng(0)
  e_s, e_t = (rng.standard_normal((8, 128)).astype(np.float32)
              for _ in range(2))
  penalty, metrics = method.penalty(jnp.asarray(e_s), jnp.asarray(e_t))
  sigma = (np.linalg.svd(e_s.astype(np.float64), compute_uv=False)[0]**2 +
           np.linalg.svd(e_t.astype(np.float64), compute_uv=False)[0]**2)
  np.testing.assert_allclose(metrics['loss_bsp'], sigma, rtol=1e-4)
  np.testing.assert_allclose(penalty, 1e-4 * sigma, rtol=1e-4)

  loss, metrics, grads = _loss_and_grads(method, variables, batch, 100)
  assert _finite((loss, metrics, grads))
  np.testing.assert_allclose(
      loss, metrics['loss_emotion'] + metrics['loss_domain'] +
      1e-4 * metrics['loss_bsp'], rtol=1e-6)
  assert metrics['loss_bsp'] > 0
  assert _norm(grads['discriminator']) > 0


################################################################################
# DAN and JAN.
################################################################################


def test_dan_and_jan_wire_the_config_into_the_losses():
  rng = np.random.default_rng(0)
  e = jnp.asarray(rng.standard_normal((16, 12)), jnp.float32)
  logits = jnp.asarray(rng.standard_normal((16, NUM_CLASSES)), jnp.float32)
  for kernel, spec in (
      ('mean_scaled', losses.MeanScaledKernels((0.5, 1.0))),
      ('mul_family', losses.MulFamilyKernels(3.0, 2))):
    for estimator in ('unbiased', 'biased', 'linear'):
      hparams = dict(kernel=kernel, estimator=estimator, scales=(0.5, 1.0),
                     kernel_mul=3.0, kernel_num=2)
      dan_cfg, jan_cfg = _config('dan'), _config('jan')
      dan_cfg.dan.update(hparams)
      jan_cfg.jan.update(hparams)
      dan_m = methods_lib.get('dan')(dan_cfg, NUM_CLASSES)
      jan_m = methods_lib.get('jan')(jan_cfg, NUM_CLASSES)
      assert dan_m.feature_kernel() == spec
      np.testing.assert_allclose(
          dan_m.discrepancy(logits, e, 8),
          losses.mk_mmd(e[:8], e[8:], estimator=estimator, kernel=spec),
          rtol=1e-6)
      g = jax.nn.softmax(logits)
      np.testing.assert_allclose(
          jan_m.discrepancy(logits, e, 8),
          losses.jmmd([e[:8], g[:8]], [e[8:], g[8:]],
                      kernels=[spec, losses.FixedGaussian(0.92)],
                      estimator=estimator), rtol=1e-6)
  # JAN aligns the predictions too (with gradient); DAN only E.
  grad = lambda m: jax.grad(lambda l: m.discrepancy(l, e, 8))(logits)
  assert _norm(grad(jan_m)) > 0
  np.testing.assert_array_equal(grad(dan_m), 0.0)


@pytest.mark.parametrize('name,metric', [('dan', 'loss_mmd'),
                                         ('jan', 'loss_jmmd')])
def test_dan_jan_loss_and_gradients(name, metric):
  method, variables, batch = _setup(name, trade_off=2.0)
  loss, metrics, grads = _loss_and_grads(method, variables, batch, 0)
  assert _finite((loss, metrics, grads))
  np.testing.assert_allclose(
      loss, metrics['loss_emotion'] + 2.0 * metrics[metric], rtol=1e-5,
      atol=1e-6)
  for part in ('Backbone_0', 'emotion_encoder', 'emotion_head'):
    assert _norm(grads[part]) > 0
