"""DIFL: domain-invariant feature learning for cross-corpus SER (Gao, Okada,
Wang, Liu and Dang, "Domain-invariant feature learning for cross corpus
speech emotion recognition"; sections 2-3).

A CNN-BLSTM G (jaxser.models.cnn_blstm) classifies 265 ms spectrogram
segments (`spec_segments`, 32 x 129); an utterance is predicted from the mean
of its valid segments' posteriors. Training (every valid segment a sample,
carrying its utterance's labels):

  L   = L_E + w_D L_D, through R_gamma                          (eq. 1)
  L_D = L_g + L_l + L_c   (gender, language, corpus heads)      (eq. 2)
  L_E = lambda CE + (1 - lambda) Center                         (eq. 6)
  Center = 1/M sum_i ||G(x_i) - c_{y_i}||^2                     (eq. 4)
  c_j <- c_j - alpha sum_{i: y_i = j} (c_j - G(x_i)) / (1 + m_j) (eq. 5)

Eq. 2 is DIFL's DANN_2; its DANN_1 (section 4) has speaker and corpus
heads instead: `heads` = 'dann_2' (corpus, language, gender, the paper's
proposal and the default) or 'dann_1' (speaker, corpus), or any
comma-separated subset of speaker, corpus, language, gender.

R_gamma is the gradient reversal layer (`losses.grad_reverse`): identity
forward, -gamma I backward. Eq. 1 writes L = L_E + gamma L_D with gamma =
-0.3: read, as in DANN, as the heads minimising L_D while G receives -0.3
times its gradient, i.e. the heads sit behind R_0.3 and w_D = 1 (the heads'
own gradient is unscaled; `domain_weight` scales both).

What the heads see (`adversary_data`): 'source_and_target' (default): R(G)
of the valid segments of both the source and the target batch: corpus,
language, gender and speaker are metadata, not emotion labels, so using the
target's is legitimate (the paper's adversary separates "the source and
target domain", section 2.1). 'source': the source batch alone, and the
target batch is not run through G at all (its audio reaches neither the
heads nor batch normalisation's statistics): DIFL's cross-corpus setting
read literally, "trained only on the IEMOCAP and tested on the other three
corpora" as unseen datasets (section 3.2). With one source corpus the
corpus and language heads then have a single class (their loss goes to 0)
and only gender or speaker adapts; under `multi_corpus` every corpus is a
source, so 'source' and 'source_and_target' see the same corpora. Segments
whose speaker, language or gender is unknown (-1) are left out of that
head's loss; the emotion loss and the centres use the source segments
only.

The network is `config.model.name` (`cnn_blstm`, DIFL's, in
configs/difl.py). On a network that predicts from its embedding rather than
its segments, each utterance is one example: G(x) is the utterance
embedding, and the heads, the centres and the emotion loss see one row per
utterance.

Choices where the paper is silent or ambiguous (each a config field of
`config.difl` unless said otherwise):
  - Layer sizes: "similar to Satt et al." only; ours are in
    jaxser.models.cnn_blstm (`config.model.cnn_blstm.*`).
  - Each head is Dense(head_hidden) -> ReLU -> Dense(K) on G (the paper
    gives no head architecture). The corpus head has one class per corpus of
    the run (`pipeline.corpus_names`); the language head `num_languages`
    classes (0: as many as corpora, an upper bound as every corpus loader
    gives one language per corpus; labels past it are left out); gender 2;
    speaker `num_speakers` (0: the speakers of every corpus of the run,
    `corpus.speaker_vocabulary` of their listings, which are read when the
    method is built: set it to apply a run where the corpora are absent).
  - Eq. 4 (1/M sum ||x - c||^2) is twice Wen et al.'s 1/2-scaled center loss:
    `center_loss_form` 'difl' (default) or 'wen'.
  - Eq. 5 prints Wen et al.'s delta_j as the new centre and gives no step
    size: c_j <- c_j - alpha delta_j with Wen et al.'s alpha = 0.5
    (`losses.update_centers`), m_j counting class-j segments of the batch;
    centres start at zero, are updated once per step after the loss has
    used them, and live in the method state (checkpointed).
  - gamma is constant (`schedule`: constant); `warm_start` or `dann_paper`
    multiply gamma by DANN's schedules (jaxser.methods.dann).
  - lambda = 0.5 is the paper's, but with it the center loss dominates the
    first steps (features shrink towards the centres before they carry any
    emotion): on the synthetic corpora CE fell from 1.39 to 0.83 in 10 steps
    with lambda = 1 but stayed within 0.05 of log 4 for 20 steps with 0.5.
    `softmax_weight` and `center_loss_form` ('wen' halves it) are the knobs.
  - DANN_1's speakers are told apart per corpus (speaker ids are unique
    only within a corpus, `corpus.speaker_key`); the head reads the batch's
    'speaker' key (jaxser.data.pipeline).
  - Whether the cross-corpus adversary saw the target's audio is not said
    (`adversary_data`, above).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxser import losses
from jaxser.data import corpus as corpus_lib
from jaxser.data import pipeline
from jaxser.methods import base
from jaxser.methods import dann
from jaxser.models import cnn_blstm
from jaxser.models import registry

HEADS = ('speaker', 'corpus', 'language', 'gender')
# The paper's two variants (section 4, Tables 2-4).
VARIANTS = {'dann_1': ('speaker', 'corpus'),
            'dann_2': ('corpus', 'language', 'gender')}
ADVERSARY_DATA = ('source_and_target', 'source')
# The batch key holding each head's labels.
HEAD_LABEL_KEYS = {'speaker': 'speaker', 'corpus': 'domain',
                   'language': 'language', 'gender': 'gender'}
# Multiplier of losses.center_loss (1/2-scaled) per form.
CENTER_LOSS_FORMS = {'difl': 2.0, 'wen': 1.0}


def emotion_loss(logits: jnp.ndarray, features: jnp.ndarray,
                 labels: jnp.ndarray, centers: jnp.ndarray,
                 mask: jnp.ndarray, *, softmax_weight: float,
                 center_scale: float = 2.0):
  """DIFL's emotion loss (eq. 6) over the masked rows (segments).

  With m_i the mask, M = sum_i m_i, z_i the logits, f_i the features and
  c the (constant) centres:

    CE     = 1/M sum_i m_i (-log softmax(z_i)_{y_i})              (eq. 3)
    Center = s/2 * 1/M sum_i m_i ||f_i - c_{y_i}||^2             (eq. 4)
    L_E    = lambda CE + (1 - lambda) Center                      (eq. 6)

  s = center_scale: 2 gives eq. 4, 1 Wen et al.'s 1/2-scaled loss.

  Args:
    logits: (N, C).
    features: (N, d) G(x), the input of the emotion classifier.
    labels: (N,) emotion classes.
    centers: (C, d) class centres (no gradient flows into them).
    mask: (N,) 0/1 or bool, the rows that count.
    softmax_weight: lambda.
    center_scale: s.

  Returns:
    (L_E, CE, Center) scalars.
  """
  ce = losses.cross_entropy(logits, labels, mask)
  center = center_scale * losses.center_loss(features, labels, centers, mask)
  return softmax_weight * ce + (1.0 - softmax_weight) * center, ce, center


def domain_loss(head_logits: dict[str, jnp.ndarray],
                head_labels: dict[str, jnp.ndarray], mask: jnp.ndarray):
  """DIFL's domain loss (eq. 2): the sum of the heads' cross-entropies.

    L_D = sum_h 1/M_h sum_i k^h_i (-log softmax(z^h_i)_{g^h_i}),
    k^h_i = m_i [0 <= g^h_i < K_h],  M_h = max(sum_i k^h_i, 1),

  so rows with an unknown label (-1) or one past the head's K_h classes
  count in no head's loss; a head with no known row adds 0.

  Args:
    head_logits: head name -> (N, K_h) logits.
    head_labels: head name -> (N,) int labels, -1 where unknown.
    mask: (N,) 0/1 or bool, the rows that count.

  Returns:
    (L_D, {head: loss}, {head: accuracy over its known rows}).
  """
  total, per_head, accuracy = 0.0, {}, {}
  for name, z in head_logits.items():
    g = head_labels[name]
    known = mask.astype(z.dtype) * ((g >= 0) & (g < z.shape[-1])).astype(
        z.dtype)
    per_head[name] = losses.cross_entropy(z, g, known)
    hits = (jnp.argmax(z, -1) == g).astype(z.dtype)
    accuracy[name] = jnp.sum(known * hits) / jnp.maximum(jnp.sum(known), 1.0)
    total = total + per_head[name]
  return total, per_head, accuracy


class DomainHead(nn.Module):
  """Dense(hidden) -> ReLU -> Dense(num_classes): one adversarial head."""
  num_classes: int
  hidden: int = 128

  @nn.compact
  def __call__(self, h):
    return nn.Dense(self.num_classes)(nn.relu(nn.Dense(self.hidden)(h)))


class DIFLNet(nn.Module):
  """The emotion model (network G + emotion classifier, `emotion_net`) plus
  the adversarial heads.

  `__call__` is the emotion model alone (inference never touches the
  heads); `domain_logits` maps (reversed) features to each head's logits.
  """
  emotion_net: nn.Module
  head_sizes: tuple[tuple[str, int], ...] = ()
  head_hidden: int = 128

  def setup(self):
    self.heads = {name: DomainHead(k, self.head_hidden)
                  for name, k in self.head_sizes}

  def __call__(self, x, lengths, *, train: bool):
    return self.emotion_net(x, lengths, train=train)

  def classify(self, x, lengths):
    return self.emotion_net.classify(x, lengths)

  def domain_logits(self, h):
    return {name: head(h) for name, head in self.heads.items()}


def parse_heads(heads: str) -> list[str]:
  """The head names of `config.difl.heads`: a variant of VARIANTS or a
  comma-separated subset of HEADS."""
  text = str(heads).strip().lower()
  names = list(VARIANTS.get(text, [])) or [
      s.strip() for s in text.split(',') if s.strip()]
  unknown = sorted(set(names) - set(HEADS))
  if unknown or len(set(names)) != len(names):
    raise ValueError(f'config.difl.heads: {heads!r}: give dann_1, dann_2 or '
                     f'distinct heads of {", ".join(HEADS)}')
  return names


def num_speakers(data_cfg) -> int:
  """The number of speakers of the run's corpora (the speaker head's size):
  their listings are read (not their features)."""
  corpora = [corpus_lib.load(name, corpus_lib.corpus_root(name, data_cfg))
             for name in pipeline.corpus_names(data_cfg)]
  n = len(corpus_lib.speaker_vocabulary(corpora))
  if not n:
    raise ValueError('config.difl.heads: the speaker head needs speakers, '
                     'and no corpus of the run names any')
  return n


def _per_segment(values: jnp.ndarray, segments: int) -> jnp.ndarray:
  """(B,) utterance values -> (B * S,) in `flatten_segments` order (S: the
  examples per utterance, 1 on a network that predicts from its
  embedding)."""
  return jnp.repeat(values, segments, total_repeat_length=values.shape[0]
                    * segments)


@base.register('difl')
class DIFL(base.Method):
  """DIFL (see module docstring); hyper-parameters in config.difl."""

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    h = self.hparams = config.difl
    if h.schedule not in dann.SCHEDULES:
      raise ValueError(f'config.difl.schedule: unknown schedule '
                       f'{h.schedule!r}; known: {", ".join(dann.SCHEDULES)}')
    if h.center_loss_form not in CENTER_LOSS_FORMS:
      raise ValueError(f'config.difl.center_loss_form: unknown form '
                       f'{h.center_loss_form!r}; known: '
                       f'{", ".join(CENTER_LOSS_FORMS)}')
    if not 0.0 <= h.softmax_weight <= 1.0:
      raise ValueError('config.difl.softmax_weight: lambda must be in [0, 1], '
                       f'got {h.softmax_weight}')
    self.heads = parse_heads(h.heads)
    self.adversary_data = h.get('adversary_data', 'source_and_target')
    if self.adversary_data not in ADVERSARY_DATA:
      raise ValueError(f'config.difl.adversary_data: unknown value '
                       f'{self.adversary_data!r}; known: '
                       f'{", ".join(ADVERSARY_DATA)}')
    num_corpora = len(pipeline.corpus_names(config.data))
    sizes = {'corpus': num_corpora,
             'language': h.num_languages or num_corpora,
             'gender': len(pipeline.GENDERS)}
    if 'speaker' in self.heads:
      sizes['speaker'] = h.get('num_speakers', 0) or num_speakers(config.data)
    self.head_sizes = tuple((k, sizes[k]) for k in self.heads)
    self.model = DIFLNet(self.build_emotion_model(), self.head_sizes,
                         h.head_hidden)

  def coefficient(self, step) -> jnp.ndarray:
    """gamma of the gradient reversal layer at `step`."""
    return self.hparams.gamma * dann.grl_coefficient(
        step, self.config.train.steps, schedule=self.hparams.schedule)

  def _forward(self, module, x, lengths, coeff, *, train):
    """(emotion model outputs, head logits); run as `module`'s method by
    flax. The heads see every example's G: each segment's on a network that
    predicts from its segments, each utterance's embedding otherwise."""
    out = module(x, lengths, train=train)
    features = cnn_blstm.flatten_segments(out['instances'])
    return out, module.domain_logits(losses.grad_reverse(features, coeff))

  def init_variables(self, rng, batch):
    # Through the heads too, to create their variables.
    src = batch['source']
    return self.model.init({'params': rng, 'dropout': rng}, src['features'],
                           src['length'], 1.0, train=False,
                           method=self._forward)

  def init_state(self):
    return {'centers': jnp.zeros((self.num_classes,
                                  registry.embedding_dim(self.config)),
                                 jnp.float32)}

  def loss(self, params, batch_stats, method_state, batch, rng, step):
    h = self.hparams
    src, tgt = batch['source'], batch['target']
    # Which domains the heads (and G's batch statistics) see.
    seen = [src] if self.adversary_data == 'source' else [src, tgt]
    missing = [HEAD_LABEL_KEYS[k] for k in self.heads
               if HEAD_LABEL_KEYS[k] not in src]
    if missing:
      raise ValueError(f'config.difl.heads: the batches carry no {missing} '
                       'key (the data pipeline gives them)')
    x = jnp.concatenate([d['features'] for d in seen])
    lengths = jnp.concatenate([d['length'] for d in seen])
    coeff = self.coefficient(step)
    (out, head_logits), updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, x, lengths, coeff,
        train=True, method=self._forward, mutable=['batch_stats'],
        rngs={'dropout': rng})

    segments = out['instance_mask'].shape[1]
    n_s = src['features'].shape[0] * segments  # Source segments come first.
    mask = cnn_blstm.flatten_segments(out['instance_mask'])
    logits = cnn_blstm.flatten_segments(out['instance_logits'])[:n_s]
    features = cnn_blstm.flatten_segments(out['instances'])[:n_s]
    labels = _per_segment(src['label'], segments)
    centers = method_state['centers']
    loss_e, ce, center = emotion_loss(
        logits, features, labels, centers, mask[:n_s],
        softmax_weight=h.softmax_weight,
        center_scale=CENTER_LOSS_FORMS[h.center_loss_form])
    new_centers = losses.update_centers(centers, features, labels,
                                        alpha=h.center_alpha, mask=mask[:n_s])

    head_labels = {
        name: _per_segment(jnp.concatenate([d[HEAD_LABEL_KEYS[name]]
                                            for d in seen]), segments)
        for name in self.heads}
    loss_d, per_head, head_acc = domain_loss(head_logits, head_labels, mask)
    loss = loss_e + h.domain_weight * loss_d

    valid = mask[:n_s].astype(jnp.float32)
    acc = jnp.sum(valid * (jnp.argmax(logits, -1) == labels)) / jnp.maximum(
        jnp.sum(valid), 1.0)
    metrics = dict(loss_emotion=ce, loss_center=center, loss_e=loss_e,
                   loss_domain=loss_d, grl_coeff=coeff, source_acc=acc,
                   **{f'loss_{k}': v for k, v in per_head.items()},
                   **{f'{k}_acc': v for k, v in head_acc.items()})
    return loss, (updates.get('batch_stats', batch_stats),
                  {'centers': new_centers}, metrics)
