"""Adversarial training: `grad_reverse` (DANN's gradient reversal layer),
`domain_adversarial_loss` (the domain discriminator's loss of DANN, CDAN(+E)
and BSP) and `batch_spectral_penalty` (BSP, on top of DANN)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


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


def domain_adversarial_loss(domain_logits: jnp.ndarray, num_source: int,
                            weights: jnp.ndarray | None = None):
  """Discriminator BCE, source rows labelled 1 and target rows 0.

  With b_i = BCE(sigmoid(d_i), y_i) and weights w (default 1):

    L_d = 1/2 [ sum_S w_i b_i / sum_S w_i + sum_T w_j b_j / sum_T w_j ],

  the mean of the two corpora's weighted means. Unweighted and with equal
  batch sizes it is the plain mean over the joint batch; weighted, it is the
  CDAN+E reference (each corpus's weights normalised to sum 1, the sums
  detached: `jax.lax.stop_gradient`).

  Args:
    domain_logits: (n + m,) discriminator logits, source rows first.
    num_source: n (static).
    weights: optional (n + m,) per-example weights.

  Returns:
    (loss, accuracy): scalar L_d, and the discriminator's accuracy (logit > 0
    means source), the mean of the two corpora's accuracies.
  """
  n = num_source
  labels = (jnp.arange(domain_logits.shape[0]) < n).astype(domain_logits.dtype)
  bce = optax.sigmoid_binary_cross_entropy(domain_logits, labels)
  if weights is None:
    weights = jnp.ones_like(bce)
  correct = ((domain_logits > 0) == (labels > 0)).astype(domain_logits.dtype)

  def weighted_mean(values, w):
    return jnp.sum(w * values) / jax.lax.stop_gradient(jnp.sum(w))

  loss = 0.5 * (weighted_mean(bce[:n], weights[:n]) +
                weighted_mean(bce[n:], weights[n:]))
  accuracy = 0.5 * (jnp.mean(correct[:n]) + jnp.mean(correct[n:]))
  return loss, accuracy


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
