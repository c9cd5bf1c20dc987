"""CDAN and CDAN+E: conditional domain-adversarial networks (Long et al.,
NeurIPS 2018) on the emotion network of `config.model`.

DANN (jaxser.methods.dann: same discriminator, loss, gradient reversal and
coefficient schedules) with the discriminator conditioned on the emotion
prediction g = softmax(logits), held constant (`jax.lax.stop_gradient`, as
the reference code's `softmax_output.detach()`):

  T(f, g) = flatten(g f^T)                  (d*C, multilinear map), or
  T(f, g) = (f R_f) * (g R_g) / sqrt(r)     (r, randomized multilinear map),

with R_f (d, r) and R_g (C, r) fixed standard Gaussian matrices, r =
`random_dim`. `randomized` = 'auto' uses the random map when d*C exceeds
`max_multilinear_dim` (the paper: the full map up to 4096 dimensions, else
r = 1024); 'always' / 'never' force one. The random matrices are drawn from
`config.seed` alone (`random_matrices`): the same at every step, after a
resume and in any process, so they need no place in the checkpoint.

The gradient reversal layer sits on f before T rather than after it (the
reference applies it to T(f, g)): T is linear in f with g held constant, so
the gradients are the same.

CDAN+E weights each example's discriminator loss by w = 1 + exp(-H(g)) and,
as the reference code (`loss.CDAN` of thuml/CDAN), normalises the weights to
sum to 1 within each corpus (`losses.domain_adversarial_loss`).
`entropy_gradient` says what reaches the network through H: 'reverse' (the
reference hooks a gradient reversal layer with the same coefficient onto H)
or 'stop' (transfer-learning-library detaches g).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxser import losses
from jaxser.methods import base
from jaxser.methods import dann

RANDOMIZED = ('auto', 'always', 'never')
ENTROPY_GRADIENTS = ('reverse', 'stop')


def random_matrices(seed: int, feature_dim: int, num_classes: int,
                    random_dim: int):
  """R_f (feature_dim, random_dim) and R_g (num_classes, random_dim) ~ N(0, 1),
  a function of the arguments only."""
  k_f, k_g = jax.random.split(jax.random.PRNGKey(seed))
  return (jax.random.normal(k_f, (feature_dim, random_dim)),
          jax.random.normal(k_g, (num_classes, random_dim)))


def multilinear_map(f: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
  """flatten(g_i f_i^T): (B, d), (B, C) -> (B, C*d), rows g_ic f_ij at c*d+j
  (the reference's `torch.bmm(g.unsqueeze(2), f.unsqueeze(1))`)."""
  return (g[:, :, None] * f[:, None, :]).reshape(f.shape[0], -1)


def randomized_multilinear_map(f: jnp.ndarray, g: jnp.ndarray,
                               r_f: jnp.ndarray,
                               r_g: jnp.ndarray) -> jnp.ndarray:
  """(f R_f) * (g R_g) / sqrt(r): (B, d), (B, C) -> (B, r)."""
  return (f @ r_f) * (g @ r_g) / math.sqrt(r_f.shape[1])


@base.register('cdan')
class CDAN(dann.DANN):
  """CDAN (see module docstring); hyper-parameters in config.<name>."""

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    if self.hparams.randomized not in RANDOMIZED:
      raise ValueError(f'config.{self.name}.randomized: unknown value '
                       f'{self.hparams.randomized!r}; known: '
                       f'{", ".join(RANDOMIZED)}')

  def use_random_map(self, feature_dim: int) -> bool:
    """Whether T is the randomized map for features of this size."""
    h = self.hparams
    if h.randomized == 'auto':
      return feature_dim * self.num_classes > h.max_multilinear_dim
    return h.randomized == 'always'

  def domain_input(self, reversed_e, logits):
    g = jax.lax.stop_gradient(jax.nn.softmax(logits))
    if not self.use_random_map(reversed_e.shape[-1]):
      return multilinear_map(reversed_e, g)
    r_f, r_g = random_matrices(self.config.seed, reversed_e.shape[-1],
                               self.num_classes, self.hparams.random_dim)
    return randomized_multilinear_map(reversed_e, g, r_f, r_g)


@base.register('cdan_e')
class CDANE(CDAN):
  """CDAN+E: CDAN with entropy-weighted examples (see module docstring)."""

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    if self.hparams.entropy_gradient not in ENTROPY_GRADIENTS:
      raise ValueError(f'config.{self.name}.entropy_gradient: unknown value '
                       f'{self.hparams.entropy_gradient!r}; known: '
                       f'{", ".join(ENTROPY_GRADIENTS)}')

  def domain_weights(self, logits, coeff):
    g = jax.nn.softmax(logits)
    # A reversal layer anywhere between the logits and w scales the same
    # chain of derivatives: on g it equals the reference's hook on H(g).
    if self.hparams.entropy_gradient == 'reverse':
      g = losses.grad_reverse(g, coeff)
    else:
      g = jax.lax.stop_gradient(g)
    return losses.entropy_weights(g)
