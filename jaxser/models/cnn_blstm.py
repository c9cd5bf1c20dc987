"""DIFL's segment network: a CNN-BLSTM on 32 x 129 spectrogram segments
(DIFL section 2 and Fig. 1; "parameters similar to Satt et al. 2017").

Inputs are utterances as the `spec_segments` feature set stores them:
(batch, S, time, freq) segments and the number of valid segments of each
utterance. The network runs on every segment of the batch at once (the
(batch, S) axes flattened) and returns per-segment outputs; padding segments
are computed but masked: they take no part in the batch-norm statistics (so
an utterance's padding never shifts the normalisation) nor in any loss, and
the utterance prediction averages the posteriors of the valid segments only
(`jaxser.models.classifier.average_frame_posteriors`). Registered as the
network `cnn_blstm` (`SegmentNetwork`): its segments are its frame sequence.

DIFL gives no layer sizes beyond pointing at Satt et al.; the sizes here are
ours (each a config field, `config.model.cnn_blstm.*`): 3 x [Conv 3x3 -> BN
-> ReLU -> Dropout -> MaxPool] with 16, 32, 64 channels, pooling time 2, 2,
1 and frequency 2, 2, 2 (32 x 129 -> 8 x 16), a BLSTM of 128 cells per
direction over the 8 remaining time steps, its outputs averaged over time,
then a linear Dense: the feature G(x, theta) that the emotion classifier, the
center loss and DIFL's domain heads share. G has no ReLU
(`embed_activation='none'`, as the linear feature layer center loss is
usually applied to): with DIFL's lambda = 0.5 the center loss pulls every
feature towards the zero-initialised centres from the first step, and a
ReLU feature layer died under that pull within 10 steps on the synthetic
corpora (CE stuck at log 4), while the linear one kept training.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxser.models import cnn_tcn
from jaxser.models import layers


def flatten_segments(x: jnp.ndarray) -> jnp.ndarray:
  """(B, S, ...) -> (B * S, ...): every segment is a sample."""
  return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


class SegmentEncoder(nn.Module):
  """G: (N, time, freq) segments -> (N, embed_dim) features.

  `mask` (N,) marks the segments that count in the batch-norm statistics.
  """
  conv_features: Sequence[int] = (16, 32, 64)
  kernel_size: int = 3
  time_pool: Sequence[int] = (2, 2, 1)
  freq_pool: Sequence[int] = (2, 2, 2)
  lstm_hidden: int = 128
  embed_dim: int = 128
  dropout: float = 0.1
  embed_activation: str = 'none'

  def __post_init__(self):
    # Checked on construction, so a bad config fails before any tracing.
    if not len(self.conv_features) == len(self.time_pool) == len(
        self.freq_pool):
      raise ValueError('config.model.cnn_blstm: conv_features, time_pool and '
                       'freq_pool must have one entry per conv block, got '
                       f'{self.conv_features}, {self.time_pool}, '
                       f'{self.freq_pool}')
    if self.embed_activation not in ('none', 'relu'):
      raise ValueError('config.model.cnn_blstm.embed_activation: unknown '
                       f'activation {self.embed_activation!r}; known: none, '
                       'relu')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, mask, *, train: bool):
    x = x[..., None]  # (N, time, freq, 1): one input channel.
    bn_mask = jnp.reshape(mask, (-1, 1, 1, 1))
    for ch, tp, fp in zip(self.conv_features, self.time_pool,
                          self.freq_pool):
      x = nn.Conv(ch, (self.kernel_size, self.kernel_size), padding='SAME')(x)
      # PyTorch's batch-norm defaults, as the other networks here.
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       epsilon=1e-5)(
                           x, mask=jnp.broadcast_to(bn_mask, x.shape))
      x = nn.relu(x)
      x = layers.Dropout(self.dropout, deterministic=not train)(x)
      x = layers.max_pool(x, (tp, fp))
    # (N, time', freq' * channels): one BLSTM step per remaining time step.
    x = x.reshape(x.shape[:2] + (-1,))
    y = nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(self.lstm_hidden)),
                         nn.RNN(nn.OptimizedLSTMCell(self.lstm_hidden)))(x)
    y = jnp.mean(y, axis=1)
    y = layers.Dropout(self.dropout, deterministic=not train)(y)
    y = nn.Dense(self.embed_dim)(y)
    if self.embed_activation == 'relu':
      y = nn.relu(y)
    return y


class SegmentNetwork(nn.Module):
  """G applied to every segment of a batch (registered as `cnn_blstm`).

  The fields are G's (`SegmentEncoder`, its parameters under 'encoder').
  On (B, S, time, freq) utterances with their numbers of valid segments it
  returns {'frames': G of each segment (B, S, d), 'frame_lengths': the
  valid segments, 'embedding': the mean of the valid segments' G (B, d)}:
  the segments are the network's frame sequence, and the network predicts
  an utterance from the mean posterior of its segments
  (`predict_from_frames`), each segment classified by the emotion head.
  """
  conv_features: Sequence[int] = (16, 32, 64)
  kernel_size: int = 3
  time_pool: Sequence[int] = (2, 2, 1)
  freq_pool: Sequence[int] = (2, 2, 2)
  lstm_hidden: int = 128
  embed_dim: int = 128
  dropout: float = 0.1
  embed_activation: str = 'none'

  def __post_init__(self):
    self._encoder(parent=None)  # G checks its fields on construction.
    super().__post_init__()

  def _encoder(self, **kwargs) -> SegmentEncoder:
    return SegmentEncoder(
        conv_features=tuple(self.conv_features), kernel_size=self.kernel_size,
        time_pool=tuple(self.time_pool), freq_pool=tuple(self.freq_pool),
        lstm_hidden=self.lstm_hidden, embed_dim=self.embed_dim,
        dropout=self.dropout, embed_activation=self.embed_activation,
        **kwargs)

  @nn.compact
  def __call__(self, x, lengths, *, train: bool):
    b, s = x.shape[:2]
    mask = cnn_tcn.time_mask(lengths, s)
    # Built here rather than passed in as a field: a field module of a
    # module whose scope is shared (EmotionModel) draws other init RNGs.
    f = self._encoder(name='encoder')(
        flatten_segments(x), flatten_segments(mask > 0),
        train=train).reshape((b, s, -1))
    return {'frames': f, 'frame_lengths': lengths,
            'embedding': cnn_tcn.masked_mean(f, mask)}


def from_config(options) -> SegmentNetwork:
  """The network of `config.model.cnn_blstm`."""
  return SegmentNetwork(
      conv_features=tuple(options.conv_features),
      kernel_size=options.kernel_size, time_pool=tuple(options.time_pool),
      freq_pool=tuple(options.freq_pool), lstm_hidden=options.lstm_hidden,
      embed_dim=options.embed_dim, dropout=options.dropout,
      embed_activation=options.embed_activation)
