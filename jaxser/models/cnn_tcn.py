"""The Emo-DNA network pieces: CNN backbone, TCN emotion encoder, BiLSTM corpus
encoder and projection head (Emo-DNA section 4.1, "Implementation details").

Inputs are (batch, frames, dims) feature sequences with their true lengths.
The backbone halves the time axis three times (300 -> 37 frames); pooled
means over time only count the frames that came from real input (a choice of
ours: the paper does not say how padding is treated; `masked_pooling=False`
gives the plain mean). `CNNTCN` (backbone + TCN) is the registered network
`cnn_tcn` (`config.model.cnn_tcn.*`).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxser.models import layers


def _batch_norm(train: bool) -> nn.BatchNorm:
  # PyTorch's defaults (momentum 0.1 on the new value, eps 1e-5), as the
  # paper's implementation used.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5)


def time_mask(lengths: jnp.ndarray, frames: int) -> jnp.ndarray:
  """(batch, frames) float mask of the frames below each length."""
  return (jnp.arange(frames)[None, :] < lengths[:, None]).astype(jnp.float32)


def masked_mean(x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """Mean over axis 1 of (batch, time, dims) counting frames where mask = 1."""
  total = jnp.einsum('btd,bt->bd', x, mask)
  return total / jnp.maximum(mask.sum(axis=1, keepdims=True), 1.0)


class Backbone(nn.Module):
  """num_blocks x [Conv1D k=3 same -> BN -> ReLU -> Dropout -> MaxPool 2]."""
  features: int = 64
  num_blocks: int = 3
  kernel_size: int = 3
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x, lengths, *, train: bool):
    for _ in range(self.num_blocks):
      x = nn.Conv(self.features, (self.kernel_size,), padding='SAME')(x)
      x = _batch_norm(train)(x)
      x = nn.relu(x)
      x = layers.Dropout(self.dropout, deterministic=not train)(x)
      x = layers.max_pool(x, (2,))
      lengths = jnp.maximum(lengths // 2, 1)
    return x, lengths


class TemporalBlock(nn.Module):
  """Residual TCN block (Bai et al. 2018) with batch norm instead of weight
  norm, as Emo-DNA describes: 2 x [causal dilated Conv1D -> BN -> ReLU ->
  Dropout] added to the block input."""
  features: int = 64
  kernel_size: int = 2
  dilation: int = 1
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x, *, train: bool):
    y = x
    for _ in range(2):
      # Causal: pad only on the left by (kernel - 1) * dilation.
      y = nn.Conv(self.features, (self.kernel_size,),
                  kernel_dilation=(self.dilation,),
                  padding=(((self.kernel_size - 1) * self.dilation, 0),))(y)
      y = _batch_norm(train)(y)
      y = nn.relu(y)
      y = layers.Dropout(self.dropout, deterministic=not train)(y)
    if x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1,))(x)
    return nn.relu(x + y)


class TCNEncoder(nn.Module):
  """Emotion encoder: residual TCN blocks, mean over time, Dense -> E."""
  features: int = 64
  dilations: Sequence[int] = (1, 2, 4, 8, 16)
  kernel_size: int = 2
  dropout: float = 0.1
  out_dim: int = 128
  masked_pooling: bool = True

  @nn.compact
  def __call__(self, x, lengths, *, train: bool):
    for d in self.dilations:
      x = TemporalBlock(self.features, self.kernel_size, d, self.dropout)(
          x, train=train)
    mask = (time_mask(lengths, x.shape[1]) if self.masked_pooling
            else jnp.ones(x.shape[:2]))
    return nn.Dense(self.out_dim)(masked_mean(x, mask))


class BiLSTMEncoder(nn.Module):
  """Corpus encoder: bidirectional LSTM, mean over time -> C (2 x hidden)."""
  hidden: int = 64
  masked_pooling: bool = True

  @nn.compact
  def __call__(self, x, lengths, *, train: bool):
    del train
    seq_lengths = lengths if self.masked_pooling else None
    y = nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(self.hidden)),
                         nn.RNN(nn.OptimizedLSTMCell(self.hidden)))(
                             x, seq_lengths=seq_lengths)
    mask = (time_mask(lengths, x.shape[1]) if self.masked_pooling
            else jnp.ones(x.shape[:2]))
    return masked_mean(y, mask)


class ProjectionHead(nn.Module):
  """g: Dense -> ReLU -> Dense -> L2-normalise."""
  hidden: int = 128
  out_dim: int = 128

  @nn.compact
  def __call__(self, x):
    x = nn.Dense(self.out_dim)(nn.relu(nn.Dense(self.hidden)(x)))
    # sqrt(max(|x|^2, eps^2)), not max(|x|, eps): the norm's gradient at
    # x = 0 is 0/0, which max() would still multiply into the gradient.
    return x / jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True),
                                    1e-24))


class CNNTCN(nn.Module):
  """The Emo-DNA emotion network (registered as `cnn_tcn`): the CNN backbone
  E and the TCN emotion encoder E_e, on (batch, frames, dims) features.

  Returns {'embedding': E_e(E(x)) (B, embed_dim), 'frames': E(x) (B, T / 8,
  channels), 'frame_lengths'} (with `masked_pooling=False` every frame
  counts as valid). Every UDA baseline and the source-only model share it
  (Emo-DNA compares all methods on E + E_e); Emo-DNA's corpus encoder reads
  its frames.
  """
  channels: int = 64
  dilations: Sequence[int] = (1, 2, 4, 8, 16)
  embed_dim: int = 128
  dropout: float = 0.1
  masked_pooling: bool = True
  # The backbone's parameter name: 'Backbone_0' in the single-encoder
  # methods, 'backbone' in Emo-DNA, as when each method built its own
  # network (so their parameters are initialised as they were, and their
  # checkpoints restore).
  backbone_name: str = 'Backbone_0'

  @nn.compact
  def __call__(self, x, lengths, *, train: bool):
    h, h_len = Backbone(self.channels, dropout=self.dropout,
                        name=self.backbone_name)(x, lengths, train=train)
    if not self.masked_pooling:
      h_len = jnp.full_like(h_len, h.shape[1])
    e = TCNEncoder(self.channels, tuple(self.dilations), dropout=self.dropout,
                   out_dim=self.embed_dim, masked_pooling=self.masked_pooling,
                   name='emotion_encoder')(h, h_len, train=train)
    return {'embedding': e, 'frames': h, 'frame_lengths': h_len}


def from_config(options) -> CNNTCN:
  """The network of `config.model.cnn_tcn`."""
  return CNNTCN(channels=options.channels, dilations=tuple(options.dilations),
                embed_dim=options.embed_dim, dropout=options.dropout,
                masked_pooling=options.masked_pooling)
