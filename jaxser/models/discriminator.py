"""Domain discriminator for the adversarial methods (DANN, CDAN, BSP).

The discriminator of transfer-learning-library's `DomainDiscriminator`
(hidden_size 1024, batch_norm=True): 2 x [Dense -> BN -> ReLU], then one
logit. The logit is positive for "source": the methods use label 1 for source
rows and 0 for target rows, as that library and the CDAN reference code do.
"""

from __future__ import annotations

import flax.linen as nn


class DomainDiscriminator(nn.Module):
  """[Dense(hidden) -> BN -> ReLU] x 2 -> Dense(1); returns (batch,) logits."""
  hidden: int = 1024

  @nn.compact
  def __call__(self, h, *, train: bool):
    for _ in range(2):
      h = nn.Dense(self.hidden)(h)
      # PyTorch's BatchNorm1d defaults, as in the reference discriminator.
      h = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       epsilon=1e-5)(h)
      h = nn.relu(h)
    return nn.Dense(1)(h)[:, 0]


class AdversarialNet(nn.Module):
  """An emotion model (network + emotion head, `emotion_net`) plus a domain
  discriminator.

  `__call__` is the emotion model alone (its outputs dict), so inference
  never touches the discriminator; `discriminate` maps the discriminator's
  input (E, or CDAN's conditioned map of it) to domain logits.
  """
  emotion_net: nn.Module
  discriminator_hidden: int = 1024

  def setup(self):
    self.discriminator = DomainDiscriminator(self.discriminator_hidden)

  def __call__(self, x, lengths, *, train: bool):
    return self.emotion_net(x, lengths, train=train)

  def classify(self, x, lengths):
    return self.emotion_net.classify(x, lengths)

  def discriminate(self, h, *, train: bool):
    return self.discriminator(h, train=train)
