"""Classification losses: (weighted, masked) softmax cross-entropy and the
inverse-frequency class weights of MMD-SER."""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.losses._common import matmul, safe_div


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
    w = matmul(one_hot, weights.astype(logits.dtype))   # w[y_i]
  if mask is not None:
    w = w * mask.astype(logits.dtype)
  return safe_div(jnp.sum(w * ce), jnp.sum(w))


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
