"""JAN: joint adaptation network (Long et al., ICML 2017) on the emotion
network of `config.model`:

  L = CE(phi_e(E^S), y^S) + trade_off * JMMD^2([E^S, g^S], [E^T, g^T]),

g = softmax(logits) (with gradient, as in the reference code), and the joint
kernel the product k_E(E, E') * exp(-||g - g'||^2 / (2 * 0.92^2)): the
feature kernel family of DAN (`kernel`, `scales` / `kernel_mul`,
`kernel_num`) on E and one Gaussian of width `softmax_sigma` on the outputs
(transfer-learning-library's `GaussianKernel(sigma=0.92)`; the JAN
reference's exp(-D / 1.68) is the same kernel to 1%: 2 * 0.92^2 = 1.69).

`estimator`: 'unbiased' (the quadratic form, transfer-learning-library's
default), 'linear' (the paper's linear-time form) or 'biased'. Source and
target batches pass through the network as one batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxser import losses
from jaxser.methods import base
from jaxser.methods import dan


@base.register('jan')
class JAN(dan.DAN):
  """JAN (see module docstring): DAN with the joint discrepancy."""
  discrepancy_metric = 'loss_jmmd'

  def discrepancy(self, logits, e, num_source: int) -> jnp.ndarray:
    """JMMD^2 over [E, softmax(logits)], source rows first."""
    g = jax.nn.softmax(logits)
    return losses.jmmd(
        [e[:num_source], g[:num_source]], [e[num_source:], g[num_source:]],
        kernels=[self.feature_kernel(),
                 losses.FixedGaussian(self.hparams.softmax_sigma)],
        estimator=self.hparams.estimator)
