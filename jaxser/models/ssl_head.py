"""A small head on cached self-supervised features (the `ssl` feature set),
registered as `ssl_head` (SUPERB / EmoBox downstream):

  x (B, K, H) layer means       (pool 'mean')  or
  x (B, T, K, H) frame features (pool 'none'), lengths (B,) valid frames
    -> [LayerNorm over H per layer, without parameters, if `layer_norm`]
    -> h = sum_k softmax(w)_k x_k      learned layer weights w (K,), from 0
    -> u = mean of h over the valid frames (pool 'none'; 'mean' is pooled)
    -> E = [Dense(hidden) -> ReLU -> Dropout] x depth (u)      (B, hidden)

'frames' is the same MLP on every frame of h (B, T, hidden), with
'frame_lengths' the valid frames, so frame-sequence methods (Emo-DNA) run on
it; with pool 'mean' it is one frame per utterance (E itself). The lengths
the cache stores for pool 'mean' (K: every layer row is valid) are not
frames and are not read.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxser.models import layers
from jaxser.models import transformer_blocks as tb


class SSLHead(nn.Module):
  """Cached encoder layers -> utterance embedding (module docstring)."""
  hidden: int = 256
  depth: int = 1
  dropout: float = 0.1
  layer_norm: bool = False

  def __post_init__(self):
    # Checked on construction, so a bad config fails before any tracing.
    for field, value in (('hidden', self.hidden), ('depth', self.depth)):
      if (not isinstance(value, int) or isinstance(value, bool)
          or value < 1):
        raise ValueError(f'config.model.ssl_head.{field}: must be a '
                         f'positive int, got {value!r}')
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError('config.model.ssl_head.dropout: must be in [0, 1), '
                       f'got {self.dropout}')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, lengths, *, train: bool):
    if x.ndim == 3:  # (B, K, H) layer means: one "frame" per utterance.
      x = x[:, None]
      lengths = jnp.ones(x.shape[:1], jnp.int32)
    elif x.ndim != 4:
      raise ValueError('ssl_head: expected (batch, layers, hidden) or '
                       '(batch, frames, layers, hidden) ssl features, got '
                       f'shape {tuple(x.shape)}')
    x = x.astype(jnp.float32)
    if self.layer_norm:
      mean = x.mean(axis=-1, keepdims=True)
      var = jnp.square(x - mean).mean(axis=-1, keepdims=True)
      x = (x - mean) * jax.lax.rsqrt(var + 1e-5)
    w = self.param('layer_weights', nn.initializers.zeros, (x.shape[2],),
                   jnp.float32)
    h = jnp.einsum('btkh,k->bth', x, jax.nn.softmax(w))     # (B, T, H)
    t = h.shape[1]
    mask = (jnp.arange(t)[None, :] < lengths[:, None]).astype(jnp.float32)
    pooled = tb.masked_mean(h, mask)                          # (B, H)
    dense = [nn.Dense(self.hidden, name=f'dense_{i}')
             for i in range(self.depth)]
    drop = layers.Dropout(self.dropout, deterministic=not train)

    def mlp(y):
      for d in dense:
        y = drop(nn.relu(d(y)))
      return y
    return {'embedding': mlp(pooled), 'frames': mlp(h),
            'frame_lengths': lengths.astype(jnp.int32)}


def from_config(options) -> SSLHead:
  """The network of `config.model.ssl_head`."""
  return SSLHead(hidden=options.hidden, depth=options.depth,
                 dropout=options.dropout, layer_norm=options.layer_norm)
