"""Multitask learning with contrastive and information-maximisation tasks
(Ahn et al., "Multitask Transformer for Cross-Corpus Speech Emotion
Recognition", section 3.1; loss weights of section 4.2.1).

  L = L_SER + lambda_CL L_CL + lambda_IM L_IM + lambda_aug L_aug      (eq. 8)

Every utterance (source and target) is augmented twice on the accelerator
(`jaxser.augment`, the five augmentation types of Table 2), turned into
features by an on-device front end (`config.model.frontend`,
`jaxser.models.frontend`) and encoded into h by the network. From h:
  * L_SER (eq. 3): cross-entropy of the emotion head on both source views.
  * L_CL (eq. 4-5): NT-Xent between the two views of each utterance on
    z = V relu(U h).
  * L_IM (eq. 6): mean per-sample entropy minus the entropy of the mean
    prediction of the emotion head, per domain and view, on source and target.
  * L_aug (eq. 7): the augmentation-type classifier.
Evaluation runs the front end and the network on the clean waveform.

Text (section 3.2, configs/multitask_text.py): on a network that takes token
ids (`bert`, data.features = 'tokens') the same objective runs on transcripts,
the augmentation being token cutoff (`augment.token_cutoff`, p =
`multitask.cutoff_p`) and without the augmentation-type task (one type only:
lambda_aug must be 0). The modality follows from the network's input kind.

Table 11's ablations are config switches: lambda_cl = 0 (without CL),
lambda_im = 0 (without IM), lambda_aug = 0 (without the augmentation
classifier), lambda_aug = 0.5, `multitask.use_target = False` (without target
data: CL and IM on the source batch only, no target batch read).

The network is `config.model.name`, any registered one that takes what the
front end computes: 'cnn_tcn' by default (Emo-DNA's CNN + TCN emotion
encoder on `mfcc40` features, h = E, 128-d), or e.g. 'cnn_gru'; h is the
network's utterance embedding.

Choices where the paper is silent or ambiguous (each a config field):
  * The augmentation-type label is the type a_1..a_5 drawn for the view and
    L_aug a 5-way softmax cross-entropy, as eq. 7 writes it (the label is
    the type even when none of its transforms fired).
    `multitask.aug_target = 'transforms'` instead predicts which of the
    seven transforms were applied, multi-label with sigmoid cross-entropy.
  * Eq. 5 as SimCLR's NT-Xent over the 2N views (`losses.nt_xent`): positive
    = the other view of the same utterance, negatives = every other view.
    The paper alternates source and target mini-batches, so negatives come
    from the same corpus: `contrastive_pairs = 'per_domain'` (the mean of a
    source and a target NT-Xent); 'joint' pools both corpora.
  * tau is not given: 0.5 (SimCLR's default; `multitask.temperature`).
  * U's width is not given: 128, the width of h (`model.projection_hidden`);
    z is 128-d as in section 4.2.1 (`model.projection_dim`).
  * IM on "source and target" (`im_domains = 'both'`, as the brief of this
    method says; 'target' restricts it to the target); each domain's mean
    prediction p_bar is its own, as in the paper's single-corpus batches.
  * Source and target, both views, go through the network as one batch (so
    batch norm sees all of them).
  * Text: "five augmented copies" of every utterance per epoch. Here every
    step draws fresh cutoff masks for its two views, so five copies per
    epoch are five passes over the data: the run's length is train.steps.
    [CLS] and [SEP] are never cut (`multitask.cutoff_keep_special`).

With all three auxiliary weights 0 the target batch is not used and, with
`multitask.augment = False`, a single clean view is trained. The baseline is
`source_only` on the same front end and network
(configs/multitask_source_only.py).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxser import augment as augment_lib
from jaxser import losses
from jaxser.methods import base
from jaxser.models import classifier
from jaxser.models import registry

AUG_TARGETS = ('type', 'transforms')
MODALITIES = ('audio', 'text')
CONTRASTIVE_PAIRS = ('per_domain', 'joint')
IM_DOMAINS = ('both', 'target')


class ProjectionMLP(nn.Module):
  """z = V relu(U h) (eq. 4); not normalised (NT-Xent normalises)."""
  hidden: int = 128
  out_dim: int = 128

  @nn.compact
  def __call__(self, h):
    u = nn.Dense(self.hidden, name='U')(h)
    return nn.Dense(self.out_dim, name='V')(nn.relu(u))


class MultitaskNet(nn.Module):
  """Front end, encoder f (the registered network), emotion head W,
  projection (U, V), augmentation-type head."""
  num_aug_outputs: int
  encoder: nn.Module
  head: nn.Module
  frontend: Any = None
  predict_from_frames: bool = False
  projection_hidden: int = 128
  projection_dim: int = 128

  def setup(self):
    # The emotion head's parameters sit beside the other heads.
    nn.share_scope(self, self.head)
    self.projection = ProjectionMLP(self.projection_hidden,
                                    self.projection_dim)
    self.aug_head = nn.Dense(self.num_aug_outputs)

  def _emotion(self, wave, lengths, *, train: bool) -> dict:
    if self.frontend is not None:
      wave, lengths = self.frontend(wave, lengths)
    return classifier.classify_outputs(
        self.encoder(wave, lengths, train=train), self.head,
        predict_from_frames=self.predict_from_frames, train=train)

  def __call__(self, wave, lengths, *, train: bool):
    out = self._emotion(wave, lengths, train=train)
    h = out['embedding']
    return dict(h=h, emotion_logits=out['logits'],
                instance_logits=out['instance_logits'],
                instance_mask=out['instance_mask'],
                z=self.projection(h), aug_logits=self.aug_head(h))

  def classify(self, wave, lengths):
    return self._emotion(wave, lengths, train=False)['logits']


def _choice(cfg, field: str, known) -> str:
  value = cfg[field]
  if value not in known:
    raise ValueError(f'config.multitask.{field}: unknown value {value!r}; '
                     f'known: {", ".join(known)}')
  return value


@base.register('multitask')
class Multitask(base.Method):
  """Multitask SER with NT-Xent, IM and augmentation-type tasks."""

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    m = config.multitask
    self.aug_target = _choice(m, 'aug_target', AUG_TARGETS)
    self.contrastive_pairs = _choice(m, 'contrastive_pairs',
                                     CONTRASTIVE_PAIRS)
    self.im_domains = _choice(m, 'im_domains', IM_DOMAINS)
    for field in ('lambda_cl', 'lambda_im', 'lambda_aug'):
      if m[field] < 0:
        raise ValueError(f'config.multitask.{field}: must be >= 0, got '
                         f'{m[field]}')
    if m.lambda_aug > 0 and not m.augment:
      raise ValueError('config.multitask.lambda_aug: the augmentation-type '
                       'task needs config.multitask.augment = True')
    self.modality = self.modality_of(config)
    if self.modality == 'audio':
      self.aug_config = augment_lib.AugmentConfig(**m.aug.to_dict())
    self.cutoff_p = float(m.get('cutoff_p', 0.15))
    if not 0.0 <= self.cutoff_p < 1.0:
      raise ValueError('config.multitask.cutoff_p: must be in [0, 1), got '
                       f'{self.cutoff_p}')
    # Static structure of the step: the target batch is used only by the
    # auxiliary tasks (and not at all without target data), the second view
    # only by the contrastive task.
    self.use_target = bool(m.get('use_target', True)) and max(
        m.lambda_cl, m.lambda_im, m.lambda_aug) > 0
    self.num_views = 2 if m.lambda_cl > 0 else 1
    # The emotion model's pieces, with the network under 'encoder' as in
    # this method's parameter tree before the network registry.
    self.model = MultitaskNet(
        num_aug_outputs=(len(augment_lib.TYPES) if self.aug_target == 'type'
                         else len(augment_lib.TRANSFORMS)),
        encoder=registry.build_network(config),
        head=registry.build_head(config, num_classes),
        frontend=registry.build_frontend(config),
        predict_from_frames=self.network().predict_from_frames,
        projection_hidden=config.model.projection_hidden,
        projection_dim=config.model.projection_dim)

  @staticmethod
  def modality_of(config) -> str:
    """'text' on a network that takes token ids, else 'audio'."""
    return ('text' if registry.get(config.model.name).inputs == 'tokens'
            else 'audio')

  @classmethod
  def check_config(cls, config):
    modality = cls.modality_of(config)
    if modality == 'audio' and config.data.features != 'waveform':
      raise ValueError(
          'config.data.features: the multitask method augments raw audio '
          f"and needs 'waveform', got {config.data.features!r} (or a network "
          "that takes token ids, e.g. config.model.name='bert', for text)")
    if modality == 'text' and config.multitask.lambda_aug > 0:
      raise ValueError(
          'config.multitask.lambda_aug: text has one augmentation type '
          '(token cutoff), so no augmentation-type task; set it to 0')
    registry.check(config)

  def views(self, rng, wave, lengths):
    """num_views augmented copies of the batch and their aug-task labels.

    `wave`: (N, T) waveforms, or token ids for text.

    Returns:
      (waves (V, N, T), aug labels: (V, N) int types, or (V, N, 7) float
      transform indicators, or None without augmentation or for text).
    """
    if not self.config.multitask.augment:
      return jnp.stack([wave] * self.num_views), None
    if self.modality == 'text':
      keep = bool(self.config.multitask.get('cutoff_keep_special', True))
      return jnp.stack([
          augment_lib.token_cutoff(jax.random.fold_in(rng, v), wave, lengths,
                                   self.cutoff_p, keep)
          for v in range(self.num_views)]), None
    waves, labels = [], []
    for v in range(self.num_views):
      x, d = augment_lib.augment(jax.random.fold_in(rng, v), wave, lengths,
                                 self.aug_config)
      waves.append(x)
      labels.append(d.aug_type if self.aug_target == 'type'
                    else d.applied.astype(jnp.float32))
    return jnp.stack(waves), jnp.stack(labels)

  def loss(self, params, batch_stats, method_state, batch, rng, step):
    del step
    m = self.config.multitask
    src, tgt = batch['source'], batch['target']
    domains = [src, tgt] if self.use_target else [src]
    num_domains, n = len(domains), src['features'].shape[0]
    wave = jnp.concatenate([d['features'] for d in domains])
    lengths = jnp.concatenate([d['length'] for d in domains])
    aug_rng, dropout_rng = jax.random.split(rng)
    waves, aug_labels = self.views(aug_rng, wave, lengths)
    num_views = waves.shape[0]

    out, updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats},
        waves.reshape((-1,) + wave.shape[1:]), jnp.tile(lengths, num_views),
        train=True, mutable=['batch_stats'], rngs={'dropout': dropout_rng})
    # (views, domains, n, ...): rows are view-major, then domain, then example.
    out = jax.tree.map(
        lambda a: a.reshape((num_views, num_domains, n) + a.shape[1:]), out)
    logits = out['emotion_logits']

    per_view = [self.emotion_loss(
        {k: out[k][v, 0] for k in ('instance_logits', 'instance_mask')},
        src['label']) for v in range(num_views)]
    loss_emotion = jnp.mean(jnp.stack([l for l, _ in per_view]))
    total = loss_emotion
    metrics = dict(loss_emotion=loss_emotion,
                   source_acc=jnp.mean(jnp.stack([a for _, a in per_view])))

    if m.lambda_cl > 0:
      z = out['z']
      if self.contrastive_pairs == 'per_domain':
        loss_cl = jnp.mean(jnp.stack([
            losses.nt_xent(z[0, d], z[1, d], temperature=m.temperature)
            for d in range(num_domains)]))
      else:
        flat = z.reshape((num_views, num_domains * n, -1))
        loss_cl = losses.nt_xent(flat[0], flat[1], temperature=m.temperature)
      total += m.lambda_cl * loss_cl
      metrics['loss_cl'] = loss_cl

    if m.lambda_im > 0:
      im_domains = (range(num_domains) if self.im_domains == 'both'
                    else [num_domains - 1])
      loss_im = jnp.mean(jnp.stack([
          losses.information_maximization(logits[v, d])
          for v in range(num_views) for d in im_domains]))
      total += m.lambda_im * loss_im
      metrics['loss_im'] = loss_im

    if m.lambda_aug > 0:
      aug_logits = out['aug_logits'].reshape(
          (-1, out['aug_logits'].shape[-1]))
      if self.aug_target == 'type':
        y = aug_labels.reshape(-1)
        loss_aug = losses.cross_entropy(aug_logits, y)
        aug_acc = jnp.mean(jnp.argmax(aug_logits, -1) == y)
      else:
        y = aug_labels.reshape(aug_logits.shape)
        loss_aug = jnp.mean(optax.sigmoid_binary_cross_entropy(aug_logits, y))
        aug_acc = jnp.mean((aug_logits > 0) == (y > 0.5))
      total += m.lambda_aug * loss_aug
      metrics.update(loss_aug=loss_aug, aug_acc=aug_acc)

    return total, (updates.get('batch_stats', batch_stats), method_state,
                   metrics)
