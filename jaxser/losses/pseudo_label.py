"""Adaptive-threshold pseudo-labels (Emo-DNA eqs. 6-7): `ema_threshold_init`,
`ema_threshold_update`, `select_confident`, and `confidence_threshold` (the
adaptive threshold or the alternatives of Emo-DNA's Table 6)."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxser.losses._common import masked_mean


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
  new = momentum * tau + (1.0 - momentum) * masked_mean(conf, mask)
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


THRESHOLDS = ('adaptive', 'fixed', 'none')


def confidence_threshold(tau: jnp.ndarray, probs: jnp.ndarray, mode: str, *,
                         fixed: float = 0.9,
                         momentum: float = 0.999) -> jnp.ndarray:
  """This step's pseudo-label threshold (Emo-DNA Table 6's three settings).

    adaptive  the EMA of eq. 6 (`ema_threshold_update` of the previous tau),
    fixed     the constant `fixed` (the paper's Table 6: 0.9),
    none      0: every target row is confident.

  Returns the threshold, which is also the next step's `tau` state.
  """
  if mode == 'adaptive':
    return ema_threshold_update(tau, probs, momentum=momentum)
  if mode == 'fixed':
    return jnp.full_like(tau, fixed)
  if mode == 'none':
    return jnp.zeros_like(tau)
  raise ValueError(f'unknown threshold {mode!r}; known: '
                   f'{", ".join(THRESHOLDS)}')
