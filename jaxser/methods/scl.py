"""Emo-DNA's contrastive class alignment (L_SCL, eqs. 6-9) as an option of
the UDA baselines (Emo-DNA Table 5: DANN, DAN, JAN, CDAN, BSP + L_SCL).

With `config.<method>.scl_weight` = w > 0 the method's loss gains

  w * L_SCL(D^S, D^T_hat),

the supervised contrastive loss (`losses.supervised_contrastive`, temperature
`config.<method>.scl_temperature`; the paper's tau_s = 0.01) over
z = g(E) of the source rows (their labels) and of the target rows whose
confidence reaches the adaptive EMA threshold (`losses.confidence_threshold`,
their pseudo-labels), exactly as Emo-DNA computes it. g is a projection head
(Emo-DNA's: Dense 128 -> ReLU -> Dense 128 -> L2) added beside the method's
model (`ProjectedModel`); with w = 0 (the default) nothing is added: the
method's parameters, state, loss and logged metrics are unchanged.

Where the paper is silent: the weight (Emo-DNA's own alpha_1 = 0.1 is the
Table 5 preset's, `jaxser.presets`), and the threshold, whose momentum and
mode are Emo-DNA's defaults (EMA, lambda = 0.999).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxser import losses
from jaxser.models import cnn_tcn

PROJECTION_DIM = 128  # Emo-DNA's g (section 4.1 / configs/emodna.py).
THRESHOLD = 'adaptive'
EMA_MOMENTUM = 0.999  # Emo-DNA's lambda of eq. 6.


class ProjectedModel(nn.Module):
  """A method's model (`inner`, whose parameters keep their names) plus the
  projection head g: `__call__`'s outputs gain 'scl_z' = g(E) (L2-normalised);
  `classify` and `discriminate` are the inner model's."""
  inner: nn.Module
  projection_dim: int = PROJECTION_DIM

  def setup(self):
    nn.share_scope(self, self.inner)
    self.scl_projection = cnn_tcn.ProjectionHead(self.projection_dim,
                                                 self.projection_dim)

  def __call__(self, x, lengths, *, train: bool):
    out = self.inner(x, lengths, train=train)
    return dict(out, scl_z=self.scl_projection(out['embedding']))

  def classify(self, x, lengths):
    return self.inner.classify(x, lengths)

  def discriminate(self, h, *, train: bool):
    return self.inner.discriminate(h, train=train)


def class_alignment(z: jax.Array, source_labels: jax.Array,
                    target_logits: jax.Array, tau: jax.Array, *,
                    threshold: str, temperature: float,
                    fixed_threshold: float = 0.9,
                    momentum: float = EMA_MOMENTUM):
  """L_SCL over the source rows and the confident target rows (Emo-DNA eqs.
  6-9; the first len(source_labels) rows of z are the source's).

  The target probabilities carry no gradient; the threshold is updated with
  this step's confidences before selecting (Algorithm 1, lines 12-13).

  Returns:
    (loss, new tau, metrics {'tau', 'confident'}).
  """
  n_s = source_labels.shape[0]
  probs_t = jax.nn.softmax(jax.lax.stop_gradient(target_logits))
  tau = losses.confidence_threshold(tau, probs_t, threshold,
                                    fixed=fixed_threshold, momentum=momentum)
  pseudo, confident = losses.select_confident(probs_t, tau)
  loss = losses.supervised_contrastive(
      z, jnp.concatenate([source_labels, pseudo]),
      jnp.concatenate([jnp.ones(n_s), confident]), temperature=temperature)
  return loss, tau, dict(tau=tau, confident=confident.mean())


class Option:
  """The L_SCL option of a baseline, read from its hyper-parameters
  (`config.<method>`: scl_weight, scl_temperature)."""

  def __init__(self, hparams, name: str, num_classes: int):
    self.num_classes = num_classes
    self.weight = float(hparams.get('scl_weight', 0.0))
    self.temperature = float(hparams.get('scl_temperature', 0.01))
    if self.weight < 0:
      raise ValueError(f'config.{name}.scl_weight: must be >= 0, got '
                       f'{self.weight}')
    if self.weight > 0 and not self.temperature > 0:
      raise ValueError(f'config.{name}.scl_temperature: must be > 0, got '
                       f'{self.temperature}')

  @property
  def on(self) -> bool:
    return self.weight > 0

  def wrap(self, model: nn.Module) -> nn.Module:
    """The model, with g beside it when the option is on."""
    return ProjectedModel(model) if self.on else model

  def init_state(self) -> dict:
    return ({'tau': losses.ema_threshold_init(self.num_classes)}
            if self.on else {})

  def loss(self, out, source_labels, method_state):
    """(weighted term, new method state, metrics) for the model outputs
    `out` (source rows first); (0, state, {}) when off."""
    if not self.on:
      return 0.0, method_state, {}
    n_s = source_labels.shape[0]
    loss, tau, metrics = class_alignment(
        out['scl_z'], source_labels, out['logits'][n_s:],
        method_state['tau'], threshold=THRESHOLD,
        temperature=self.temperature)
    return (self.weight * loss, dict(method_state, tau=tau),
            dict(loss_scl=loss, **metrics))
