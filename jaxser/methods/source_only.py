"""Source only: the emotion network trained with the emotion loss alone.

The no-adaptation baseline of every adaptation result: `source_only` on the
same network (`config.model.name`, front end and data settings) as the
method it is compared with; the target batch is not used.

  L = CE(phi_e(E^S), y^S)          (class-weighted with `class_weighted`)

On a network that predicts from its frames (DIFL's segment CNN-BLSTM) every
valid source segment is an example carrying its utterance's label, and an
utterance is predicted from its mean segment posterior (DIFL's "Baseline
S"). `config.source_only.class_weighted` weights each class by
N / (K n_c) of the source training counts (`losses.class_weights`): the
MMD-SER baseline (ser-base) uses MMD-SER's weighted cross-entropy.
"""

from __future__ import annotations

from jaxser import losses
from jaxser.methods import base


@base.register('source_only')
class SourceOnly(base.Method):
  """L = CE(phi_e(E^S), y^S)."""

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    self.model = self.build_emotion_model()
    # A constant of the loss. Without counts (e.g. the benchmark's random
    # batches) every class weighs 1.
    self.class_weights = (
        losses.class_weights(self.class_counts)
        if config.source_only.class_weighted and self.class_counts is not None
        else None)

  def loss(self, params, batch_stats, method_state, batch, rng, step):
    del step
    src = batch['source']
    out, updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, src['features'],
        src['length'], train=True, mutable=['batch_stats'],
        rngs={'dropout': rng})
    loss, acc = self.emotion_loss(out, src['label'], self.class_weights)
    return loss, (updates.get('batch_stats', batch_stats), method_state,
                  {'loss_emotion': loss, 'source_acc': acc})
