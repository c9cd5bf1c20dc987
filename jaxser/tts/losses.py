"""GST-Tacotron 2's training losses (Cai et al. 2021, section 4.2) and the
Noam learning-rate schedule; small pure functions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def frame_mask(lengths: jax.Array, frames: int) -> jax.Array:
  """(B, frames) float mask of the valid frames."""
  return (jnp.arange(frames)[None, :] < lengths[:, None]).astype(jnp.float32)


def masked_l1(pred: jax.Array, target: jax.Array,
              lengths: jax.Array) -> jax.Array:
  """Mean absolute error over the valid frames (mel or linear):

    L = sum_b sum_{t < len_b} sum_f |p_btf - y_btf| / (D sum_b len_b)

  with D the bins per frame; padded frames do not count.
  """
  m = frame_mask(lengths, pred.shape[1])
  err = jnp.sum(jnp.abs(pred - target) * m[..., None])
  return err / (pred.shape[-1] * jnp.maximum(jnp.sum(m), 1.0))


def stop_targets(lengths: jax.Array, steps: int,
                 outputs_per_step: int) -> jax.Array:
  """(B, steps) 1 from the decoder step holding the last valid frame on
  (that step and the padding after it), 0 before."""
  last = (lengths - 1) // outputs_per_step
  return (jnp.arange(steps)[None, :] >= last[:, None]).astype(jnp.float32)


def stop_loss(logits: jax.Array, lengths: jax.Array,
              outputs_per_step: int) -> jax.Array:
  """Stop-token binary cross-entropy over every decoder step, padding
  included (NVIDIA's Tacotron 2 gate loss):

    L = mean_{b,s} BCE(sigmoid(z_bs), 1[s >= (len_b - 1) // r])
  """
  y = stop_targets(lengths, logits.shape[1], outputs_per_step)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))


def emotion_loss(logits: jax.Array, soft_labels: jax.Array,
                 mask: jax.Array) -> jax.Array:
  """Cross-entropy of the emotion predictor against the SER soft labels q
  (rows summing to 1) on the utterances that have them (mask m):

    L = -sum_b m_b sum_c q_bc log softmax(z_b)_c / max(sum_b m_b, 1)
  """
  ce = -jnp.sum(soft_labels * jax.nn.log_softmax(logits, -1), -1)
  m = mask.astype(ce.dtype)
  return jnp.sum(ce * m) / jnp.maximum(jnp.sum(m), 1.0)


def noam_schedule(initial: float, warmup_steps: int,
                  decay_power: float = -0.5) -> optax.Schedule:
  """Tacotron's Noam warm-up (the GST-Tacotron code's `_learning_rate_decay`),
  step counted from 1:

    lr(s) = initial * w^{-p} * min(s * w^{p - 1}, s^p),  p = decay_power

  rising linearly to `initial` at s = w, then decaying as (s / w)^p.
  """
  w = float(warmup_steps)
  p = float(decay_power)

  def schedule(count):
    s = jnp.asarray(count, jnp.float32) + 1.0
    return initial * w ** -p * jnp.minimum(s * w ** (p - 1.0), s ** p)

  return schedule
