"""Layers every jaxser network shares, written for speed on every backend.

`Dropout` and `max_pool` replace flax's `nn.Dropout` and `nn.max_pool` in the
models. max_pool computes the same values as flax's; Dropout the same
function with other random masks. They differ in how:

- Dropout: flax draws one threefry-2x32 word per element, and on CPU those
  random bits were the largest single cost of the Emo-DNA train step (30 ms
  of threefry for one 128 x 300 x 64 activation on one core, about a third
  of the step over all dropout layers). Here threefry draws only a 64-bit
  seed per layer and call; the per-element bits come from a counter-based
  hash of the element index keyed by that seed (two rounds of murmur3's
  32-bit finaliser, each a bijection with full avalanche), about 50x
  cheaper. A mask is a deterministic function of (key, shape), so it is the
  same on 1 or 8 devices: the index is a global iota, partitioned like any
  other op. The keep test uses all 32 bits, so the rate is exact to 2^-32.
- max_pool: for non-overlapping windows (window = stride, VALID padding, the
  only pooling the papers use) the max of the window's strided slices gives
  the same values as `lax.reduce_window`, and its gradient is an elementwise
  select and a strided pad, where reduce_window's is `select_and_scatter`:
  on CPU the gradient of the first Emo-DNA pool took 64 ms, now 1.2 ms. Ties
  split the gradient between the tied elements instead of giving it to the
  first; after ReLU the ties are zeros whose upstream gradient is zero
  either way. (Reshaping to (..., n / w, w, ...) and reducing the window
  axis is as fast, but its gradient came out wrong under an 8-device batch
  sharding on XLA:CPU in jax 0.10.2; test_train's sharded-step test caught
  it.)
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def fmix32(h: jnp.ndarray) -> jnp.ndarray:
  """murmur3's 32-bit finaliser: a bijection on uint32 with full avalanche."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def hashed_bits(key: jax.Array, shape: Sequence[int]) -> jnp.ndarray:
  """uint32 bits of `shape`: fmix32(fmix32(index + s0) ^ s1), s0 and s1 two
  threefry words drawn from `key`.

  The second seed word enters after a full mixing round, so two keys give
  masks that are not shifted copies of each other (which a single additive
  seed would allow).
  """
  size = math.prod(shape)
  if size > 2**32:
    raise ValueError(f'hashed_bits: {size} elements overflow the 32-bit '
                     'element index')
  s0, s1 = jax.random.bits(key, (2,), jnp.uint32)
  index = jax.lax.iota(jnp.uint32, size).reshape(shape)
  return fmix32(fmix32(index + s0) ^ s1)


class Dropout(nn.Module):
  """Inverted dropout: zero each element with probability `rate` and scale the
  kept ones by 1 / (1 - rate). Draws from the 'dropout' RNG stream."""
  rate: float
  deterministic: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if self.deterministic or self.rate == 0.0:
      return x
    if self.rate >= 1.0:
      return jnp.zeros_like(x)
    # keep <=> bits >= threshold, so P(keep) = 1 - threshold / 2^32.
    threshold = min(round(self.rate * 2**32), 2**32 - 1)
    keep = hashed_bits(self.make_rng('dropout'), x.shape) >= jnp.uint32(
        threshold)
    scale = jnp.asarray(1.0 / (1.0 - threshold / 2**32), x.dtype)
    return jnp.where(keep, x * scale, jnp.zeros((), x.dtype))


def max_pool(x: jnp.ndarray, window: Sequence[int]) -> jnp.ndarray:
  """Max over non-overlapping windows of the axes between batch and channels.

  x: (batch, *spatial, channels); window: one size per spatial axis. A spatial
  size that the window does not divide is cut down first (VALID padding), as
  `nn.max_pool(x, window, strides=window)` does.
  """
  spatial = x.shape[1:-1]
  if len(window) != len(spatial):
    raise ValueError(f'window {tuple(window)} does not match the spatial '
                     f'shape {spatial}')
  # Separable: the max over a rectangle is the max over each axis in turn.
  for axis, (n, w) in enumerate(zip(spatial, window), start=1):
    if w == 1:
      continue
    m = n // w
    if m == 0:
      # Would leave an empty axis that fails later, far from the cause.
      raise ValueError(f'max_pool: spatial axis {axis} of size {n} is '
                       f'shorter than its window {w} (input shape '
                       f'{x.shape}); too few frames for this network?')
    offsets = [jax.lax.slice_in_dim(x, k, k + (m - 1) * w + 1, stride=w,
                                    axis=axis) for k in range(w)]
    x = functools.reduce(jnp.maximum, offsets)
  return x
