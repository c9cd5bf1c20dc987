"""Helpers shared by the loss families (private to `jaxser.losses`)."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

# Full float32 matmuls: these products feed distance expansions with
# cancellation and logits divided by temperatures as small as 0.01, where
# TF32/bf16 passes (the GPU/TPU default) would cost whole units of a logit.
HIGHEST = jax.lax.Precision.HIGHEST


def matmul(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  return jnp.matmul(a, b, precision=HIGHEST)


# Fill value for logits that must not count in a softmax. Large and negative
# but finite: -inf would give NaN gradients (inf - inf) in rows where every
# entry is excluded.
NEG = -1e9


def masked_mean(values: jnp.ndarray, mask: Optional[jnp.ndarray]):
  """sum(mask * values) / max(sum(mask), 1); plain mean when mask is None."""
  if mask is None:
    return jnp.mean(values)
  mask = mask.astype(values.dtype)
  return jnp.sum(mask * values) / jnp.maximum(jnp.sum(mask), 1.0)


def safe_div(num: jnp.ndarray, den: jnp.ndarray) -> jnp.ndarray:
  """num / den, and 0 where den == 0 (with finite gradients)."""
  ok = den != 0
  return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)
