"""What a method supplies to the generic train loop (`jaxser.train`).

A method owns its model, its loss and any extra state it carries from step to
step (e.g. Emo-DNA's EMA confidence threshold). The loop owns everything else:
the train state, the optimiser, sharding, checkpoints, evaluation.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import ml_collections

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


def create(config: ml_collections.ConfigDict, num_classes: int,
           class_counts: Sequence[int] | None = None) -> 'Method':
  """The `config.method` method for `num_classes` classes; `class_counts`
  are the source training utterances per class (see `Method`)."""
  return get(config.method)(config, num_classes, class_counts)


class Method:
  """Base class of methods.

  Subclasses set `self.model` (a linen module whose variables are 'params' and
  optionally 'batch_stats') and implement `loss` and `logits` (and
  `init_variables` where the default does not fit); `init_state` returns the
  method's extra state (a pytree of arrays, checkpointed with the rest of the
  train state).
  """
  name: str = ''
  # Source training utterances per class, for the methods that weight by
  # class (e.g. MMD-SER); None when unknown (e.g. the benchmark's random
  # batches). Every method takes them, so `create` builds any method alike.
  class_counts: tuple[int, ...] | None = None

  def __init__(self, config: ml_collections.ConfigDict, num_classes: int,
               class_counts: Sequence[int] | None = None):
    self.config = config
    self.num_classes = num_classes
    if class_counts is not None:
      if len(class_counts) != num_classes:
        raise ValueError(f'class_counts: {len(class_counts)} counts for '
                         f'{num_classes} classes')
      self.class_counts = tuple(int(c) for c in class_counts)

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
    """Emotion logits in inference mode."""
    raise NotImplementedError
