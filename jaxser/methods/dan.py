"""DAN: deep adaptation network (Long et al., ICML 2015) on the emotion
network of `config.model` (E its utterance embedding):

  L = CE(phi_e(E^S), y^S) + trade_off * MK-MMD^2(E^S, E^T)

(one adapted layer, E: the CNN + TCN has no further hidden layers to adapt).
Source and target batches pass through the network as one batch, so batch
norm sees both corpora.

Config choices (config.<name>), all implemented by `losses.mk_mmd`, the
MK-MMD Emo-DNA uses as well:
  estimator  'unbiased' (quadratic; transfer-learning-library's default and
             the DAN reference's `DAN`), 'biased', or 'linear' (the paper's
             linear-time estimate, the reference's `DAN_Linear`).
  kernel     'mean_scaled': bandwidths a * mean squared distance of the joint
             batch, a in `scales` (Emo-DNA, transfer-learning-library), or
             'mul_family': `kernel_num` bandwidths kernel_mul^i around the
             mean off-diagonal distance (the DAN reference code). The kernel
             weights beta are uniform (the paper's learned beta is not
             reproduced).

`DAN` is also the base of JAN, which overrides `discrepancy`. Both take
Emo-DNA's contrastive class alignment as an option (`config.<method>.
scl_weight` > 0: + scl_weight * L_SCL, Emo-DNA Table 5; `jaxser.methods.scl`).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxser import losses
from jaxser.methods import base
from jaxser.methods import scl

ESTIMATORS = ('unbiased', 'biased', 'linear')
KERNELS = ('mean_scaled', 'mul_family')


@base.register('dan')
class DAN(base.Method):
  """DAN (see module docstring)."""
  # The name of the discrepancy in the logged metrics.
  discrepancy_metric = 'loss_mmd'

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    self.hparams = config[self.name]
    for field, known in (('estimator', ESTIMATORS), ('kernel', KERNELS)):
      if self.hparams[field] not in known:
        raise ValueError(f'config.{self.name}.{field}: unknown value '
                         f'{self.hparams[field]!r}; known: {", ".join(known)}')
    self.scl = scl.Option(self.hparams, self.name, num_classes)
    self.model = self.scl.wrap(self.build_emotion_model())

  def init_state(self):
    return self.scl.init_state()

  def feature_kernel(self) -> losses.KernelSpec:
    """The kernel family on E, from the config."""
    h = self.hparams
    if h.kernel == 'mean_scaled':
      return losses.MeanScaledKernels(tuple(h.scales))
    return losses.MulFamilyKernels(h.kernel_mul, h.kernel_num)

  def discrepancy(self, logits, e, num_source: int) -> jnp.ndarray:
    """MK-MMD^2 between the source rows of E and the rest."""
    del logits
    return losses.mk_mmd(e[:num_source], e[num_source:],
                         estimator=self.hparams.estimator,
                         kernel=self.feature_kernel())

  def loss(self, params, batch_stats, method_state, batch, rng, step):
    del step
    src, tgt = batch['source'], batch['target']
    n_s = src['features'].shape[0]
    x = jnp.concatenate([src['features'], tgt['features']])
    lengths = jnp.concatenate([src['length'], tgt['length']])
    out, updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, x, lengths,
        train=True, mutable=['batch_stats'], rngs={'dropout': rng})
    loss_emotion, acc = self.emotion_loss(out, src['label'])
    discrepancy = self.discrepancy(out['logits'], out['embedding'], n_s)
    loss_scl, method_state, scl_metrics = self.scl.loss(out, src['label'],
                                                         method_state)
    loss = loss_emotion + self.hparams.trade_off * discrepancy + loss_scl
    metrics = {'loss_emotion': loss_emotion, 'source_acc': acc,
               self.discrepancy_metric: discrepancy, **scl_metrics}
    return loss, (updates.get('batch_stats', batch_stats), method_state,
                  metrics)
