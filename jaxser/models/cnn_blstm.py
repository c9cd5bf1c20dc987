"""DIFL's segment network: a CNN-BLSTM on 32 x 129 spectrogram segments
(DIFL section 2 and Fig. 1; "parameters similar to Satt et al. 2017").

Inputs are utterances as the `spec_segments` feature set stores them:
(batch, S, time, freq) segments and the number of valid segments of each
utterance. The network runs on every segment of the batch at once (the
(batch, S) axes flattened) and returns per-segment outputs; padding segments
are computed but masked: they take no part in the batch-norm statistics (so
an utterance's padding never shifts the normalisation) nor in any loss, and
the utterance prediction averages the posteriors of the valid segments only
(`average_segment_posteriors`).

DIFL gives no layer sizes beyond pointing at Satt et al.; the sizes here are
ours (each a config field, `config.model.*`): 3 x [Conv 3x3 -> BN -> ReLU ->
Dropout -> MaxPool] with 16, 32, 64 channels, pooling time 2, 2, 1 and
frequency 2, 2, 2 (32 x 129 -> 8 x 16), a BLSTM of 128 cells per direction
over the 8 remaining time steps, its outputs averaged over time, then a
linear Dense: the feature G(x, theta) that the emotion classifier, the
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
import jax
import jax.numpy as jnp

from jaxser.models import cnn_tcn
from jaxser.models import layers


def average_segment_posteriors(segment_logits: jnp.ndarray,
                               mask: jnp.ndarray) -> jnp.ndarray:
  """Utterance log-posteriors from segment logits.

    log p(y | u) = log( sum_s m_s softmax(z_s)_y / max(sum_s m_s, 1) ),

  the log of the mean posterior of the utterance's valid segments (m_s = 1);
  DIFL predicts an utterance from its segments this way. Its argmax is the
  utterance prediction. Rows with no valid segment give log(tiny), finite.

  Args:
    segment_logits: (B, S, C) per-segment logits.
    mask: (B, S) bool or 0/1, the valid segments.

  Returns:
    (B, C) log of the mean segment posterior.
  """
  m = mask.astype(segment_logits.dtype)[..., None]
  p = jnp.sum(jax.nn.softmax(segment_logits, axis=-1) * m, axis=1)
  p = p / jnp.maximum(jnp.sum(m, axis=1), 1.0)
  return jnp.log(jnp.maximum(p, jnp.finfo(p.dtype).tiny))


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
      raise ValueError('config.model: conv_features, time_pool and freq_pool '
                       'must have one entry per conv block, got '
                       f'{self.conv_features}, {self.time_pool}, '
                       f'{self.freq_pool}')
    if self.embed_activation not in ('none', 'relu'):
      raise ValueError('config.model.embed_activation: unknown activation '
                       f'{self.embed_activation!r}; known: none, relu')
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


class SegmentEmotionNet(nn.Module):
  """G + the emotion classifier, applied to every segment of a batch.

  `encoder` is G (a SegmentEncoder, its parameters under 'encoder').
  `__call__(x, lengths)` on (B, S, time, freq) utterances returns
  {'logits': (B, S, C), 'features': (B, S, d), 'mask': (B, S) bool};
  `classify` returns the (B, C) utterance log-posteriors.
  """
  num_classes: int
  encoder: SegmentEncoder

  def setup(self):
    self.emotion_head = nn.Dense(self.num_classes)

  def __call__(self, x, lengths, *, train: bool):
    b, s = x.shape[:2]
    mask = cnn_tcn.time_mask(lengths, s) > 0
    f = self.encoder(flatten_segments(x), flatten_segments(mask),
                     train=train)
    logits = self.emotion_head(f)
    return {'logits': logits.reshape((b, s, -1)),
            'features': f.reshape((b, s, -1)), 'mask': mask}

  def classify(self, x, lengths):
    out = self(x, lengths, train=False)
    return average_segment_posteriors(out['logits'], out['mask'])


def from_config(num_classes: int, model_cfg) -> SegmentEmotionNet:
  """The SegmentEmotionNet of `config.model` (fields as in configs/difl.py)."""
  return SegmentEmotionNet(num_classes, SegmentEncoder(
      conv_features=tuple(model_cfg.conv_features),
      kernel_size=model_cfg.kernel_size,
      time_pool=tuple(model_cfg.time_pool),
      freq_pool=tuple(model_cfg.freq_pool),
      lstm_hidden=model_cfg.lstm_hidden, embed_dim=model_cfg.embed_dim,
      dropout=model_cfg.dropout,
      embed_activation=model_cfg.get('embed_activation', 'none')))


def check_features(data_cfg) -> None:
  """The CNN-BLSTM reads segment features; other feature sets are an error."""
  if data_cfg.features != 'spec_segments':
    raise ValueError('config.data.features: the cnn_blstm backbone reads '
                     "'spec_segments' (S x 32 x 129 segments), got "
                     f'{data_cfg.features!r}')


def configure(c) -> None:
  """Sets DIFL's input features, CNN-BLSTM and optimiser in config `c`.

  Shared by configs/difl.py and configs/difl_source_only.py, so that DIFL
  and its baseline differ only in the losses.
  """
  c.data.features = 'spec_segments'  # 23 x 32 x 129 segments per utterance.
  c.model.backbone = 'cnn_blstm'
  c.model.conv_features = (16, 32, 64)  # Channels of the conv blocks (ours).
  c.model.kernel_size = 3  # 3 x 3 convolutions (ours).
  c.model.time_pool = (2, 2, 1)  # Max-pool over time per block: 32 -> 8.
  c.model.freq_pool = (2, 2, 2)  # Max-pool over frequency: 129 -> 16.
  c.model.lstm_hidden = 128  # BLSTM cells per direction (ours).
  c.model.embed_dim = 128  # Size of G(x, theta) (ours).
  c.model.embed_activation = 'none'  # After G's Dense: none | relu.
  # DIFL: Adadelta; its learning rate is not given: 1.0 is Adadelta's own
  # (Zeiler 2012) and PyTorch's default.
  c.train.optimizer = 'adadelta'
  c.train.learning_rate = 1.0
  # DIFL's mini-batch is 128, most likely segments; a step here takes whole
  # utterances (every valid segment of each is a sample), and 16 utterances
  # per corpus give 128 segments or more once utterances last 1.2 s.
  c.train.batch_size = 16
