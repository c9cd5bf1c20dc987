"""The MMD-SER network: 2D CNN + bidirectional GRU on log-mel spectra (Cai et
al., ICASSP 2021, section 3.1.1).

  log-mel (T, F) -> 4 x [Conv2D -> ReLU (-> MaxPool 2x2)] -> (T/16, F/16 * 96)
  -> BiGRU, last hidden state of each direction -> E (256)
  -> Dense 64 -> PReLU -> Dropout -> Dense num_classes.

The paper gives the layer counts only; sizes, strides and pooling follow the
authors' released code (`MMDModel2` in thuhcsi/icassp2021-emotion-tts):
kernels 7x7 (stride 2), 3x3, 3x3, 3x3 with 48, 64, 80, 96 filters, 2x2 max
pooling after layers 2-4, no batch norm (`is_bn: False` in their configs), a
128-unit GRU per direction, and a 64-unit PReLU hidden layer with dropout 0.5
after it (`config.model.cnn_gru.*`).

Registered as the network `cnn_gru` (`jaxser.models.registry`): `CNNGRU` is
the CNN + BiGRU up to E (the utterance embedding; the CNN's output is its
frame sequence) and `MLPHead` its classifier, which every method on this
network uses as its emotion head.

Padding: features are padded at the end to a fixed number of frames. With
`masked=True` (the reference's `is_var_cnn_mask`) every conv output is zeroed
past the utterance's valid frames, so 'SAME' convolutions near the end see
zeros as at any border, and the GRU runs over the valid frames only: its
forward state is the one at the last valid frame, its backward state the one
after reading back to frame 0. Outputs then do not depend on the padding.
`masked=False` treats padding frames as input.

Differences from the reference, by choice: the two GRU directions have their
own weights (the reference passes one cell object to both directions, which
in TF 1 shares them; the paper says "a bidirectional GRU"), and flax's GRU
cell applies the reset gate after the recurrent matmul (as cuDNN/PyTorch do)
where TF's `GRUCell` applies it before.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxser.models import cnn_tcn
from jaxser.models import layers


class PReLU(nn.Module):
  """max(x, 0) + a * min(x, 0) with one learned slope a per unit, a_0 = 0.

  Keras's `PReLU()` defaults (the reference's classifier), unlike
  `nn.PReLU`'s single slope starting at 0.01.
  """

  @nn.compact
  def __call__(self, x):
    slope = self.param('slope', nn.initializers.zeros, (x.shape[-1],),
                       x.dtype)
    return jnp.where(x >= 0, x, slope * x)


class CNNEncoder(nn.Module):
  """Conv2D stack over (time, frequency), flattened to a frame sequence.

  Each layer: Conv2D 'SAME' with the layer's kernel and stride -> (mask past
  the valid frames) -> ReLU -> (2x2 max pooling, stride 2, 'VALID'); with
  masking the input is masked too.
  Valid lengths follow TensorFlow's arithmetic, as in the reference:
  ceil(n / stride) for a convolution, floor(n / 2) for a pooling (at least 1).

  Returns ((batch, frames', freq' * channels), lengths').
  """
  features: Sequence[int] = (48, 64, 80, 96)
  kernel_sizes: Sequence[int] = (7, 3, 3, 3)
  strides: Sequence[int] = (2, 1, 1, 1)
  pool: Sequence[bool] = (False, True, True, True)
  masked: bool = True

  @nn.compact
  def __call__(self, x, lengths):
    if not (len(self.features) == len(self.kernel_sizes) == len(self.strides)
            == len(self.pool)):
      raise ValueError('CNNEncoder: features, kernel_sizes, strides and pool '
                       'need one entry per layer')
    x = x[..., None]  # (batch, time, freq, 1)
    if self.masked:  # The pipeline pads with zeros; other callers need not.
      x = x * cnn_tcn.time_mask(lengths, x.shape[1])[:, :, None, None]
    for feats, k, s, pool in zip(self.features, self.kernel_sizes,
                                 self.strides, self.pool):
      x = nn.Conv(feats, (k, k), strides=(s, s), padding='SAME')(x)
      lengths = (lengths - 1) // s + 1
      if self.masked:
        x = x * cnn_tcn.time_mask(lengths, x.shape[1])[:, :, None, None]
      x = nn.relu(x)
      if pool:
        # floor(n / 2) frames stay valid; with n odd the frame past them
        # holds the last valid one (real input, not padding), unmasked as in
        # the reference.
        x = layers.max_pool(x, (2, 2))
        lengths = jnp.maximum(lengths // 2, 1)
    b, t, f, c = x.shape
    return x.reshape(b, t, f * c), lengths


class BiGRUEncoder(nn.Module):
  """Bidirectional GRU; E = [forward final state; backward final state]."""
  hidden: int = 128
  masked: bool = True

  @nn.compact
  def __call__(self, x, lengths):
    (fwd, bwd), _ = nn.Bidirectional(
        nn.RNN(nn.GRUCell(self.hidden)), nn.RNN(nn.GRUCell(self.hidden)),
        return_carry=True)(x, seq_lengths=lengths if self.masked else None)
    return jnp.concatenate([fwd, bwd], axis=-1)


class CNNGRU(nn.Module):
  """MMD-SER's encoder (registered as `cnn_gru`): CNNEncoder -> BiGRU.

  Returns {'embedding': E (B, 2 gru_hidden), the feature MMD aligns;
  'frames', 'frame_lengths': the CNN's output sequence} (with `masked=False`
  every frame counts as valid).
  """
  conv_features: Sequence[int] = (48, 64, 80, 96)
  conv_kernel_sizes: Sequence[int] = (7, 3, 3, 3)
  conv_strides: Sequence[int] = (2, 1, 1, 1)
  conv_pool: Sequence[bool] = (False, True, True, True)
  gru_hidden: int = 128
  masked: bool = True

  @nn.compact
  def __call__(self, x, lengths, *, train: bool):
    del train  # No dropout or batch norm before the head.
    h, h_len = CNNEncoder(self.conv_features, self.conv_kernel_sizes,
                          self.conv_strides, self.conv_pool, self.masked,
                          name='cnn')(x, lengths)
    e = BiGRUEncoder(self.gru_hidden, self.masked, name='gru')(h, h_len)
    if not self.masked:
      h_len = jnp.full_like(h_len, h.shape[1])
    return {'embedding': e, 'frames': h, 'frame_lengths': h_len}


class MLPHead(nn.Module):
  """MMD-SER's classifier on E: Dense fc_hidden (`fc1`) -> PReLU -> Dropout
  -> Dense num_classes (`emotion_head`)."""
  num_classes: int
  fc_hidden: int = 64
  dropout: float = 0.5

  @nn.compact
  def __call__(self, e, *, train: bool):
    y = PReLU()(nn.Dense(self.fc_hidden, name='fc1')(e))
    y = layers.Dropout(self.dropout, deterministic=not train)(y)
    return nn.Dense(self.num_classes, name='emotion_head')(y)


def from_config(options) -> CNNGRU:
  """The network of `config.model.cnn_gru`."""
  return CNNGRU(conv_features=tuple(options.conv_features),
                conv_kernel_sizes=tuple(options.conv_kernel_sizes),
                conv_strides=tuple(options.conv_strides),
                conv_pool=tuple(options.conv_pool),
                gru_hidden=options.gru_hidden, masked=options.masked_pooling)


def head_from_config(options, num_classes: int) -> MLPHead:
  """The classifier of `config.model.cnn_gru`."""
  return MLPHead(num_classes, fc_hidden=options.fc_hidden,
                 dropout=options.dropout)
