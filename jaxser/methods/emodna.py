"""Emo-DNA: contrastive emotion decoupling and dual-level emotion alignment
(Emo-DNA paper, section 3; network and hyper-parameters of section 4.1).

  L = L_emotion + L_corpus + L_align + L_decouple                     (eq. 12)
  L_align = MK-MMD(E^S, E^T) + alpha_1 L_SCL(D^S, D^T_hat)            (eq. 11)

Source and target batches pass through the network as one batch (so batch
norm sees both corpora). With several source corpora the corpus classifier
stays binary (source vs target), as in eq. 3.

The network is `config.model`'s (the paper's CNN backbone + TCN by
default): E_e's output is its utterance embedding, and E_c reads its frame
sequence, so Emo-DNA runs on any registered network that has one.

Choices where the paper is silent (each a config field):
  - MK-MMD is the unbiased quadratic-time estimator over 5 Gaussian kernels
    exp(-d^2 / (2 a m)), a in {1/8, 1/4, 1/2, 1, 2}, m the mean squared
    pairwise distance of the joint batch (`method.mmd_scales`,
    `method.mmd_estimator`), on E (before the projection head).
  - The EMA threshold is updated with this step's target confidences before
    the confident samples are selected (Algorithm 1, lines 12-13).
  - One projection head g serves both E and C (eq. 4 uses "a projection head
    g" for both prototypes) and the SCL of eq. 9.

Ablation switches (`config.emodna`; defaults: the full model). Each removes
exactly its terms of eq. 12; a removed term is logged as 0:
  corpus_encoder  E_c, phi_c and L_corpus (eqs. 1, 3). Off: no E_c
                  parameters, no L_corpus and (it needs C) no L_decouple.
  decouple        L_decouple (eq. 5).
  mmd             d_k^2, the MK-MMD of L_align (eq. 10).
  scl             alpha_1 L_SCL of L_align (eq. 9).
  threshold       'adaptive' (eq. 6) | 'fixed' (`fixed_threshold`, Table 6:
                  0.9) | 'none' (every target row pseudo-labelled).
The paper's ablations (Table 4, row labels; its prose swaps V3 and V4, the
table's labels are taken here): V2 w/o L_decouple + L_align = decouple, mmd,
scl off (the corpus encoder alone); V3 w/o L_decouple; V4 w/o L_align = mmd
and scl off; V5 w/o Decoupling = the whole of section 3.3's contrastive
emotion decoupling off: corpus_encoder (and so decouple) off. Table 6: w/o
L_SCL = scl off; w/o threshold = 'none'; fixed threshold = 'fixed'.
`jaxser.presets` lists them as grid rows.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxser import losses
from jaxser.methods import base
from jaxser.models import classifier
from jaxser.models import cnn_tcn
from jaxser.models import registry


class EmoDNANet(nn.Module):
  """The emotion model (backbone E, emotion encoder E_e and emotion
  classifier phi_e: a registered network and its head), the corpus encoder
  E_c (BiLSTM) on the network's frame sequence, the projection head g and
  the corpus classifier phi_c.

  On the CNN + TCN the frame sequence is the backbone's output, so E_e and
  E_c share E as in the paper; on another network E_c reads that network's
  frames (its CNN output, or its segments).
  """
  num_classes: int
  emotion_model: classifier.EmotionModel
  lstm_hidden: int = 64
  projection_dim: int = 128
  # Ablations: without E_c and phi_c (outputs corpus_logits and z_c are
  # None); without g (z_e and z_c None).
  with_corpus: bool = True
  with_projection: bool = True

  def setup(self):
    # The emotion model's parameters sit beside E_c, g and phi_c.
    nn.share_scope(self, self.emotion_model)
    if self.with_corpus:
      self.corpus_encoder = cnn_tcn.BiLSTMEncoder(self.lstm_hidden)
      self.corpus_head = nn.Dense(2)
    if self.with_projection:
      self.projection = cnn_tcn.ProjectionHead(self.projection_dim,
                                               self.projection_dim)

  def __call__(self, x, lengths, *, train: bool):
    out = self.emotion_model(x, lengths, train=train)
    e = out['embedding']
    c = corpus_logits = z_e = z_c = None
    if self.with_corpus:
      c = self.corpus_encoder(out['frames'], out['frame_lengths'],
                              train=train)
      corpus_logits = self.corpus_head(c)
    if self.with_projection:
      z_e = self.projection(e)
      z_c = None if c is None else self.projection(c)
    return dict(emotion_logits=out['logits'], corpus_logits=corpus_logits,
                e=e, z_e=z_e, z_c=z_c,
                instance_logits=out['instance_logits'],
                instance_mask=out['instance_mask'])

  def classify(self, x, lengths):
    return self.emotion_model.classify(x, lengths)


# The full model's switches (configs/emodna.py), for a run's config written
# before they existed (`hparams`).
SWITCH_DEFAULTS = dict(corpus_encoder=True, decouple=True, mmd=True, scl=True,
                       threshold='adaptive', fixed_threshold=0.9)


def hparams(config):
  """config.emodna, with the ablation switches of the full model where a
  run's config predates them (a copy; the config is left as it is)."""
  m = config.emodna.copy_and_resolve_references()
  for field, value in SWITCH_DEFAULTS.items():
    if field not in m:
      m[field] = value
  return m


def corpus_hidden(config) -> int:
  """E_c's BiLSTM units per direction: `config.model.lstm_hidden`, or with 0
  half the size of E, so that C = [forward; backward] has E's size and the
  one projection head g takes both (64 on the CNN + TCN's 128)."""
  d = registry.embedding_dim(config)
  hidden = config.model.lstm_hidden or d // 2
  if 2 * hidden != d:
    raise ValueError(
        f'config.model.lstm_hidden: the projection head g takes E ({d} on '
        f'{config.model.name}) and C (2 x lstm_hidden = {2 * hidden}), which '
        'must be the same size; use 0 (half of E)')
  return hidden


def emotion_model(config, num_classes: int) -> classifier.EmotionModel:
  """The emotion model of `config.model` with Emo-DNA's parameter names."""
  model = registry.build(config, num_classes)
  if isinstance(model.network, cnn_tcn.CNNTCN):
    # Emo-DNA's parameter tree names the CNN 'backbone' (the other
    # methods': 'Backbone_0'), as it did before the network registry.
    model = model.clone(network=model.network.clone(backbone_name='backbone'))
  return model


@base.register('emodna')
class EmoDNA(base.Method):
  """Emo-DNA (see module docstring)."""

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    self.hparams = m = hparams(config)
    self.model = EmoDNANet(
        num_classes, emotion_model(config, num_classes),
        lstm_hidden=corpus_hidden(config) if m.corpus_encoder else 0,
        projection_dim=config.model.projection_dim,
        with_corpus=m.corpus_encoder, with_projection=m.decouple or m.scl)

  @classmethod
  def check_config(cls, config):
    network = registry.check(config)
    m = hparams(config)
    for field in ('corpus_encoder', 'decouple', 'mmd', 'scl'):
      if not isinstance(m[field], bool):
        raise ValueError(f'config.emodna.{field}: must be True or False, got '
                         f'{m[field]!r}')
    if m.threshold not in losses.THRESHOLDS:
      raise ValueError(f'config.emodna.threshold: unknown value '
                       f'{m.threshold!r}; known: '
                       f'{", ".join(losses.THRESHOLDS)}')
    if m.decouple and not m.corpus_encoder:
      raise ValueError('config.emodna.decouple: L_decouple needs the corpus '
                       'encoder (config.emodna.corpus_encoder=True), or set '
                       'it False too')
    if not m.corpus_encoder:
      return  # E_c reads no frames; nothing more to fit.
    if not network.frame_sequence:
      with_frames = [n for n in registry.names()
                     if registry.get(n).frame_sequence]
      raise ValueError(
          f"config.model.name: Emo-DNA's corpus encoder reads the network's "
          f'frame sequence, and {network.name!r} has none; networks with '
          f'one: {", ".join(with_frames)}')
    corpus_hidden(config)

  def init_state(self):
    return {'tau': losses.ema_threshold_init(self.num_classes)}

  def loss(self, params, batch_stats, method_state, batch, rng, step):
    del step
    m = self.hparams
    src, tgt = batch['source'], batch['target']
    n_s = src['features'].shape[0]
    x = jnp.concatenate([src['features'], tgt['features']])
    lengths = jnp.concatenate([src['length'], tgt['length']])
    out, updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, x, lengths,
        train=True, mutable=['batch_stats'], rngs={'dropout': rng})

    # Eq. 2-3: emotion CE on the source, corpus CE on both corpora.
    loss_emotion, acc = self.emotion_loss(out, src['label'])
    zero = jnp.zeros((), jnp.float32)  # A removed term (ablations).
    loss_corpus = loss_decouple = loss_mmd = loss_scl = zero
    if m.corpus_encoder:
      corpus_label = jnp.concatenate(
          [jnp.zeros(n_s, jnp.int32), jnp.ones(x.shape[0] - n_s, jnp.int32)])
      loss_corpus = losses.cross_entropy(out['corpus_logits'], corpus_label)

    # Eq. 4-5: prototype-level decoupling.
    z_e, z_c = out['z_e'], out['z_c']
    if m.decouple:
      loss_decouple = losses.prototype_decoupling(
          losses.prototype(z_e[:n_s]), losses.prototype(z_c[:n_s]),
          losses.prototype(z_e[n_s:]), losses.prototype(z_c[n_s:]),
          temperature=m.tau_p)

    # Eq. 6-9: threshold (adaptive by default), confident pseudo-labels (no
    # gradient) and SCL over source + confident target. Computed, and tau
    # and the confident fraction logged, whether or not SCL is on.
    probs_t = jax.nn.softmax(
        jax.lax.stop_gradient(out['emotion_logits'][n_s:]))
    tau = losses.confidence_threshold(
        method_state['tau'], probs_t, m.threshold, fixed=m.fixed_threshold,
        momentum=m.ema_momentum)
    pseudo, confident = losses.select_confident(probs_t, tau)
    if m.scl:
      loss_scl = losses.supervised_contrastive(
          z_e, jnp.concatenate([src['label'], pseudo]),
          jnp.concatenate([jnp.ones(n_s), confident]), temperature=m.tau_s)

    # Eq. 10-11: MK-MMD over E.
    if m.mmd:
      loss_mmd = losses.mk_mmd(out['e'][:n_s], out['e'][n_s:],
                               estimator=m.mmd_estimator,
                               scales=tuple(m.mmd_scales))
    loss_align = loss_mmd + m.alpha * loss_scl

    loss = loss_emotion + loss_corpus + loss_align + loss_decouple
    metrics = dict(loss_emotion=loss_emotion, loss_corpus=loss_corpus,
                   loss_decouple=loss_decouple, loss_mmd=loss_mmd,
                   loss_scl=loss_scl, tau=tau, confident=confident.mean(),
                   source_acc=acc)
    return loss, (updates.get('batch_stats', batch_stats), {'tau': tau},
                  metrics)
