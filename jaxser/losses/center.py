"""Center loss (Wen et al. 2016; DIFL): `center_loss` and the per-batch
centre step `update_centers`."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxser.losses._common import masked_mean, matmul


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
  return masked_mean(per_row, mask)


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
  delta = ((count[:, None] * centers - matmul(one_hot.T, features)) /
           (1.0 + count[:, None]))
  return centers - alpha * delta
