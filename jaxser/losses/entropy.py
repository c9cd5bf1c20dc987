"""Entropy-based losses: `entropy`, `information_maximization` (SHOT, the
multitask method's IM), `entropy_weights` (CDAN+E)."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxser.losses._common import masked_mean
from jaxser.losses.contrastive import prototype


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
  cond_ent = masked_mean(-jnp.sum(p * log_p, axis=-1), mask)
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
