"""MMD-SER: the cross-domain SER model of Cai et al., "Emotion controllable
speech synthesis using emotion-unlabeled dataset with the assistance of
cross-domain speech emotion recognition" (ICASSP 2021), section 3.1:

  L = L_CE(phi(E^S), y^S; w) + lambda * MMD^2(E^S, E^T)        (eq. 3)

on the CNN + BiGRU network of `jaxser.models.cnn_gru` (`config.model.name =
'cnn_gru'`; any registered network works), E its encoder output.

  * L_CE (eq. 2) weights each source utterance by w_{y}, inversely
    proportional to the number of source training utterances of its class
    (`losses.class_weights`: w_c = N / (K n_c)). The reference code divides
    by the sum of the weights (TF's `Reduction.MEAN`), i.e.
    `losses.cross_entropy(weights=w)`; eq. 2 prints the unnormalised sum,
    which would scale the loss with the batch. `class_weighted=False` gives
    the plain mean.
  * MMD (eq. 1) is the biased (V-statistic) estimate, every pair including
    i = j, with the kernel sum_n exp(-||x - y||^2 / (2 sigma_n)) (eta_n = 1)
    over DSN's 19 fixed bandwidths, as DSN's `mmd_loss`, which the paper cites
    [22] and whose (source, target, weight) signature the released code calls.
    Eq. 1 prints 1/(mn) for the cross term; the MMD needs 2/(mn) (otherwise
    it is not zero for equal distributions), which we use. DSN also floors the
    loss at 1e-4 (no gradient below it); we do not. `estimator` and `kernel`
    select the alternatives of `losses.mk_mmd` (DAN's).
  * lambda = 0.5 (section 4.3).

The paper's ser-base is `source_only` on the same network with the same
weighted cross-entropy (`config.source_only.class_weighted`,
configs/mmd_ser_source_only.py); the target batch is not used.

The trained model labels an unlabelled corpus (e.g. a TTS corpus) with
`python -m jaxser.label`: soft labels, and per class the top-K most confident
utterances (section 3.2.3).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxser import losses
from jaxser.methods import base
from jaxser.methods import dan

KERNELS = ('fixed', 'mean_scaled', 'mul_family')


@base.register('mmd_ser')
class MMDSER(base.Method):
  """MMD-SER (see module docstring)."""

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    self.hparams = config.mmd_ser
    for field, known in (('estimator', dan.ESTIMATORS), ('kernel', KERNELS)):
      if self.hparams[field] not in known:
        raise ValueError(f'config.mmd_ser.{field}: unknown value '
                         f'{self.hparams[field]!r}; known: {", ".join(known)}')
    self.model = self.build_emotion_model()
    # A constant of the loss. Without counts (e.g. the benchmark's random
    # batches) every class weighs 1.
    self.class_weights = (
        losses.class_weights(self.class_counts)
        if self.hparams.class_weighted and self.class_counts is not None
        else None)

  def feature_kernel(self) -> losses.KernelSpec:
    """The kernel on E, from the config."""
    h = self.hparams
    if h.kernel == 'fixed':
      return losses.FixedBandwidthKernels(tuple(h.sigmas))
    if h.kernel == 'mean_scaled':
      return losses.MeanScaledKernels(tuple(h.scales))
    return losses.MulFamilyKernels(h.kernel_mul, h.kernel_num)

  def loss(self, params, batch_stats, method_state, batch, rng, step):
    del step
    src, tgt = batch['source'], batch['target']
    n_s = src['features'].shape[0]
    x = jnp.concatenate([src['features'], tgt['features']])
    lengths = jnp.concatenate([src['length'], tgt['length']])
    # MMD-SER's own network has no batch norm (the reference's `is_bn:
    # False`); another network's statistics are updated as usual.
    out, updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, x, lengths,
        train=True, mutable=['batch_stats'], rngs={'dropout': rng})
    loss_emotion, acc = self.emotion_loss(out, src['label'],
                                          self.class_weights)
    e = out['embedding']
    mmd = losses.mk_mmd(e[:n_s], e[n_s:], estimator=self.hparams.estimator,
                        kernel=self.feature_kernel())
    loss = loss_emotion + self.hparams.trade_off * mmd
    metrics = {'loss_emotion': loss_emotion, 'source_acc': acc,
               'loss_mmd': mmd}
    return loss, (updates.get('batch_stats', batch_stats), method_state,
                  metrics)
