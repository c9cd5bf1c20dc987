"""Tests of jaxser.losses against loop-by-loop float64 NumPy references.

The JAX side always runs under `jax.jit` (one compilation per test instead of
one per primitive and shape in eager mode), which keeps the file fast on CPU.
"""

import importlib
import math
import pkgutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser import losses

RTOL = 1e-5
ATOL = 1e-6


def _rng(seed=0):
  return np.random.default_rng(seed)


def _f32(*arrays):
  """float32 NumPy copies (one array, or a list for several)."""
  out = [np.asarray(a, np.float32) for a in arrays]
  return out[0] if len(out) == 1 else out


def _finite(tree):
  return all(np.all(np.isfinite(np.asarray(t))) for t in jax.tree.leaves(tree))


################################################################################
# NumPy references (float64, explicit loops).
################################################################################


def np_log_softmax_row(row):
  mx = max(row)
  return [v - mx - math.log(sum(math.exp(u - mx) for u in row)) for v in row]


def np_sq_dist(u, v):
  return float(sum((a - b)**2 for a, b in zip(u, v)))


def np_joint_dists(x, y):
  z = np.concatenate([x, y]).astype(np.float64)
  n = len(z)
  d = np.zeros((n, n))
  for i in range(n):
    for j in range(n):
      d[i, j] = np_sq_dist(z[i], z[j])
  return d


def np_kernel_mean_scaled(d, scales):
  n = d.shape[0]
  m_bar = sum(d[i, j] for i in range(n) for j in range(n)) / n**2
  k = np.zeros_like(d)
  for i in range(n):
    for j in range(n):
      k[i, j] = np.mean([math.exp(-d[i, j] / (2 * a * m_bar)) for a in scales])
  return k


def np_kernel_mul_family(d, kernel_mul, kernel_num, fix_sigma=None):
  n = d.shape[0]
  if fix_sigma is None:
    bw = sum(d[i, j] for i in range(n) for j in range(n) if i != j) / (
        n * n - n)
  else:
    bw = fix_sigma
  bw /= kernel_mul**(kernel_num // 2)
  k = np.zeros_like(d)
  for i in range(n):
    for j in range(n):
      k[i, j] = sum(math.exp(-d[i, j] / (bw * kernel_mul**q))
                    for q in range(kernel_num))
  return k


def np_kernel_fixed(d, sigma):
  return np.exp(-d / (2 * sigma**2))


def np_mmd(k, n, estimator):
  m = k.shape[0] - n
  xs, ys = range(n), range(n, n + m)
  if estimator == 'unbiased':
    sxx = sum(k[i, j] for i in xs for j in xs if i != j) / (n * (n - 1))
    syy = sum(k[i, j] for i in ys for j in ys if i != j) / (m * (m - 1))
    sxy = sum(k[i, j] for i in xs for j in ys) / (n * m)
    return sxx + syy - 2 * sxy
  if estimator == 'biased':
    sxx = sum(k[i, j] for i in xs for j in xs) / n**2
    syy = sum(k[i, j] for i in ys for j in ys) / m**2
    sxy = sum(k[i, j] for i in xs for j in ys) / (n * m)
    return sxx + syy - 2 * sxy
  if estimator == 'linear':
    hs = []
    for q in range(n // 2):
      x1, x2, y1, y2 = 2 * q, 2 * q + 1, n + 2 * q, n + 2 * q + 1
      hs.append(k[x1, x2] + k[y1, y2] - k[x1, y2] - k[x2, y1])
    return float(np.mean(hs))
  raise ValueError(estimator)


################################################################################
# cross_entropy.
################################################################################

_ce = jax.jit(losses.cross_entropy)


def np_cross_entropy(logits, labels, mask=None, weights=None):
  num, den = 0.0, 0.0
  for i in range(len(labels)):
    w = 1.0 if weights is None else weights[labels[i]]
    if mask is not None:
      w *= mask[i]
    ce = -np_log_softmax_row(list(logits[i]))[labels[i]]
    num += w * ce
    den += w
  return num / den if den else 0.0


def _ce_inputs(seed=0, b=9, c=4):
  r = _rng(seed)
  return (r.normal(size=(b, c)) * 3, r.integers(0, c, size=b),
          (r.random(b) > 0.4).astype(np.float64), r.random(c) + 0.2)


def test_cross_entropy_plain_mask_weights():
  logits, labels, mask, weights = _ce_inputs()
  for kw in [{}, {'mask': mask}, {'weights': weights},
             {'mask': mask, 'weights': weights}]:
    got = _ce(_f32(logits), labels, **{k: _f32(v) for k, v in kw.items()})
    np.testing.assert_allclose(got, np_cross_entropy(logits, labels, **kw),
                               rtol=RTOL, atol=ATOL, err_msg=str(list(kw)))


def test_cross_entropy_weights_are_weighted_mean_not_mean_of_weighted():
  logits, labels, _, weights = _ce_inputs(1)
  got = float(_ce(_f32(logits), labels, weights=_f32(weights)))
  ce = np.array([-np_log_softmax_row(list(l))[y]
                 for l, y in zip(logits, labels)])
  w = weights[labels]
  assert abs(got - np.mean(w * ce)) > 1e-3
  np.testing.assert_allclose(got, np.sum(w * ce) / np.sum(w), rtol=RTOL)


def test_cross_entropy_all_masked_is_zero_with_finite_grad():
  logits, labels, _, weights = _ce_inputs()
  mask = np.zeros(len(labels), np.float32)
  f = lambda l: losses.cross_entropy(l, labels, mask, _f32(weights))
  value, grad = jax.jit(jax.value_and_grad(f))(_f32(logits))
  assert float(value) == 0.0
  assert _finite(grad)


def test_cross_entropy_padding_label_ignored():
  logits, labels, mask, _ = _ce_inputs()
  labels = labels.copy()
  labels[mask == 0] = -1
  got = _ce(_f32(logits), labels, _f32(mask))
  labels[mask == 0] = 0
  np.testing.assert_allclose(got, np_cross_entropy(logits, labels, mask),
                             rtol=RTOL)


################################################################################
# MMD.
################################################################################

SCALES = (1 / 8, 1 / 4, 1 / 2, 1., 2.)
KERNELS = ('mean_scaled', 'mul_family')


def test_pairwise_sq_dists():
  r = _rng(2)
  a, b = r.normal(size=(5, 3)) + 4.0, r.normal(size=(7, 3))
  got, got_self, got_aa = jax.jit(lambda u, v: (
      losses.pairwise_sq_dists(u, v), losses.pairwise_sq_dists(u),
      losses.pairwise_sq_dists(u, u)))(*_f32(a, b))
  want = np.array([[np_sq_dist(u, v) for v in b] for u in a])
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-5)
  want_self = np.array([[np_sq_dist(u, v) for v in a] for u in a])
  np.testing.assert_allclose(got_self, want_self, rtol=RTOL, atol=1e-5)
  assert np.all(np.diag(got_self) == 0.0)
  assert np.min(got_aa) >= 0.0


@jax.jit
def _all_mmds(x, y):
  """{(kernel, estimator): mk_mmd} for every kernel and usable estimator."""
  ests = ['unbiased', 'biased'] + (['linear'] if x.shape == y.shape else [])
  return {(k, e): losses.mk_mmd(x, y, estimator=e, kernel=k)
          for k in KERNELS for e in ests}


@pytest.mark.parametrize('n,m', [(6, 9), (8, 8), (7, 7)])
def test_mk_mmd_matches_numpy(n, m):
  r = _rng(3)
  x = r.normal(size=(n, 4))
  y = r.normal(size=(m, 4)) * 1.3 + 0.5
  d = np_joint_dists(x, y)
  np_kernels = {'mean_scaled': np_kernel_mean_scaled(d, SCALES),
                'mul_family': np_kernel_mul_family(d, 2.0, 5)}
  got = _all_mmds(*_f32(x, y))
  assert len(got) == (6 if n == m else 4)
  for (kernel, estimator), value in got.items():
    want = np_mmd(np_kernels[kernel], n, estimator)
    np.testing.assert_allclose(value, want, rtol=RTOL, atol=2e-6,
                               err_msg=f'{kernel} {estimator}')


def test_mk_mmd_options():
  r = _rng(4)
  x, y = r.normal(size=(6, 3)), r.normal(size=(8, 3)) + 0.3
  d = np_joint_dists(x, y)
  got = jax.jit(lambda a, b: (
      losses.mk_mmd(a, b, kernel='mul_family', kernel_mul=3.0, kernel_num=4,
                    fix_sigma=5.0, estimator='biased'),
      losses.mk_mmd(a, b, scales=(0.5, 3.0)),
      losses.mk_mmd(a, b, kernel=losses.FixedGaussian(1.5))))(*_f32(x, y))
  want = (np_mmd(np_kernel_mul_family(d, 3.0, 4, fix_sigma=5.0), 6, 'biased'),
          np_mmd(np_kernel_mean_scaled(d, (0.5, 3.0)), 6, 'unbiased'),
          np_mmd(np_kernel_fixed(d, 1.5), 6, 'unbiased'))
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_mk_mmd_detects_shift():
  r = _rng(5)
  x, y = _f32(r.normal(size=(64, 8)), r.normal(size=(64, 8)))
  shifts = (0.0, 0.5, 1.0, 2.0)

  @jax.jit
  def run(a, b):
    out = {}
    for k in KERNELS:
      # Identical samples: the biased estimate is exactly 0.
      out[k, 'self'] = losses.mk_mmd(a, a, kernel=k, estimator='biased')
      out[k, 'shifts'] = jnp.stack([losses.mk_mmd(a, b + s, kernel=k)
                                    for s in shifts])
      out[k, 'linear'] = jnp.stack([
          losses.mk_mmd(a, b + s, kernel=k, estimator='linear')
          for s in (0.0, 2.0)])
    return out

  out = jax.tree.map(np.asarray, run(x, y))
  for k in KERNELS:
    assert abs(out[k, 'self']) < 1e-6, k
    same, *values = out[k, 'shifts']
    assert abs(same) < 0.02, (k, same)
    assert values[0] > 5 * abs(same) + 0.02, (k, same, values)
    assert values[0] < values[1] < values[2], (k, values)
    lin_same, lin_shift = out[k, 'linear']
    assert lin_shift > 0.1 and lin_shift > 5 * abs(lin_same), (k, lin_shift)


def test_mmd_gradient_finite_and_pulls_together():
  r = _rng(6)
  x, y = _f32(r.normal(size=(16, 4)), r.normal(size=(16, 4)) + 1.0)

  @jax.jit
  def run(a, b):
    out = {}
    for est in ['unbiased', 'biased', 'linear']:
      f = lambda u: losses.mk_mmd(u, b, estimator=est)
      before, g = jax.value_and_grad(f)(a)
      after = f(a - 0.05 * g / jnp.linalg.norm(g))
      out[est] = (before, after, g)
    out['self'] = jax.grad(lambda u: losses.mk_mmd(u, u, estimator='biased'))(
        a)
    return out

  out = run(x, y)
  assert _finite(out)
  for est in ['unbiased', 'biased', 'linear']:
    # A small step against the gradient reduces the discrepancy.
    before, after, _ = out[est]
    assert float(after) < float(before), est


@pytest.mark.parametrize('spec', [losses.MeanScaledKernels(),
                                  losses.MulFamilyKernels()])
def test_bandwidth_has_no_gradient(spec):
  d = np_joint_dists(*_rng(7).normal(size=(2, 5, 3)))
  g = np.asarray(jax.jit(jax.grad(lambda dd: spec.gram(dd)[0, 1]))(_f32(d)))
  off = np.ones(d.shape, bool)
  off[0, 1] = False
  assert abs(g[0, 1]) > 0
  assert np.all(g[off] == 0.0)


def test_mul_family_grad_equals_fixed_bandwidth_grad():
  r = _rng(8)
  x, y = r.normal(size=(6, 3)), r.normal(size=(6, 3)) + 0.5
  d = np_joint_dists(x, y)
  bw = float(np.sum(d) / (12 * 12 - 12))
  g1, g2 = jax.jit(lambda a, b: (
      jax.grad(lambda u: losses.mk_mmd(u, b, kernel='mul_family'))(a),
      jax.grad(lambda u: losses.mk_mmd(u, b, kernel='mul_family',
                                       fix_sigma=bw))(a)))(*_f32(x, y))
  np.testing.assert_allclose(g1, g2, rtol=1e-4, atol=1e-6)


def test_jmmd_matches_numpy_product_kernel():
  r = _rng(9)
  n, m = 6, 8
  fx, fy = r.normal(size=(n, 5)), r.normal(size=(m, 5)) + 0.4
  px = np.exp(r.normal(size=(n, 3)))
  px /= px.sum(1, keepdims=True)
  py = np.exp(r.normal(size=(m, 3)))
  py /= py.sum(1, keepdims=True)

  @jax.jit
  def run(fx, fy, px, py):
    quadratic = losses.jmmd([fx, px], [fy, py],
                            kernels=[losses.MulFamilyKernels(), 0.92])
    # Linear estimator on the first 6 target rows, mean-scaled features.
    linear = losses.jmmd([fx, px], [fy[:n], py[:n]],
                         kernels=['mean_scaled', losses.FixedGaussian(0.92)],
                         estimator='linear')
    single = [(losses.jmmd([fx], [fy], kernels=['mul_family'], estimator=e),
               losses.mk_mmd(fx, fy, kernel='mul_family', estimator=e))
              for e in ('unbiased', 'biased')]
    return quadratic, linear, single

  quadratic, linear, single = run(*_f32(fx, fy, px, py))
  k = (np_kernel_mul_family(np_joint_dists(fx, fy), 2.0, 5) *
       np_kernel_fixed(np_joint_dists(px, py), 0.92))
  np.testing.assert_allclose(quadratic, np_mmd(k, n, 'unbiased'), rtol=RTOL,
                             atol=ATOL)
  k = (np_kernel_mean_scaled(np_joint_dists(fx, fy[:n]), SCALES) *
       np_kernel_fixed(np_joint_dists(px, py[:n]), 0.92))
  np.testing.assert_allclose(linear, np_mmd(k, n, 'linear'), rtol=RTOL,
                             atol=ATOL)
  # One layer: jmmd is mk_mmd.
  for a, b in single:
    assert float(a) == float(b)


def test_mmd_bad_arguments():
  x = jax.ShapeDtypeStruct((4, 2), jnp.float32)
  y = jax.ShapeDtypeStruct((6, 2), jnp.float32)
  one = jax.ShapeDtypeStruct((1, 2), jnp.float32)
  bad = [(lambda a, b: losses.mk_mmd(a, b, estimator='linear'), x, y),
         (lambda a, b: losses.mk_mmd(a, b, estimator='quadratic'), x, x),
         (lambda a, b: losses.mk_mmd(a, b, kernel='laplace'), x, x),
         (losses.mk_mmd, x, one),
         (lambda a, b: losses.jmmd([a, a], [b], kernels=['mean_scaled']), x,
          x)]
  for f, a, b in bad:
    with pytest.raises(ValueError):
      jax.eval_shape(f, a, b)
  jax.eval_shape(losses.mk_mmd, x, y)   # and the good case traces


################################################################################
# Supervised contrastive.
################################################################################

_supcon = jax.jit(losses.supervised_contrastive)


def np_supcon(z, labels, mask, t):
  n = len(z)
  total, anchors = 0.0, 0
  for i in range(n):
    if not mask[i]:
      continue
    pos = [p for p in range(n) if p != i and mask[p] and labels[p] == labels[i]]
    if not pos:
      continue
    den = sum(math.exp(float(np.dot(z[i], z[a])) / t)
              for a in range(n) if a != i and mask[a])
    li = 0.0
    for p in pos:
      li -= math.log(math.exp(float(np.dot(z[i], z[p])) / t) / den)
    total += li / len(pos)
    anchors += 1
  return total / anchors if anchors else 0.0


def _unit(r, n, d):
  z = r.normal(size=(n, d))
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_supervised_contrastive_matches_numpy():
  r = _rng(11)
  n = 12
  z = _unit(r, n, 6)
  labels = r.integers(0, 3, size=n)
  labels[0] = 7   # a unique label: an anchor without positives
  mask = (r.random(n) > 0.25).astype(np.float64)
  mask[0] = 1
  for t in (0.01, 0.1, 1.0):
    got = _supcon(_f32(z), labels, _f32(mask), t)
    # float32 logits z.z/t with t = 0.01 reach 100: ~1e-5 absolute error.
    np.testing.assert_allclose(got, np_supcon(z, labels, mask, t), rtol=2e-5,
                               atol=1e-5, err_msg=f't={t}')


def test_supervised_contrastive_masked_rows_do_not_matter():
  r = _rng(12)
  n = 12
  z = _unit(r, n, 6)
  labels = r.integers(0, 2, size=n)
  mask = np.ones(n)
  mask[[2, 5]] = 0
  z2 = z.copy()
  z2[[2, 5]] = _unit(r, 2, 6)
  labels2 = labels.copy()
  labels2[[2, 5]] = 1 - labels2[[2, 5]]
  a = _supcon(_f32(z), labels, _f32(mask), 0.01)
  b = _supcon(_f32(z2), labels2, _f32(mask), 0.01)
  np.testing.assert_allclose(a, b, rtol=1e-6)
  c = _supcon(_f32(z2), labels2, np.ones(n, np.float32), 0.01)
  assert abs(float(c) - float(a)) > 1e-3


def test_supervised_contrastive_no_valid_anchor_and_finite_grads():
  z = _f32(_unit(_rng(13), 12, 6))
  f = jax.jit(jax.value_and_grad(losses.supervised_contrastive))
  distinct = np.arange(12)   # no positives anywhere
  cases = [(distinct, np.ones(12)), (distinct % 2, np.zeros(12)),
           (distinct % 2, np.eye(12)[0])]
  for labels, mask in cases:
    value, grad = f(z, labels, _f32(mask), 0.01)
    assert float(value) == 0.0
    assert _finite(grad)
  value, grad = f(z, distinct % 3, np.ones(12, np.float32), 0.01)
  assert _finite(grad) and np.abs(grad).sum() > 0


def test_supervised_contrastive_prefers_clustered_embeddings():
  r = _rng(14)
  labels = np.repeat(np.arange(3), 4)
  centers = _unit(r, 3, 6)
  clustered = centers[labels] + 0.05 * r.normal(size=(12, 6))
  clustered /= np.linalg.norm(clustered, axis=1, keepdims=True)
  random = _unit(r, 12, 6)
  f = lambda zz: float(_supcon(_f32(zz), labels, np.ones(12, np.float32), 0.1))
  assert f(clustered) < f(random) - 0.5


################################################################################
# Prototypes and decoupling.
################################################################################

_decouple = jax.jit(losses.prototype_decoupling)


def np_decouple(pes, pcs, pet, pct, t):
  nrm = lambda v: v / math.sqrt(sum(a * a for a in v))
  pes, pcs, pet, pct = map(nrm, (pes, pcs, pet, pct))
  total = 0.0
  for em, en, cn in [(pes, pet, pct), (pet, pes, pcs)]:
    pos = math.exp(float(np.dot(em, en)) / t)
    neg = math.exp(float(np.dot(em, cn)) / t)
    total += -math.log(pos / (pos + neg))
  return 0.5 * total


def test_prototype_decoupling_matches_numpy():
  r = _rng(15)
  protos = [r.normal(size=3) * s for s in (1., 2., 0.5, 3.)]
  for t in (0.01, 0.5):
    got = _decouple(*_f32(*protos), t)
    np.testing.assert_allclose(got, np_decouple(*protos, t), rtol=2e-5,
                               atol=1e-5)
    # Scale invariance (normalised inside) and symmetry S <-> T.
    scaled = _decouple(
        *_f32(*[p * k for p, k in zip(protos, (3., .2, 7., 1.))]), t)
    np.testing.assert_allclose(scaled, got, rtol=1e-4, atol=1e-5)
    swapped = _decouple(*_f32(protos[2], protos[3], protos[0], protos[1]), t)
    np.testing.assert_allclose(swapped, got, rtol=1e-6)


def test_prototype_decoupling_direction():
  e = np.array([1., 0., 0.])
  c = np.array([0., 1., 0.])
  good = float(_decouple(*_f32(e, c, e, c), 0.1))
  bad = float(_decouple(*_f32(e, e, e, e), 0.1))
  np.testing.assert_allclose(good, math.log1p(math.exp(-10.)), rtol=1e-5)
  np.testing.assert_allclose(bad, math.log(2.), rtol=1e-6)


def test_prototype_and_l2_normalize():
  r = _rng(16)
  f = r.normal(size=(7, 3))
  mask = np.array([1, 0, 1, 1, 0, 0, 1.])
  x = r.normal(size=(4, 5))

  @jax.jit
  def run(f, mask, x):
    zero = jnp.zeros((2, 3))
    return (losses.prototype(f, mask), losses.prototype(f),
            losses.prototype(f, jnp.zeros_like(mask)), losses.l2_normalize(x),
            losses.l2_normalize(zero),
            jax.grad(lambda v: losses.l2_normalize(v).sum())(zero))

  masked, plain, empty, normed, zero, zero_grad = run(*_f32(f, mask, x))
  want = sum(f[i] for i in range(7) if mask[i]) / 4
  np.testing.assert_allclose(masked, want, rtol=RTOL)
  np.testing.assert_allclose(plain, f.mean(0), rtol=RTOL, atol=ATOL)
  np.testing.assert_array_equal(empty, np.zeros(3))
  np.testing.assert_allclose(
      normed, x / np.linalg.norm(x, axis=1, keepdims=True), rtol=RTOL,
      atol=ATOL)
  np.testing.assert_array_equal(zero, np.zeros((2, 3)))
  assert _finite(zero_grad)


################################################################################
# EMA threshold.
################################################################################


def test_ema_threshold():
  tau0 = losses.ema_threshold_init(4)
  assert tau0.dtype == jnp.float32 and float(tau0) == pytest.approx(0.25)
  r = _rng(17)
  probs = np.exp(r.normal(size=(6, 4)) * 2)
  probs /= probs.sum(1, keepdims=True)
  mask = np.array([1, 1, 0, 1, 0, 1.])
  update = jax.jit(losses.ema_threshold_update)
  conf = [max(p) for p in probs]
  got = update(tau0, _f32(probs), 0.9)
  np.testing.assert_allclose(got, 0.9 * 0.25 + 0.1 * sum(conf) / 6, rtol=RTOL)
  got_m = update(tau0, _f32(probs), 0.9, _f32(mask))
  want_m = 0.9 * 0.25 + 0.1 * sum(c for c, k in zip(conf, mask) if k) / 4
  np.testing.assert_allclose(got_m, want_m, rtol=RTOL)
  assert got_m.dtype == jnp.float32
  # Select with the updated tau.
  labels, confident = jax.jit(losses.select_confident)(_f32(probs), got)
  assert labels.dtype == jnp.int32 and confident.dtype == jnp.float32
  np.testing.assert_array_equal(labels, [int(np.argmax(p)) for p in probs])
  np.testing.assert_array_equal(confident,
                                [float(c >= float(got)) for c in conf])
  tau = float(np.median(conf))
  _, confident = jax.jit(losses.select_confident)(_f32(probs), tau)
  np.testing.assert_array_equal(confident, [float(c >= tau) for c in conf])
  assert np.sum(confident) == 3   # ties at the median count as confident
  # Repeated updates with constant confidence 0.7 converge to it.
  const = np.full((6, 4), 0.1, np.float32)
  const[:, 1] = 0.7
  tau = tau0
  for _ in range(200):
    tau = update(tau, const, 0.95)
  np.testing.assert_allclose(tau, 0.7, rtol=1e-4)


################################################################################
# Entropy, information maximisation, NT-Xent.
################################################################################


def np_softmax_rows(logits):
  return np.array([[math.exp(v) for v in np_log_softmax_row(list(row))]
                   for row in logits])


def np_entropy(p):
  return -sum(v * math.log(v) for v in p if v > 0)


def test_entropy_and_weights():
  r = _rng(18)
  p = np_softmax_rows(r.normal(size=(5, 4)) * 2)
  p[0] = [1., 0., 0., 0.]
  ent, grad, w = jax.jit(lambda q: (
      losses.entropy(q), jax.grad(lambda u: losses.entropy(u).sum())(q),
      losses.entropy_weights(q)))(_f32(p))
  want = [np_entropy(row) for row in p]
  np.testing.assert_allclose(ent, want, rtol=RTOL, atol=ATOL)
  assert ent[0] == 0.0
  assert _finite(grad)
  np.testing.assert_allclose(w, [1 + math.exp(-h) for h in want], rtol=RTOL)
  assert w[0] == 2.0 and np.all(w > 1.0)


def test_information_maximization():
  r = _rng(19)
  logits = r.normal(size=(6, 3)) * 2
  mask = np.array([1, 0, 1, 1, 1, 0.])
  uniform = np.zeros((6, 3))
  confident = 50.0 * np.eye(3)[[0, 1, 2, 0, 1, 2]]
  im = jax.jit(losses.information_maximization)
  p = np_softmax_rows(logits)
  p_bar = [sum(p[i][c] for i in range(6)) / 6 for c in range(3)]
  want = sum(np_entropy(row) for row in p) / 6 - np_entropy(p_bar)
  np.testing.assert_allclose(im(_f32(logits)), want, rtol=RTOL, atol=ATOL)
  idx = [i for i in range(6) if mask[i]]
  p_bar = [sum(p[i][c] for i in idx) / len(idx) for c in range(3)]
  want = sum(np_entropy(p[i]) for i in idx) / len(idx) - np_entropy(p_bar)
  np.testing.assert_allclose(im(_f32(logits), _f32(mask)), want, rtol=RTOL,
                             atol=ATOL)
  # Uniform predictions: log C - log C = 0; confident and balanced: -log C.
  assert abs(float(im(_f32(uniform)))) < 1e-6
  np.testing.assert_allclose(im(_f32(confident)), -math.log(3), rtol=1e-5)


def np_nt_xent(z1, z2, t):
  z = np.concatenate([z1, z2]).astype(np.float64)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  n2 = len(z)
  n = n2 // 2
  total = 0.0
  for i in range(n2):
    pos = (i + n) % n2
    den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(n2) if k != i)
    total += -math.log(math.exp(float(z[i] @ z[pos]) / t) / den)
  return total / n2


def test_nt_xent():
  r = _rng(20)
  z1, z2 = r.normal(size=(5, 4)) * 3, r.normal(size=(5, 4))
  f = jax.jit(jax.value_and_grad(losses.nt_xent))
  for t in (0.1, 0.5):
    got, grad = f(*_f32(z1, z2), t)
    np.testing.assert_allclose(got, np_nt_xent(z1, z2, t), rtol=RTOL,
                               atol=ATOL)
    assert _finite(grad)
    aligned, _ = f(*_f32(z1, z1 * 2.0 + 0.01 * z2), t)
    assert float(aligned) < float(got)


################################################################################
# Gradient reversal, BSP, center loss.
################################################################################


def test_grad_reverse():
  r = _rng(21)
  x, w = _f32(r.normal(size=(3, 4)), r.normal(size=(3, 4)))

  @jax.jit
  def run(x, c):
    f = lambda xx, cc: jnp.sum(losses.grad_reverse(xx, cc) * w)
    gx, gc = jax.grad(f, argnums=(0, 1))(x, c)
    g1 = jax.grad(lambda xx: jnp.sum(losses.grad_reverse(xx)**2))(x)
    return losses.grad_reverse(x, c), gx, gc, g1

  fwd, gx, gc, g1 = run(x, np.float32(0.3))
  np.testing.assert_array_equal(fwd, x)
  np.testing.assert_allclose(gx, -0.3 * w, rtol=1e-6)
  assert float(gc) == 0.0
  np.testing.assert_allclose(g1, -2 * x, rtol=1e-6)


def test_domain_adversarial_loss_matches_numpy():
  rng = np.random.default_rng(0)
  n, m = 5, 3
  d = rng.standard_normal(n + m).astype(np.float32)
  w = rng.uniform(1, 2, n + m).astype(np.float32)
  y = np.r_[np.ones(n), np.zeros(m)]
  p = 1 / (1 + np.exp(-d.astype(np.float64)))
  bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))

  loss, acc = losses.domain_adversarial_loss(jnp.asarray(d), n)
  np.testing.assert_allclose(loss, 0.5 * (bce[:n].mean() + bce[n:].mean()),
                             rtol=1e-5)
  correct = (d > 0) == (y > 0)
  np.testing.assert_allclose(acc, 0.5 * (correct[:n].mean() +
                                         correct[n:].mean()), rtol=1e-6)

  # Weighted: each corpus's weights normalised to sum 1 (CDAN+E reference).
  loss, _ = losses.domain_adversarial_loss(jnp.asarray(d), n, jnp.asarray(w))
  want = 0.5 * (np.sum(w[:n] * bce[:n]) / w[:n].sum() +
                np.sum(w[n:] * bce[n:]) / w[n:].sum())
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  # The normalisers carry no gradient: d loss / d w_i = b_i / (2 sum w).
  grad_w = jax.grad(lambda w: losses.domain_adversarial_loss(
      jnp.asarray(d), n, w)[0])(jnp.asarray(w))
  np.testing.assert_allclose(
      grad_w, np.r_[bce[:n] / w[:n].sum(), bce[n:] / w[n:].sum()] / 2,
      rtol=1e-5)


def test_batch_spectral_penalty():
  r = _rng(22)
  f = r.normal(size=(8, 5)) + np.outer(r.normal(size=8), r.normal(size=5)) * 3
  s = np.linalg.svd(f, compute_uv=False)
  values, g = jax.jit(lambda a: (
      [losses.batch_spectral_penalty(a, k) for k in (1, 2, 3)],
      jax.grad(losses.batch_spectral_penalty)(a)))(_f32(f))
  for k, v in zip((1, 2, 3), values):
    np.testing.assert_allclose(v, sum(s[i]**2 for i in range(k)), rtol=RTOL)
  # d sigma_1^2 / dF = 2 sigma_1 u_1 v_1^T.
  u, s, vt = np.linalg.svd(f)
  np.testing.assert_allclose(g, 2 * s[0] * np.outer(u[:, 0], vt[0]),
                             rtol=1e-4, atol=1e-4)


def np_center_loss(f, y, c, mask):
  num, den = 0.0, 0.0
  for i in range(len(y)):
    if mask[i]:
      num += 0.5 * sum((f[i][d] - c[y[i]][d])**2 for d in range(f.shape[1]))
      den += 1
  return num / max(den, 1)


def np_update_centers(c, f, y, alpha, mask):
  new = c.copy()
  for j in range(len(c)):
    delta = np.zeros(c.shape[1])
    count = 0
    for i in range(len(y)):
      if y[i] == j and mask[i]:
        delta += c[j] - f[i]
        count += 1
    new[j] = c[j] - alpha * delta / (1 + count)
  return new


def test_center_loss_and_update():
  r = _rng(23)
  b, c_num, d = 9, 4, 3
  f, centers = r.normal(size=(b, d)), r.normal(size=(c_num, d))
  y = r.integers(0, 3, size=b)   # class 3 never appears
  mask = (r.random(b) > 0.3).astype(np.float64)

  @jax.jit
  def run(f, c, m):
    return (losses.center_loss(f, y, c, m), losses.update_centers(c, f, y,
                                                                  0.5, m))

  for m in [np.ones(b), mask]:
    loss, new = run(*_f32(f, centers, m))
    np.testing.assert_allclose(loss, np_center_loss(f, y, centers, m),
                               rtol=RTOL)
    np.testing.assert_allclose(new, np_update_centers(centers, f, y, 0.5, m),
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(new[3], centers[3].astype(np.float32))

  @jax.jit
  def run2(f, c):
    loss, (gf, gc) = jax.value_and_grad(losses.center_loss, argnums=(0, 2))(
        f, y, c)
    # Repeated updates on a fixed batch move each center to its class mean.
    c = jax.lax.fori_loop(0, 60, lambda _, cc: losses.update_centers(
        cc, f, y, 0.5), c)
    return loss, gf, gc, c

  loss, gf, gc, moved = run2(*_f32(f, centers))
  np.testing.assert_allclose(loss, np_center_loss(f, y, centers, np.ones(b)),
                             rtol=RTOL)
  # Gradient: (f_i - c_{y_i}) / B w.r.t. features, none to the centers.
  np.testing.assert_allclose(gf, (f - centers[y]) / b, rtol=1e-5, atol=1e-6)
  assert np.all(gc == 0.0)
  for j in range(3):
    np.testing.assert_allclose(moved[j], f[y == j].mean(0), rtol=1e-4,
                               atol=1e-5)


################################################################################
# The package: families re-exported.
################################################################################


def test_every_family_is_re_exported():
  # Every family module of the package, including ones added later.
  families = [m.name for m in pkgutil.iter_modules(losses.__path__)
              if not m.name.startswith('_')]
  assert {'classification', 'mmd', 'contrastive', 'pseudo_label', 'entropy',
          'adversarial', 'center'} <= set(families)
  defined = set()
  for family in families:
    module = importlib.import_module(f'jaxser.losses.{family}')
    for name, obj in vars(module).items():
      if (not name.startswith('_') and callable(obj)
          and getattr(obj, '__module__', None) == module.__name__):
        assert getattr(losses, name) is obj, name
        defined.add(name)
  missing = sorted(n for n in losses.__all__ if not hasattr(losses, n))
  assert not missing
  assert defined <= set(losses.__all__)
