"""Emo-DNA: contrastive emotion decoupling and dual-level emotion alignment
(Emo-DNA paper, section 3; network and hyper-parameters of section 4.1).

  L = L_emotion + L_corpus + L_align + L_decouple                     (eq. 12)
  L_align = MK-MMD(E^S, E^T) + alpha_1 L_SCL(D^S, D^T_hat)            (eq. 11)

Source and target batches pass through the network as one batch (so batch
norm sees both corpora). With several source corpora the corpus classifier
stays binary (source vs target), as in eq. 3.

Choices where the paper is silent (each a config field):
  - MK-MMD is the unbiased quadratic-time estimator over 5 Gaussian kernels
    exp(-d^2 / (2 a m)), a in {1/8, 1/4, 1/2, 1, 2}, m the mean squared
    pairwise distance of the joint batch (`method.mmd_scales`,
    `method.mmd_estimator`), on E (before the projection head).
  - The EMA threshold is updated with this step's target confidences before
    the confident samples are selected (Algorithm 1, lines 12-13).
  - One projection head g serves both E and C (eq. 4 uses "a projection head
    g" for both prototypes) and the SCL of eq. 9.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxser import losses
from jaxser.methods import base
from jaxser.models import cnn_tcn


class EmoDNANet(nn.Module):
  """Backbone E, emotion encoder E_e (TCN), corpus encoder E_c (BiLSTM),
  projection head g, emotion classifier phi_e and corpus classifier phi_c."""
  num_classes: int
  masked_pooling: bool = True
  dropout: float = 0.1
  lstm_hidden: int = 64
  projection_dim: int = 128

  def setup(self):
    self.backbone = cnn_tcn.Backbone(dropout=self.dropout)
    self.emotion_encoder = cnn_tcn.TCNEncoder(
        dropout=self.dropout, masked_pooling=self.masked_pooling)
    self.corpus_encoder = cnn_tcn.BiLSTMEncoder(
        self.lstm_hidden, masked_pooling=self.masked_pooling)
    self.projection = cnn_tcn.ProjectionHead(self.projection_dim,
                                             self.projection_dim)
    self.emotion_head = nn.Dense(self.num_classes)
    self.corpus_head = nn.Dense(2)

  def __call__(self, x, lengths, *, train: bool):
    h, h_len = self.backbone(x, lengths, train=train)
    e = self.emotion_encoder(h, h_len, train=train)
    c = self.corpus_encoder(h, h_len, train=train)
    return dict(emotion_logits=self.emotion_head(e),
                corpus_logits=self.corpus_head(c), e=e,
                z_e=self.projection(e), z_c=self.projection(c))

  def classify(self, x, lengths):
    h, h_len = self.backbone(x, lengths, train=False)
    return self.emotion_head(self.emotion_encoder(h, h_len, train=False))


@base.register('emodna')
class EmoDNA(base.Method):
  """Emo-DNA (see module docstring)."""

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    self.model = EmoDNANet(
        num_classes, masked_pooling=config.model.masked_pooling,
        dropout=config.model.dropout, lstm_hidden=config.model.lstm_hidden,
        projection_dim=config.model.projection_dim)

  def init_state(self):
    return {'tau': losses.ema_threshold_init(self.num_classes)}

  def loss(self, params, batch_stats, method_state, batch, rng, step):
    del step
    m = self.config.emodna
    src, tgt = batch['source'], batch['target']
    n_s = src['features'].shape[0]
    x = jnp.concatenate([src['features'], tgt['features']])
    lengths = jnp.concatenate([src['length'], tgt['length']])
    out, updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, x, lengths,
        train=True, mutable=['batch_stats'], rngs={'dropout': rng})

    # Eq. 2-3: emotion CE on the source, corpus CE on both corpora.
    loss_emotion = losses.cross_entropy(out['emotion_logits'][:n_s],
                                        src['label'])
    corpus_label = jnp.concatenate(
        [jnp.zeros(n_s, jnp.int32), jnp.ones(x.shape[0] - n_s, jnp.int32)])
    loss_corpus = losses.cross_entropy(out['corpus_logits'], corpus_label)

    # Eq. 4-5: prototype-level decoupling.
    z_e, z_c = out['z_e'], out['z_c']
    loss_decouple = losses.prototype_decoupling(
        losses.prototype(z_e[:n_s]), losses.prototype(z_c[:n_s]),
        losses.prototype(z_e[n_s:]), losses.prototype(z_c[n_s:]),
        temperature=m.tau_p)

    # Eq. 6-7: adaptive threshold and confident pseudo-labels (no gradient).
    probs_t = jax.nn.softmax(
        jax.lax.stop_gradient(out['emotion_logits'][n_s:]))
    tau = losses.ema_threshold_update(method_state['tau'], probs_t,
                                      momentum=m.ema_momentum)
    pseudo, confident = losses.select_confident(probs_t, tau)

    # Eq. 9-11: SCL over source + confident target, MK-MMD over E.
    loss_scl = losses.supervised_contrastive(
        z_e, jnp.concatenate([src['label'], pseudo]),
        jnp.concatenate([jnp.ones(n_s), confident]), temperature=m.tau_s)
    loss_mmd = losses.mk_mmd(out['e'][:n_s], out['e'][n_s:],
                             estimator=m.mmd_estimator,
                             scales=tuple(m.mmd_scales))
    loss_align = loss_mmd + m.alpha * loss_scl

    loss = loss_emotion + loss_corpus + loss_align + loss_decouple
    acc = jnp.mean(jnp.argmax(out['emotion_logits'][:n_s], -1) == src['label'])
    metrics = dict(loss_emotion=loss_emotion, loss_corpus=loss_corpus,
                   loss_decouple=loss_decouple, loss_mmd=loss_mmd,
                   loss_scl=loss_scl, tau=tau, confident=confident.mean(),
                   source_acc=acc)
    return loss, (updates['batch_stats'], {'tau': tau}, metrics)

  def logits(self, variables, features, lengths):
    return self.model.apply(variables, features, lengths,
                            method=EmoDNANet.classify)
