"""The fully connected networks of CAEmoCyGAN (Table 2) and its baselines.

Every component is a `FeedForward` stack on utterance-level functionals:

  Enc_S, Enc_T  [D, 1000, 500, 256]   (the code: Dense -> BN -> ReLU)
  Dec_T, Dec_S_i [256, 500, 1000, D]  (output: tanh, the features' [-1, 1]
                                       range after corpus min-max; config
                                       `gan.output_activation`)
  D_S_i, D_T    [D, 1000, 500, 1]     (a logit)
  F_s, F_clf    [D, 500, 100, C]      (logits; F_clf also returns its
                                       100-d hidden layer for CyCADA's
                                       feature discriminator)

Hidden layers are Dense -> BatchNorm -> ReLU (the paper applies batch norm to
all networks and ReLU in the generators and discriminators, sec. 4.2; where
batch norm sits is not said: before the activation, as in DCGAN and the
cycle-GAN reference code). The corpus-aware attention is `CorpusAttention`.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxser import losses

ACTIVATIONS = {'none': lambda x: x, 'relu': nn.relu, 'tanh': jnp.tanh}


class FeedForward(nn.Module):
  """Dense layers of `features` output sizes.

  Hidden layers: Dense -> BatchNorm (if `batch_norm`) -> ReLU. The last
  layer: Dense, then BatchNorm if `batch_norm` and the final activation is
  'relu' (an encoder's code), then `final_activation`. Returns (output, the
  last hidden layer's activations).
  """
  features: Sequence[int]
  final_activation: str = 'none'
  batch_norm: bool = True
  bn_momentum: float = 0.9  # PyTorch's default running-average rate (0.1).

  @nn.compact
  def __call__(self, x, *, train: bool):
    hidden = x
    for i, width in enumerate(self.features):
      last = i == len(self.features) - 1
      norm = self.batch_norm and (not last or self.final_activation == 'relu')
      # A bias before batch norm is cancelled by its mean: no bias (its
      # gradient would be rounding noise, which Adam scales up to lr).
      x = nn.Dense(width, use_bias=not norm, name=f'dense{i}')(x)
      if norm:
        x = nn.BatchNorm(use_running_average=not train,
                         momentum=self.bn_momentum, name=f'bn{i}')(x)
      if not last:
        x = nn.relu(x)
        hidden = x
    return ACTIVATIONS[self.final_activation](x), hidden


class CorpusAttention(nn.Module):
  """Eqs. 8-12: alpha = softmax_i v^T tanh(W (h_s_i || h_t_ref) + b).

  h_cat (B, C, 2H) -> s = tanh(Linear) (B, C, AH) -> v^T s (B, C) -> softmax
  over the C sources. With H = 256 the hidden size is 2H = 512, the
  attention size AH = 128 (Table 2).
  """
  attention_size: int = 128

  @nn.compact
  def __call__(self, h_sources, h_ref):
    """h_sources (B, C, H), h_ref (B, H) -> alpha (B, C)."""
    h_cat = jnp.concatenate(
        [h_sources, jnp.broadcast_to(h_ref[:, None], h_sources.shape)], -1)
    s = jnp.tanh(nn.Dense(self.attention_size, name='score')(h_cat))
    energy = nn.Dense(1, use_bias=False, name='v')(s)[..., 0]
    return losses.corpus_attention_weights(energy)
