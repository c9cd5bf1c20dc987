"""What a method supplies to the generic train loop (`jaxser.train`).

A method is an objective: it owns its loss, its own heads (discriminators,
projections, ...) and any extra state it carries from step to step (e.g.
Emo-DNA's EMA confidence threshold). Its network is not its own: it builds
the emotion model of `config.model` through the network registry
(`build_emotion_model`, `jaxser.models.registry`), so every method runs on
every registered network whose outputs it needs, and its baseline is
`source_only` on the same network. The loop owns everything else: the train
state, the optimiser, sharding, checkpoints, evaluation.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from jaxser import losses
from jaxser.models import classifier
from jaxser.models import registry

PyTree = Any
_METHODS: dict[str, type['Method']] = {}


def register(name: str):
  def wrap(cls):
    cls.name = name
    _METHODS[name] = cls
    return cls
  return wrap


def names() -> list[str]:
  return sorted(_METHODS)


def get(name: str) -> type['Method']:
  if name not in _METHODS:
    raise ValueError(f'config.method: unknown method {name!r}; known: '
                     f'{", ".join(names())}')
  return _METHODS[name]


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks, before any data is read, that `config.method` is known and that
  it and the data config fit `config.model`'s network; one-line ValueErrors
  naming the field."""
  get(config.method).check_config(config)


def create(config: ml_collections.ConfigDict, num_classes: int,
           class_counts: Sequence[int] | None = None) -> 'Method':
  """The `config.method` method for `num_classes` classes; `class_counts`
  are the source training utterances per class (see `Method`)."""
  return get(config.method)(config, num_classes, class_counts)


class Method:
  """Base class of methods.

  Subclasses set `self.model` (a linen module whose variables are 'params' and
  optionally 'batch_stats', holding the emotion model of
  `build_emotion_model`) and implement `loss` (and `init_variables` where
  the default does not fit); `logits` calls the model's `classify` method;
  `init_state` returns the method's extra state (a pytree of arrays,
  checkpointed with the rest of the train state).
  """
  name: str = ''
  # Source training utterances per class, for the methods that weight by
  # class (e.g. MMD-SER); None when unknown (e.g. the benchmark's random
  # batches). Every method takes them, so `create` builds any method alike.
  class_counts: tuple[int, ...] | None = None
  # True for a method that loads and batches its own data (the TTS model)
  # instead of the emotion corpora's source/target streams.
  own_data: bool = False
  # Source corpora a run needs (`data.source=a,b`); a grid leaves a method's
  # cells with fewer out of its tables ('-') instead of failing on them.
  min_sources: int = 1

  def __init__(self, config: ml_collections.ConfigDict, num_classes: int,
               class_counts: Sequence[int] | None = None):
    self.config = config
    self.num_classes = num_classes
    if class_counts is not None:
      if len(class_counts) != num_classes:
        raise ValueError(f'class_counts: {len(class_counts)} counts for '
                         f'{num_classes} classes')
      self.class_counts = tuple(int(c) for c in class_counts)
    self.check_config(config)

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> None:
    """Raises a one-line ValueError naming the field where the config does
    not fit this method or its network. The default: the data config fits
    the network (`registry.check`); methods with more needs extend it."""
    registry.check(config)

  def network(self) -> registry.Network:
    """The registered network of `config.model.name`."""
    return registry.get(self.config.model.name)

  def build_emotion_model(self) -> classifier.EmotionModel:
    """Front end -> network -> emotion head of `config.model`
    (`jaxser.models.classifier`)."""
    return registry.build(self.config, self.num_classes)

  def emotion_loss(self, out: PyTree, labels: jax.Array,
                   weights: jax.Array | None = None):
    """Cross-entropy of the emotion model's outputs on labelled rows.

    The first len(labels) rows of `out` (an `EmotionModel` output) are the
    labelled ones. Each utterance is one example, or, on a network that
    predicts from its frames, each of its valid frames, carrying the
    utterance's label (`losses.cross_entropy` with the instance mask):

      L = sum_i m_i w_{y_i} CE(z_i, y_i) / sum_i m_i w_{y_i}.

    Args:
      out: the model's outputs ('instance_logits', 'instance_mask').
      labels: (n,) emotion classes of the first n rows.
      weights: optional (C,) class weights.

    Returns:
      (loss, accuracy over the same examples).
    """
    n = labels.shape[0]
    logits = out['instance_logits'][:n]
    k = logits.shape[1]
    if k == 1:  # One example per utterance.
      logits = logits[:, 0]
      loss = losses.cross_entropy(logits, labels, weights=weights)
      return loss, jnp.mean(jnp.argmax(logits, -1) == labels)
    logits = logits.reshape((n * k, -1))
    mask = out['instance_mask'][:n].reshape(n * k).astype(logits.dtype)
    labels = jnp.repeat(labels, k, total_repeat_length=n * k)
    loss = losses.cross_entropy(logits, labels, mask, weights=weights)
    hits = (jnp.argmax(logits, -1) == labels).astype(logits.dtype)
    return loss, jnp.sum(mask * hits) / jnp.maximum(jnp.sum(mask), 1.0)

  def init_variables(self, rng: jax.Array, batch: PyTree) -> PyTree:
    """Model variables {'params': ..., 'batch_stats': ...} for `batch`.

    By default `self.model(features, lengths, train=False)` on the source
    half of the batch; methods whose model needs more override this.
    """
    src = batch['source']
    return self.model.init({'params': rng, 'dropout': rng}, src['features'],
                           src['length'], train=False)

  def init_state(self) -> PyTree:
    return {}

  def pack_key(self) -> tuple:
    """What the compiled step bakes in beyond the config and the shapes
    (e.g. class weights from the source's class counts): runs whose methods
    differ here cannot share one program (`jaxser.train.train_runs`)."""
    weights = getattr(self, 'class_weights', None)
    return () if weights is None else tuple(
        round(float(w), 6) for w in jax.device_get(weights))

  def loss(self, params: PyTree, batch_stats: PyTree, method_state: PyTree,
           batch: PyTree, rng: jax.Array, step: jax.Array):
    """Training loss of one batch.

    Args:
      params: model parameters (differentiated).
      batch_stats: batch-norm statistics.
      method_state: the method's extra state.
      batch: {'source': {'features', 'length', 'label', 'domain'},
        'target': {'features', 'length', 'domain'}}; target labels are never
        present. Both halves also hold the speaker metadata 'gender' and
        'language' (ints, -1 unknown; jaxser.data.pipeline).
      rng: key for dropout and any other randomness of this step.
      step: the optimiser step (0-based) being taken.

    Returns:
      (loss, (new_batch_stats, new_method_state, metrics)) where metrics is a
      dict of scalars to log.
    """
    raise NotImplementedError

  def logits(self, variables: PyTree, features: jax.Array,
             lengths: jax.Array) -> jax.Array:
    """Emotion logits in inference mode: the model's `classify`."""
    return self.model.apply(variables, features, lengths, method='classify')
