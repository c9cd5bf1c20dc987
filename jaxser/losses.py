"""Losses and loss helpers for the domain-adaptation methods.

Every function here is pure JAX: static shapes, no Python control flow on
traced values, so all of them can be used under `jax.jit` (kernel specs and
estimator names are Python values, i.e. static).

Conventions: `mask` arguments are (batch,) arrays of 0/1 (float or bool) that
say which rows take part (padding rows of a fixed-shape batch, or target rows
below the pseudo-label threshold); masked means divide by the number of
unmasked rows, and by 1 when there are none, so an empty batch gives a loss of
0 with finite gradients.

Contents:
  * classification: `cross_entropy`, `class_weights` (MMD-SER).
  * MK-MMD (DAN, Emo-DNA, MMD-SER) and JMMD (JAN): kernel specs
    `MeanScaledKernels`, `MulFamilyKernels`, `FixedGaussian`,
    `FixedBandwidthKernels`; `pairwise_sq_dists`, `joint_gram`,
    `mmd_from_gram` (the one implementation of the estimators), `jmmd`,
    `mk_mmd`.
  * contrastive: `supervised_contrastive` (SupCon), `nt_xent` (SimCLR),
    `prototype`, `l2_normalize`, `prototype_decoupling` (Emo-DNA eq. 5).
  * pseudo-labels: `ema_threshold_init`, `ema_threshold_update`,
    `select_confident` (Emo-DNA eqs. 6-7).
  * entropy: `entropy`, `information_maximization`, `entropy_weights`
    (CDAN+E).
  * `grad_reverse` (DANN's gradient reversal layer), `batch_spectral_penalty`
    (BSP), `center_loss` and `update_centers` (Wen et al. 2016, DIFL).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

# Full float32 matmuls: these products feed distance expansions with
# cancellation and logits divided by temperatures as small as 0.01, where
# TF32/bf16 passes (the GPU/TPU default) would cost whole units of a logit.
_HIGHEST = jax.lax.Precision.HIGHEST


def _matmul(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  return jnp.matmul(a, b, precision=_HIGHEST)


# Fill value for logits that must not count in a softmax. Large and negative
# but finite: -inf would give NaN gradients (inf - inf) in rows where every
# entry is excluded.
_NEG = -1e9


def _masked_mean(values: jnp.ndarray, mask: Optional[jnp.ndarray]):
  """sum(mask * values) / max(sum(mask), 1); plain mean when mask is None."""
  if mask is None:
    return jnp.mean(values)
  mask = mask.astype(values.dtype)
  return jnp.sum(mask * values) / jnp.maximum(jnp.sum(mask), 1.0)


def _safe_div(num: jnp.ndarray, den: jnp.ndarray) -> jnp.ndarray:
  """num / den, and 0 where den == 0 (with finite gradients)."""
  ok = den != 0
  return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


################################################################################
# Classification.
################################################################################


def cross_entropy(logits: jnp.ndarray,
                  labels: jnp.ndarray,
                  mask: Optional[jnp.ndarray] = None,
                  weights: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Mean softmax cross-entropy with integer labels.

  With ce_i = -log softmax(logits_i)[y_i], mask m_i (default 1) and per-class
  weights w (default 1):

    loss = sum_i m_i w[y_i] ce_i / sum_i m_i w[y_i],

  which is PyTorch's `CrossEntropyLoss(weight=w)` (a weighted mean, not a
  mean of weighted terms) and, for 0/1 masks without weights,
  sum_i m_i ce_i / max(sum_i m_i, 1). A zero denominator gives 0.

  Labels outside [0, num_classes) (e.g. -1 on padding rows) contribute
  nothing: their one-hot row is zero.

  Args:
    logits: (B, C) unnormalised scores.
    labels: (B,) int class indices.
    mask: optional (B,) 0/1 of the rows that count.
    weights: optional (C,) per-class weights.

  Returns:
    Scalar loss.
  """
  num_classes = logits.shape[-1]
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
  ce = -jnp.sum(one_hot * jax.nn.log_softmax(logits, axis=-1), axis=-1)
  if weights is None:
    w = jnp.ones_like(ce)
  else:
    w = _matmul(one_hot, weights.astype(logits.dtype))   # w[y_i]
  if mask is not None:
    w = w * mask.astype(logits.dtype)
  return _safe_div(jnp.sum(w * ce), jnp.sum(w))


def class_weights(class_counts: Sequence[int]) -> np.ndarray:
  """Per-class weights inversely proportional to the class counts.

  With n_c utterances of class c, N = sum_c n_c and K classes:

    w_c = N / (K n_c),   and w_c = 0 where n_c = 0,

  normalised so that balanced classes get 1 (scikit-learn's 'balanced').
  Under `cross_entropy`'s weighted mean only the ratios w_c / w_c' matter.

  A constant of the loss, computed once in NumPy (eager JAX would compile
  each operation).

  Args:
    class_counts: (K,) counts.

  Returns:
    (K,) float32 NumPy weights.
  """
  n = np.asarray(class_counts, np.float64)
  safe = np.where(n > 0, n, 1.0)
  return np.where(n > 0, n.sum() / (len(n) * safe), 0.0).astype(np.float32)


################################################################################
# MK-MMD and JMMD.
################################################################################


def pairwise_sq_dists(a: jnp.ndarray,
                      b: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Squared Euclidean distances D_ij = ||a_i - b_j||^2, clipped at 0.

  Computed as ||a_i||^2 + ||b_j||^2 - 2 a_i.b_j (no (n, m, d) intermediate).
  When `b` is None the distances are those of `a` with itself: the rows are
  centred first (distances are translation invariant, and centring reduces
  cancellation in the expansion) and the diagonal is set to exactly 0.

  Args:
    a: (n, d).
    b: optional (m, d).

  Returns:
    (n, m) distances, or (n, n) when b is None.
  """
  self_dists = b is None
  if self_dists:
    a = a - jnp.mean(a, axis=0, keepdims=True)
    b = a
  a2 = jnp.sum(a * a, axis=-1)
  b2 = jnp.sum(b * b, axis=-1)
  d = a2[:, None] + b2[None, :] - 2.0 * _matmul(a, b.T)
  d = jnp.maximum(d, 0.0)
  if self_dists:
    d = jnp.where(jnp.eye(d.shape[0], dtype=bool), 0.0, d)
  return d


@dataclasses.dataclass(frozen=True)
class MeanScaledKernels:
  """Gaussian kernels with bandwidths scaled by the mean squared distance.

  The Emo-DNA choice (and transfer-learning-library's MK-MMD kernels,
  `GaussianKernel(alpha=2**k)` for k in -3..1, there summed, here averaged):

    m_bar = sum_{i,j} D_ij / N^2            (all N^2 pairs, diagonal included)
    K = (1/|A|) sum_{a in A} exp(-D / (2 a m_bar)),

  i.e. beta_u = 1/|A| in Emo-DNA eq. 10. m_bar is computed from the joint
  batch and passed through `jax.lax.stop_gradient`.

  Attributes:
    scales: the multipliers a of m_bar.
  """
  scales: Sequence[float] = (1 / 8, 1 / 4, 1 / 2, 1., 2.)

  def __post_init__(self):
    # A tuple keeps the spec hashable (usable as a static jit argument).
    object.__setattr__(self, 'scales', tuple(float(a) for a in self.scales))

  def gram(self, sq_dists: jnp.ndarray) -> jnp.ndarray:
    """Kernel matrix from the (N, N) squared distances of the joint batch."""
    m_bar = jax.lax.stop_gradient(jnp.mean(sq_dists))
    m_bar = jnp.maximum(m_bar, jnp.finfo(sq_dists.dtype).tiny)
    return sum(jnp.exp(-sq_dists / (2.0 * a * m_bar))
               for a in self.scales) / len(self.scales)


@dataclasses.dataclass(frozen=True)
class MulFamilyKernels:
  """The DAN/JAN reference kernel family (`guassian_kernel` in DAN's code).

  With N = n + m rows in the joint batch:

    b = sum_{i,j} D_ij / (N^2 - N)         (mean off-diagonal distance)
        or fix_sigma when given
    b_0 = b / kernel_mul ** (kernel_num // 2)
    K = sum_{i=0}^{kernel_num-1} exp(-D / (b_0 kernel_mul^i)).

  As in the reference: the kernels are SUMMED (not averaged; the kernel's
  scale is kernel_num times that of an average), there is no factor 2 in the
  exponent, and `fix_sigma` replaces b only, so it is still divided by
  kernel_mul ** (kernel_num // 2). The bandwidth goes through
  `jax.lax.stop_gradient` (the reference uses `L2_distance.data`).

  Attributes:
    kernel_mul: ratio between consecutive bandwidths.
    kernel_num: number of kernels.
    fix_sigma: optional fixed base bandwidth b.
  """
  kernel_mul: float = 2.0
  kernel_num: int = 5
  fix_sigma: Optional[float] = None

  def gram(self, sq_dists: jnp.ndarray) -> jnp.ndarray:
    """Kernel matrix from the (N, N) squared distances of the joint batch."""
    if self.fix_sigma is None:
      n = sq_dists.shape[0]
      bandwidth = jax.lax.stop_gradient(jnp.sum(sq_dists) / (n * n - n))
      bandwidth = jnp.maximum(bandwidth, jnp.finfo(sq_dists.dtype).tiny)
    else:
      bandwidth = jnp.asarray(self.fix_sigma, sq_dists.dtype)
    bandwidth = bandwidth / self.kernel_mul**(self.kernel_num // 2)
    return sum(jnp.exp(-sq_dists / (bandwidth * self.kernel_mul**i))
               for i in range(self.kernel_num))


@dataclasses.dataclass(frozen=True)
class FixedGaussian:
  """One Gaussian kernel of fixed width: K = exp(-D / (2 sigma^2)).

  JAN applies it to the softmax outputs with sigma = 0.92
  (`GaussianKernel(sigma=0.92, track_running_stats=False)` in
  transfer-learning-library).

  Attributes:
    sigma: the kernel width.
  """
  sigma: float = 0.92

  def gram(self, sq_dists: jnp.ndarray) -> jnp.ndarray:
    """Kernel matrix from squared distances."""
    return jnp.exp(-sq_dists / (2.0 * self.sigma**2))


# Domain Separation Networks' MMD bandwidths (Bousmalis et al. 2016,
# `losses.mmd_loss`), which MMD-SER cites for its kernel.
DSN_SIGMAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1., 5., 10., 15., 20., 25.,
              30., 35., 100., 1e3, 1e4, 1e5, 1e6)


@dataclasses.dataclass(frozen=True)
class FixedBandwidthKernels:
  """A sum of Gaussian kernels of fixed bandwidths (MMD-SER, DSN).

    K = sum_n exp(-D / (2 sigma_n))

  MMD-SER's kernel k(x, y) = sum_n eta_n exp(-||x - y||^2 / (2 sigma_n)) with
  eta_n = 1, as in DSN's `gaussian_kernel_matrix` (beta = 1 / (2 sigma)).
  sigma_n stands where a variance would (the paper calls it a standard
  deviation). The bandwidths do not depend on the data.

  Attributes:
    sigmas: the sigma_n.
  """
  sigmas: Sequence[float] = DSN_SIGMAS

  def __post_init__(self):
    # A tuple keeps the spec hashable (usable as a static jit argument).
    object.__setattr__(self, 'sigmas', tuple(float(s) for s in self.sigmas))

  def gram(self, sq_dists: jnp.ndarray) -> jnp.ndarray:
    """Kernel matrix from squared distances."""
    return sum(jnp.exp(-sq_dists / (2.0 * s)) for s in self.sigmas)


KernelSpec = Union[MeanScaledKernels, MulFamilyKernels, FixedGaussian,
                   FixedBandwidthKernels]


def _as_kernel(spec: Union[KernelSpec, str, float]) -> KernelSpec:
  """A kernel spec from a spec, a family name (default params) or a sigma."""
  if isinstance(spec, (MeanScaledKernels, MulFamilyKernels, FixedGaussian,
                       FixedBandwidthKernels)):
    return spec
  if isinstance(spec, str):
    families = dict(mean_scaled=MeanScaledKernels, mul_family=MulFamilyKernels)
    if spec not in families:
      raise ValueError(f'unknown kernel family {spec!r}; known: '
                       f'{", ".join(families)}')
    return families[spec]()
  if isinstance(spec, (int, float)):
    return FixedGaussian(float(spec))
  raise TypeError(f'not a kernel spec: {spec!r}')


def joint_gram(xs: Sequence[jnp.ndarray], ys: Sequence[jnp.ndarray],
               kernels: Sequence[Union[KernelSpec, str, float]]) -> jnp.ndarray:
  """Product over layers of the per-layer kernel matrices of [x; y].

    K = prod_l k_l(Z_l),   Z_l = [x_l; y_l]   ((n + m) rows),

  the joint kernel of JAN; with one layer it is that layer's kernel matrix.
  Each layer's bandwidth comes from its own joint batch Z_l.

  Args:
    xs: per-layer source features, each (n, d_l).
    ys: per-layer target features, each (m, d_l).
    kernels: per-layer kernel specs (see `jmmd`).

  Returns:
    (n + m, n + m) kernel matrix, source rows first.
  """
  if not len(xs) == len(ys) == len(kernels) >= 1:
    raise ValueError(f'need as many kernels as layers (>= 1); got '
                     f'{len(xs)} source, {len(ys)} target layers and '
                     f'{len(kernels)} kernels')
  k = None
  for x, y, spec in zip(xs, ys, kernels):
    if x.shape[0] != xs[0].shape[0] or y.shape[0] != ys[0].shape[0]:
      raise ValueError('all layers must have the same number of rows')
    z = jnp.concatenate([x, y], axis=0)
    k_l = _as_kernel(spec).gram(pairwise_sq_dists(z))
    k = k_l if k is None else k * k_l
  return k


def mmd_from_gram(k: jnp.ndarray, num_source: int,
                  estimator: str = 'unbiased') -> jnp.ndarray:
  """Squared MMD from the joint kernel matrix of [x; y].

  With K_xx, K_yy, K_xy the blocks of `k` (n = num_source, m = rest):

    'unbiased': 1/(n(n-1)) sum_{i!=j} K_xx + 1/(m(m-1)) sum_{i!=j} K_yy
                - 2/(nm) sum_{i,j} K_xy
    'biased':   mean K_xx + mean K_yy - 2 mean K_xy   (diagonals included)
    'linear':   Gretton et al. (2012) linear-time estimate, as in DAN:
                n == m; with quadruples (x_{2i-1}, x_{2i}, y_{2i-1}, y_{2i}),
                i = 1..floor(n/2),
                h_i = k(x_{2i-1}, x_{2i}) + k(y_{2i-1}, y_{2i})
                      - k(x_{2i-1}, y_{2i}) - k(x_{2i}, y_{2i-1}),
                MMD_l^2 = mean_i h_i   (an odd last row is dropped).

  The unbiased and linear estimates can be negative.

  Args:
    k: (n + m, n + m) kernel matrix, source rows first.
    num_source: n (static).
    estimator: 'unbiased', 'biased' or 'linear'.

  Returns:
    Scalar MMD^2 estimate.
  """
  n = num_source
  m = k.shape[0] - n
  kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
  if estimator == 'biased':
    return jnp.mean(kxx) + jnp.mean(kyy) - 2.0 * jnp.mean(kxy)
  if estimator == 'unbiased':
    if n < 2 or m < 2:
      raise ValueError(f'unbiased MMD needs >= 2 rows per side; got {n}, {m}')
    sxx = (jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1))
    syy = (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1))
    return sxx + syy - 2.0 * jnp.mean(kxy)
  if estimator == 'linear':
    if n != m or n < 2:
      raise ValueError(f'linear MMD needs n == m >= 2; got {n}, {m}')
    i1 = jnp.arange(0, 2 * (n // 2), 2)
    i2 = i1 + 1
    h = kxx[i1, i2] + kyy[i1, i2] - kxy[i1, i2] - kxy[i2, i1]
    return jnp.mean(h)
  raise ValueError(f'unknown MMD estimator {estimator!r}; known: '
                   'unbiased, biased, linear')


def jmmd(xs: Sequence[jnp.ndarray],
         ys: Sequence[jnp.ndarray],
         *,
         kernels: Sequence[Union[KernelSpec, str, float]],
         estimator: str = 'unbiased') -> jnp.ndarray:
  """Joint MMD^2 (JAN, Long et al. 2017) of per-layer features.

  The MMD estimate `mmd_from_gram(K, n, estimator)` under the product kernel
  K = prod_l k_l over the layers (e.g. [features, softmax outputs]).

  Args:
    xs: per-layer source features, each (n, d_l).
    ys: per-layer target features, each (m, d_l).
    kernels: one spec per layer: a `MeanScaledKernels`, `MulFamilyKernels` or
      `FixedGaussian`, a family name 'mean_scaled' / 'mul_family' (default
      parameters), or a number sigma for `FixedGaussian(sigma)`. JAN:
      [MulFamilyKernels() or MeanScaledKernels(), FixedGaussian(0.92)].
    estimator: 'unbiased', 'biased' or 'linear' (see `mmd_from_gram`).

  Returns:
    Scalar JMMD^2 estimate.
  """
  k = joint_gram(xs, ys, kernels)
  return mmd_from_gram(k, xs[0].shape[0], estimator)


def mk_mmd(x: jnp.ndarray,
           y: jnp.ndarray,
           *,
           estimator: str = 'unbiased',
           kernel: Union[KernelSpec, str] = 'mean_scaled',
           scales: Sequence[float] = (1 / 8, 1 / 4, 1 / 2, 1., 2.),
           kernel_mul: float = 2.0,
           kernel_num: int = 5,
           fix_sigma: Optional[float] = None) -> jnp.ndarray:
  """Multi-kernel MMD^2 (DAN, Emo-DNA eq. 10) between x and y.

  The single-layer case of `jmmd`: `mmd_from_gram(k([x; y]), n, estimator)`,
  where the kernel k is

    'mean_scaled': `MeanScaledKernels(scales)`,
        k = mean_a exp(-||u - v||^2 / (2 a m_bar)), m_bar the mean squared
        distance of all (n+m)^2 pairs of [x; y];
    'mul_family':  `MulFamilyKernels(kernel_mul, kernel_num, fix_sigma)`,
        k = sum_i exp(-||u - v||^2 / (b kernel_mul^i)), the DAN reference
        (see its docstring; a SUM over kernels).

  Bandwidths always come from the joint batch (also for 'linear') and carry
  no gradient.

  Args:
    x: (n, d) source features.
    y: (m, d) target features (m == n for 'linear').
    estimator: 'unbiased', 'biased' or 'linear' (see `mmd_from_gram`).
    kernel: 'mean_scaled', 'mul_family', or a kernel spec instance (then the
      remaining keyword arguments are ignored).
    scales: 'mean_scaled' multipliers of m_bar.
    kernel_mul: 'mul_family' bandwidth ratio.
    kernel_num: 'mul_family' number of kernels.
    fix_sigma: 'mul_family' fixed base bandwidth.

  Returns:
    Scalar MMD^2 estimate.
  """
  if kernel == 'mean_scaled':
    spec = MeanScaledKernels(scales)
  elif kernel == 'mul_family':
    spec = MulFamilyKernels(kernel_mul, kernel_num, fix_sigma)
  else:
    spec = _as_kernel(kernel)
  return jmmd([x], [y], kernels=[spec], estimator=estimator)


################################################################################
# Contrastive losses and prototypes.
################################################################################


def l2_normalize(x: jnp.ndarray, axis: int = -1,
                 eps: float = 1e-12) -> jnp.ndarray:
  """x / max(||x||, eps) along `axis` (as torch.nn.functional.normalize).

  Written as x * rsqrt(max(||x||^2, eps^2)) so a zero vector maps to zero with
  finite gradients.
  """
  sq = jnp.sum(x * x, axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def prototype(features: jnp.ndarray,
              mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Mean row of `features` (B, d) (Emo-DNA eq. 4), over unmasked rows.

  p = sum_i m_i f_i / max(sum_i m_i, 1); NOT normalised.
  """
  if mask is None:
    return jnp.mean(features, axis=0)
  mask = mask.astype(features.dtype)
  return _matmul(mask, features) / jnp.maximum(jnp.sum(mask), 1.0)


def prototype_decoupling(proto_e_s: jnp.ndarray,
                         proto_c_s: jnp.ndarray,
                         proto_e_t: jnp.ndarray,
                         proto_c_t: jnp.ndarray,
                         temperature: float = 0.01) -> jnp.ndarray:
  """Contrastive decoupling loss between prototypes (Emo-DNA eq. 5).

  The prototypes p = (p_e^S, p_c^S, p_e^T, p_c^T) are L2-normalised HERE
  (pass the raw batch means from `prototype`; the paper: "prototypes are
  l2-normalized"). With t the temperature, for (m, n) in {(S, T), (T, S)}:

    L_mn = -log [ exp(p_e^m.p_e^n / t)
                  / (exp(p_e^m.p_e^n / t) + exp(p_e^m.p_c^n / t)) ]
    L = (L_ST + L_TS) / 2.

  The printed eq. 5 has p_e^m.p_e^n in both denominator terms; as our spec
  resolves it, the second term is the negative pair p_e^m.p_c^n (emotion
  prototype of m against corpus prototype of n). Computed as
  L_mn = logsumexp([0, s_neg - s_pos]) = softplus(s_neg - s_pos), with
  s = p.p' / t (exact where the loss is small, unlike
  logsumexp([s_pos, s_neg]) - s_pos).

  Args:
    proto_e_s: (d,) source emotion prototype.
    proto_c_s: (d,) source corpus prototype.
    proto_e_t: (d,) target emotion prototype.
    proto_c_t: (d,) target corpus prototype.
    temperature: tau_p.

  Returns:
    Scalar loss.
  """
  e_s, c_s, e_t, c_t = (l2_normalize(p) for p in
                        (proto_e_s, proto_c_s, proto_e_t, proto_c_t))

  def one_way(e_m, e_n, c_n):
    return jnp.logaddexp(0.0, (jnp.sum(e_m * c_n) - jnp.sum(e_m * e_n)) /
                         temperature)

  return 0.5 * (one_way(e_s, e_t, c_t) + one_way(e_t, e_s, c_s))


def supervised_contrastive(z: jnp.ndarray,
                           labels: jnp.ndarray,
                           mask: jnp.ndarray,
                           temperature: float = 0.01) -> jnp.ndarray:
  """Supervised contrastive loss, L^out (Khosla et al. 2020; Emo-DNA eq. 9).

  `z` (N, d) must already be L2-normalised (this function does not
  normalise). With m_i the mask, for an anchor i:

    P(i) = {p != i : m_p = 1, y_p = y_i},   A(i) = {a != i : m_a = 1},
    l_i = -1/|P(i)| sum_{p in P(i)}
            log( exp(z_i.z_p / t) / sum_{a in A(i)} exp(z_i.z_a / t) ),
    L = mean of l_i over the anchors with m_i = 1 and |P(i)| > 0
        (0 when there are none).

  Masked rows are neither anchors, positives nor in any denominator. Emo-DNA
  eq. 9 sums over anchors; we average (SupCon's own normalisation), which
  only rescales the loss weight alpha_1.

  Stable at t = 0.01: the log-sum-exp subtracts each row's max over its valid
  entries and excluded entries are filled with a large negative number (not
  -inf), so the gradients stay finite even when no anchor is valid.

  Args:
    z: (N, d) L2-normalised embeddings.
    labels: (N,) int labels (pseudo-labels for target rows).
    mask: (N,) 0/1 of the rows that take part.
    temperature: t.

  Returns:
    Scalar loss.
  """
  n = z.shape[0]
  valid = mask.astype(bool)
  logits = _matmul(z, z.T) / temperature
  not_self = ~jnp.eye(n, dtype=bool)
  in_denom = not_self & valid[None, :]                      # a in A(i)
  positive = in_denom & (labels[:, None] == labels[None, :])  # p in P(i)

  filled = jnp.where(in_denom, logits, _NEG)
  row_max = jax.lax.stop_gradient(jnp.max(filled, axis=1, keepdims=True))
  exp = jnp.where(in_denom, jnp.exp(filled - row_max), 0.0)
  denom = jnp.sum(exp, axis=1, keepdims=True)
  log_denom = row_max + jnp.log(jnp.where(denom > 0, denom, 1.0))
  log_prob = jnp.where(positive, logits - log_denom, 0.0)

  num_pos = jnp.sum(positive, axis=1).astype(z.dtype)
  loss_i = -jnp.sum(log_prob, axis=1) / jnp.maximum(num_pos, 1.0)
  anchor = (valid & (num_pos > 0)).astype(z.dtype)
  return jnp.sum(anchor * loss_i) / jnp.maximum(jnp.sum(anchor), 1.0)


def nt_xent(z1: jnp.ndarray, z2: jnp.ndarray,
            temperature: float = 0.5) -> jnp.ndarray:
  """SimCLR's NT-Xent loss over the 2N views (Chen et al. 2020).

  The rows of z = [z1; z2] are L2-normalised here (cosine similarity);
  s_ij = z_i.z_j / t and pos(i) = i + N mod 2N:

    l_i = -log( exp(s_{i,pos(i)}) / sum_{k != i} exp(s_ik) ),
    L = mean_i l_i   over all 2N anchors.

  Args:
    z1: (N, d) first views.
    z2: (N, d) second views.
    temperature: t.

  Returns:
    Scalar loss.
  """
  n = z1.shape[0]
  z = l2_normalize(jnp.concatenate([z1, z2], axis=0))
  logits = _matmul(z, z.T) / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), _NEG, logits)
  pos = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(0, n)])
  log_prob = jax.nn.log_softmax(logits, axis=1)
  return -jnp.mean(log_prob[jnp.arange(2 * n), pos])


################################################################################
# Adaptive-threshold pseudo-labels (Emo-DNA eqs. 6-7).
################################################################################


def ema_threshold_init(num_classes: int) -> jnp.ndarray:
  """tau_0 = 1 / n_C (Emo-DNA eq. 6, t = 0), as a float32 scalar."""
  return jnp.asarray(1.0 / num_classes, jnp.float32)


def ema_threshold_update(tau: jnp.ndarray,
                         probs: jnp.ndarray,
                         momentum: float = 0.999,
                         mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """EMA of the target confidence (Emo-DNA eq. 6, t > 0).

    tau_t = lambda tau_{t-1} + (1 - lambda) mean_j max_c q_jc,

  the mean over the (unmasked) target rows of the batch. Emo-DNA Algorithm 1
  updates tau every step BEFORE selecting that step's pseudo-labels (line 12
  update, line 13 select), so call this first and pass the result to
  `select_confident`. No gradient flows into tau.

  Args:
    tau: scalar tau_{t-1} (start from `ema_threshold_init`).
    probs: (B, C) target class probabilities q_j.
    momentum: lambda.
    mask: optional (B,) 0/1 of the real target rows.

  Returns:
    Scalar tau_t (dtype of tau).
  """
  conf = jax.lax.stop_gradient(jnp.max(probs, axis=-1))
  new = momentum * tau + (1.0 - momentum) * _masked_mean(conf, mask)
  return new.astype(jnp.asarray(tau).dtype)


def select_confident(probs: jnp.ndarray, tau: jnp.ndarray):
  """Pseudo-labels and the confident set (Emo-DNA eq. 7).

  yhat_j = argmax_c q_jc, confident_j = [max_c q_jc >= tau]; use the tau
  already updated with this batch (see `ema_threshold_update`).

  Args:
    probs: (B, C) target class probabilities.
    tau: scalar threshold.

  Returns:
    (pseudo_labels (B,) int32, confident (B,) float32 0/1).
  """
  pseudo = jnp.argmax(probs, axis=-1).astype(jnp.int32)
  confident = (jnp.max(probs, axis=-1) >= tau).astype(jnp.float32)
  return pseudo, confident


################################################################################
# Entropy-based losses.
################################################################################


def entropy(probs: jnp.ndarray) -> jnp.ndarray:
  """Per-row entropy H(p) = -sum_c p_c log p_c, with 0 log 0 = 0.

  Args:
    probs: (..., C) probabilities.

  Returns:
    (...,) entropies (finite gradients also where p_c = 0).
  """
  safe = jnp.where(probs > 0, probs, 1.0)
  return -jnp.sum(probs * jnp.log(safe), axis=-1)


def information_maximization(logits: jnp.ndarray,
                             mask: Optional[jnp.ndarray] = None
                             ) -> jnp.ndarray:
  """Information-maximisation loss (SHOT, Liang et al. 2020), to minimise.

  With p_i = softmax(logits_i) and p_bar = mean_i p_i:

    L = mean_i H(p_i) - H(p_bar),

  i.e. minus the mutual information between inputs and predictions
  (confident individual predictions, diverse on average). Means are over the
  unmasked rows when a mask is given.

  Args:
    logits: (B, C).
    mask: optional (B,) 0/1 of the rows that count.

  Returns:
    Scalar loss.
  """
  log_p = jax.nn.log_softmax(logits, axis=-1)
  p = jnp.exp(log_p)
  cond_ent = _masked_mean(-jnp.sum(p * log_p, axis=-1), mask)
  if mask is None:
    p_bar = jnp.mean(p, axis=0)
  else:
    p_bar = prototype(p, mask)
  return cond_ent - entropy(p_bar)


def entropy_weights(probs: jnp.ndarray) -> jnp.ndarray:
  """CDAN+E sample weights w = 1 + exp(-H(p)) (Long et al. 2018), in (1, 2].

  Only the raw weights: the caller decides on normalisation (the reference
  divides each domain's weights by their sum) and on gradients
  (`jax.lax.stop_gradient` or `grad_reverse`, as the reference hooks a GRL
  onto the entropy).

  Args:
    probs: (B, C) probabilities.

  Returns:
    (B,) weights.
  """
  return 1.0 + jnp.exp(-entropy(probs))


################################################################################
# Gradient reversal, BSP, center loss.
################################################################################


@jax.custom_vjp
def _grad_reverse(x, coeff):
  del coeff
  return x


def _grad_reverse_fwd(x, coeff):
  return x, coeff


def _grad_reverse_bwd(coeff, g):
  return (-coeff * g).astype(g.dtype), jnp.zeros_like(coeff)


_grad_reverse.defvjp(_grad_reverse_fwd, _grad_reverse_bwd)


def grad_reverse(x: jnp.ndarray, coeff=1.0) -> jnp.ndarray:
  """Gradient reversal layer (Ganin & Lempitsky 2015).

  Forward: R(x) = x. Backward: dR/dx = -coeff I. `coeff` may be a traced
  scalar (e.g. DANN's schedule 2/(1+exp(-10p)) - 1); it gets a zero
  gradient.

  Args:
    x: array.
    coeff: scalar reversal coefficient.

  Returns:
    x.
  """
  return _grad_reverse(x, jnp.asarray(coeff, x.dtype))


def batch_spectral_penalty(features: jnp.ndarray, k: int = 1) -> jnp.ndarray:
  """Batch Spectral Penalization (Chen et al. 2019): sum_{i<=k} sigma_i^2.

  sigma_1 >= sigma_2 >= ... are the singular values of the (B, d) feature
  matrix. BSP adds this for the source and the target features separately.

  Args:
    features: (B, d).
    k: number of largest singular values (static).

  Returns:
    Scalar penalty.
  """
  s = jnp.linalg.svd(features, compute_uv=False)
  return jnp.sum(s[:k]**2)


def center_loss(features: jnp.ndarray,
                labels: jnp.ndarray,
                centers: jnp.ndarray,
                mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Center loss (Wen et al. 2016), averaged over the batch.

    L_C = 1/2 mean_i ||f_i - c_{y_i}||^2   (squared norm summed over dims).

  Wen et al. write 1/2 sum_i; DIFL's eq. 4 writes 1/M sum_i without the 1/2
  (twice ours). We use the batch mean with the 1/2, so dL/df_i =
  (f_i - c_{y_i}) / B. `centers` are state updated by `update_centers`, not
  trained by gradient: they pass through `jax.lax.stop_gradient`.

  Args:
    features: (B, d).
    labels: (B,) int class indices.
    centers: (C, d) class centers.
    mask: optional (B,) 0/1 of the rows that count.

  Returns:
    Scalar loss.
  """
  c = jax.lax.stop_gradient(centers)[labels]
  per_row = 0.5 * jnp.sum((features - c)**2, axis=-1)
  return _masked_mean(per_row, mask)


def update_centers(centers: jnp.ndarray,
                   features: jnp.ndarray,
                   labels: jnp.ndarray,
                   alpha: float = 0.5,
                   mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """One center-loss center update (Wen et al. 2016 eq. 4; DIFL eq. 5).

    delta_j = sum_i [y_i = j] (c_j - f_i) / (1 + sum_i [y_i = j])
    c_j <- c_j - alpha delta_j.

  DIFL's eq. 5 prints "c_j = sum_{i=1}^m (c_j - x_i) / (1 + m)" with m the
  number of class-j samples in the mini-batch: that right-hand side is Wen
  et al.'s delta_j, and DIFL gives neither the step nor alpha; we follow Wen
  et al. (c_j <- c_j - alpha delta_j), so classes absent from the batch stay
  put. Only unmasked rows count. Returns new centers without gradient.

  Args:
    centers: (C, d) current centers.
    features: (B, d) batch features.
    labels: (B,) int class indices.
    alpha: center learning rate.
    mask: optional (B,) 0/1 of the rows that count.

  Returns:
    (C, d) updated centers.
  """
  features = jax.lax.stop_gradient(features)
  centers = jax.lax.stop_gradient(centers)
  one_hot = jax.nn.one_hot(labels, centers.shape[0], dtype=centers.dtype)
  if mask is not None:
    one_hot = one_hot * mask.astype(centers.dtype)[:, None]
  count = jnp.sum(one_hot, axis=0)                          # (C,)
  delta = ((count[:, None] * centers - _matmul(one_hot.T, features)) /
           (1.0 + count[:, None]))
  return centers - alpha * delta
