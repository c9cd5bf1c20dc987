"""MK-MMD (DAN, Emo-DNA, MMD-SER) and JMMD (JAN).

Kernel specs `MeanScaledKernels`, `MulFamilyKernels`, `FixedGaussian`,
`FixedBandwidthKernels`; `pairwise_sq_dists`, `joint_gram`, `mmd_from_gram`
(the one implementation of the estimators), `jmmd`, `mk_mmd`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp

from jaxser.losses._common import matmul


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
  d = a2[:, None] + b2[None, :] - 2.0 * matmul(a, b.T)
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
