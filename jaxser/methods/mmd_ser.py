"""MMD-SER: the cross-domain SER model of Cai et al., "Emotion controllable
speech synthesis using emotion-unlabeled dataset with the assistance of
cross-domain speech emotion recognition" (ICASSP 2021), section 3.1:

  L = L_CE(phi(E^S), y^S; w) + lambda * MMD^2(E^S, E^T)        (eq. 3)

on the CNN + BiGRU network of `jaxser.models.cnn_gru`, E its encoder output.

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

`mmd_ser_source_only` is the paper's ser-base: the same network and weighted
cross-entropy without MMD (the target batch is not used).

The trained model labels an unlabelled corpus (e.g. a TTS corpus) with
`python -m jaxser.label`: soft labels, and per class the top-K most confident
utterances (section 3.2.3).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxser import losses
from jaxser.methods import base
from jaxser.methods import dan
from jaxser.models import cnn_gru

KERNELS = ('fixed', 'mean_scaled', 'mul_family')


@base.register('mmd_ser')
class MMDSER(base.Method):
  """MMD-SER (see module docstring)."""
  # Whether the MMD term is used (False: ser-base).
  adapt = True

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    self.hparams = config.mmd_ser
    for field, known in (('estimator', dan.ESTIMATORS), ('kernel', KERNELS)):
      if self.adapt and self.hparams[field] not in known:
        raise ValueError(f'config.mmd_ser.{field}: unknown value '
                         f'{self.hparams[field]!r}; known: {", ".join(known)}')
    m = config.model
    self.model = cnn_gru.CNNGRUNet(
        num_classes, conv_features=tuple(m.conv_features),
        conv_kernel_sizes=tuple(m.conv_kernel_sizes),
        conv_strides=tuple(m.conv_strides), conv_pool=tuple(m.conv_pool),
        gru_hidden=m.gru_hidden, fc_hidden=m.fc_hidden, dropout=m.dropout,
        masked=m.masked_pooling)
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
    src = batch['source']
    n_s = src['features'].shape[0]
    x, lengths = src['features'], src['length']
    if self.adapt:
      x = jnp.concatenate([x, batch['target']['features']])
      lengths = jnp.concatenate([lengths, batch['target']['length']])
    # No batch norm (the reference's `is_bn: False`): no batch_stats.
    logits, e = self.model.apply({'params': params}, x, lengths, train=True,
                                 rngs={'dropout': rng})
    loss_emotion = losses.cross_entropy(logits[:n_s], src['label'],
                                        weights=self.class_weights)
    metrics = {'loss_emotion': loss_emotion,
               'source_acc': jnp.mean(jnp.argmax(logits[:n_s], -1)
                                      == src['label'])}
    loss = loss_emotion
    if self.adapt:
      mmd = losses.mk_mmd(e[:n_s], e[n_s:], estimator=self.hparams.estimator,
                          kernel=self.feature_kernel())
      loss = loss + self.hparams.trade_off * mmd
      metrics['loss_mmd'] = mmd
    return loss, (batch_stats, method_state, metrics)

  def logits(self, variables, features, lengths):
    return self.model.apply({'params': variables['params']}, features,
                            lengths, train=False)[0]


@base.register('mmd_ser_source_only')
class MMDSERSourceOnly(MMDSER):
  """ser-base: MMD-SER's network and weighted cross-entropy, no MMD."""
  adapt = False
