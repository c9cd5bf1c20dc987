"""Source only: the shared emotion network trained with the emotion loss alone.

The no-adaptation baseline every adaptation result is compared with; the
target batch is not used. `config.model.backbone` picks the network:
'cnn_tcn' (default; Emo-DNA's CNN + TCN) or 'cnn_blstm' (DIFL's segment
CNN-BLSTM, configs/difl_source_only.py: DIFL's baseline, the cross-entropy
over the valid segments of each utterance, utterances predicted from their
mean segment posterior).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxser import losses
from jaxser.methods import base
from jaxser.models import cnn_blstm
from jaxser.models import cnn_tcn

BACKBONES = ('cnn_tcn', 'cnn_blstm')


@base.register('source_only')
class SourceOnly(base.Method):
  """L = CE(phi_e(E^S), y^S)."""

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    self.backbone = config.model.get('backbone', 'cnn_tcn')
    if self.backbone not in BACKBONES:
      raise ValueError(f'config.model.backbone: unknown backbone '
                       f'{self.backbone!r}; known: {", ".join(BACKBONES)}')
    if self.backbone == 'cnn_blstm':
      cnn_blstm.check_features(config.data)
      self.model = cnn_blstm.from_config(num_classes, config.model)
      return
    self.model = cnn_tcn.EmotionNet(
        num_classes, masked_pooling=config.model.masked_pooling,
        dropout=config.model.dropout)

  def loss(self, params, batch_stats, method_state, batch, rng, step):
    del step
    src = batch['source']
    if self.backbone == 'cnn_blstm':
      return self._segment_loss(params, batch_stats, method_state, src, rng)
    (logits, _), updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, src['features'],
        src['length'], train=True, mutable=['batch_stats'],
        rngs={'dropout': rng})
    loss = losses.cross_entropy(logits, src['label'])
    acc = jnp.mean(jnp.argmax(logits, -1) == src['label'])
    return loss, (updates['batch_stats'], method_state,
                  {'loss_emotion': loss, 'source_acc': acc})

  def _segment_loss(self, params, batch_stats, method_state, src, rng):
    """L = 1/M sum_i m_i CE(z_i, y_i) over the M valid source segments."""
    out, updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, src['features'],
        src['length'], train=True, mutable=['batch_stats'],
        rngs={'dropout': rng})
    segments = out['mask'].shape[1]
    logits = cnn_blstm.flatten_segments(out['logits'])
    mask = cnn_blstm.flatten_segments(out['mask']).astype(jnp.float32)
    labels = jnp.repeat(src['label'], segments,
                        total_repeat_length=logits.shape[0])
    loss = losses.cross_entropy(logits, labels, mask)
    acc = jnp.sum(mask * (jnp.argmax(logits, -1) == labels)) / jnp.maximum(
        jnp.sum(mask), 1.0)
    return loss, (updates['batch_stats'], method_state,
                  {'loss_emotion': loss, 'source_acc': acc})

  def logits(self, variables, features, lengths):
    if self.backbone == 'cnn_blstm':
      return self.model.apply(variables, features, lengths,
                              method=cnn_blstm.SegmentEmotionNet.classify)
    return self.model.apply(variables, features, lengths, train=False)[0]


