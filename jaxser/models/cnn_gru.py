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
(the config's `model.dropout`) after it.

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


class CNNGRUNet(nn.Module):
  """MMD-SER's SER model. Returns (logits, E), E the encoder output that
  MMD aligns."""
  num_classes: int
  conv_features: Sequence[int] = (48, 64, 80, 96)
  conv_kernel_sizes: Sequence[int] = (7, 3, 3, 3)
  conv_strides: Sequence[int] = (2, 1, 1, 1)
  conv_pool: Sequence[bool] = (False, True, True, True)
  gru_hidden: int = 128
  fc_hidden: int = 64
  dropout: float = 0.5
  masked: bool = True

  @nn.compact
  def __call__(self, x, lengths, *, train: bool):
    h, h_len = CNNEncoder(self.conv_features, self.conv_kernel_sizes,
                          self.conv_strides, self.conv_pool, self.masked,
                          name='cnn')(x, lengths)
    e = BiGRUEncoder(self.gru_hidden, self.masked, name='gru')(h, h_len)
    y = PReLU()(nn.Dense(self.fc_hidden, name='fc1')(e))
    y = layers.Dropout(self.dropout, deterministic=not train)(y)
    return nn.Dense(self.num_classes, name='emotion_head')(y), e


def configure(c) -> None:
  """Sets the data, optimiser and network fields of an experiment config to
  MMD-SER's (configs/mmd_ser.py and its baseline share them).

  Where the paper is silent the values are those of the authors' released
  code (thuhcsi/icassp2021-emotion-tts, `ser2tts_cfg/iemo2bc.yml`,
  `MMDModel2`).
  """
  # "80-dimension log mel spectrum" (the code used 128 bands: logmel128).
  c.data.features = 'logmel80'
  # The code standardises each mel band by its corpus's mean and standard
  # deviation over all frames (`prepare_data_util.norm`).
  c.data.normalize = 'corpus_zscore'
  # The code centre-crops to 1400 frames (14 s, the paper's TTS length
  # limit) and pads batches only to their longest utterance; here every
  # utterance is padded to `frames`, so 300 (3 s, as the other methods)
  # costs ~1/5 of 1400. --config.data.frames=1400 reproduces the code; the
  # network accepts any length, and `jaxser.label --frames` may label with
  # another.
  c.data.frames = 300

  # Batch size 96 per domain (the code draws 96 source and 96 target
  # utterances a step); Adam at 3e-5 for 100 steps then 3e-4 (section 4.2);
  # gradients clipped to global norm 5 (the code).
  c.train.batch_size = 96
  c.train.optimizer = 'adam'
  c.train.learning_rate = 3e-4
  c.train.warmup_steps = 100
  c.train.warmup_learning_rate = 3e-5
  c.train.grad_clip = 5.0
  # The code trains up to 15000 steps and early-stops on 500 held-out source
  # utterances; the loop has no early stopping: the base config's steps stay.

  c.model.conv_features = (48, 64, 80, 96)
  c.model.conv_kernel_sizes = (7, 3, 3, 3)
  c.model.conv_strides = (2, 1, 1, 1)
  c.model.conv_pool = (False, True, True, True)
  c.model.gru_hidden = 128
  c.model.fc_hidden = 64
  c.model.dropout = 0.5  # After the PReLU hidden layer (keep prob 0.5).
  c.model.masked_pooling = True  # Padding frames masked in CNN and GRU.
