"""A multilayer perceptron on utterance-level functionals (registered as
`mlp`): the openSMILE sets `emobase` (988), `is10` (1582), `egemaps` (88).

  x (B, D) -> [Dense -> ReLU -> Dropout] x len(hidden) -> E (B, hidden[-1])

The utterance embedding E is the last hidden layer; there is no frame
sequence (a functional describes the whole utterance). Normalise the inputs
with `config.data.normalize` (openSMILE functionals span many orders of
magnitude).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from jaxser.models import layers


class MLP(nn.Module):
  """Functionals -> utterance embedding (module docstring)."""
  hidden: Sequence[int] = (256, 128)
  dropout: float = 0.1

  def __post_init__(self):
    # Checked on construction, so a bad config fails before any tracing.
    if not self.hidden or min(self.hidden) < 1:
      raise ValueError('config.model.mlp.hidden: at least one layer of at '
                       f'least one unit, got {tuple(self.hidden)}')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, lengths, *, train: bool):
    del lengths  # One vector per utterance.
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
      x = layers.Dropout(self.dropout, deterministic=not train)(x)
    return {'embedding': x}


def from_config(options) -> MLP:
  """The network of `config.model.mlp`."""
  return MLP(hidden=tuple(options.hidden), dropout=options.dropout)
