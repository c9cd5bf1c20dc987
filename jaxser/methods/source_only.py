"""Source only: the shared emotion network trained with the emotion loss alone.

The no-adaptation baseline every adaptation result is compared with; the
target batch is not used.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxser import losses
from jaxser.methods import base
from jaxser.models import cnn_tcn


@base.register('source_only')
class SourceOnly(base.Method):
  """L = CE(phi_e(E^S), y^S)."""

  def __init__(self, config, num_classes):
    super().__init__(config, num_classes)
    self.model = cnn_tcn.EmotionNet(
        num_classes, masked_pooling=config.model.masked_pooling,
        dropout=config.model.dropout)

  def loss(self, params, batch_stats, method_state, batch, rng, step):
    del step
    src = batch['source']
    (logits, _), updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, src['features'],
        src['length'], train=True, mutable=['batch_stats'],
        rngs={'dropout': rng})
    loss = losses.cross_entropy(logits, src['label'])
    acc = jnp.mean(jnp.argmax(logits, -1) == src['label'])
    return loss, (updates['batch_stats'], method_state,
                  {'loss_emotion': loss, 'source_acc': acc})

  def logits(self, variables, features, lengths):
    return self.model.apply(variables, features, lengths, train=False)[0]


