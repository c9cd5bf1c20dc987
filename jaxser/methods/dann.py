"""DANN: domain-adversarial training through a gradient reversal layer
(Ganin & Lempitsky, ICML 2015; Ganin et al., JMLR 2016) on the emotion
network of `config.model` (by default Emo-DNA's E + E_e, as Emo-DNA compares
all methods on it; E below is the network's utterance embedding):

  L = CE(phi_e(E^S), y^S) + trade_off * L_d,
  L_d = 1/2 [mean_{i in S} BCE(D(R(E_i)), 1) + mean_{j in T} BCE(D(R(E_j)), 0)],

with D the domain discriminator (jaxser.models.discriminator; source = 1,
target = 0, as transfer-learning-library's DomainAdversarialLoss) and R the
gradient reversal layer: the identity forward, -lambda I backward, so one
minimisation trains D to tell the corpora apart and E + E_e to fool it.
Source and target batches pass through the network as one batch, so batch
norm (in the encoder and in D) sees both corpora.

The coefficient lambda follows `config.<method>.schedule` (`grl_coefficient`,
also used by CDAN and BSP), with i the 0-based optimiser step:

  warm_start  2 (hi - lo) / (1 + exp(-alpha i / N)) - (hi - lo) + lo
              (transfer-learning-library's WarmStartGradientReverseLayer;
              lo = 0, hi = 1, alpha = 1, N = max_iters = 1000 by default),
  dann_paper  2 / (1 + exp(-gamma p)) - 1, p = i / config.train.steps
              (the DANN paper, gamma = 10; its learning-rate annealing is not
              reproduced: the optimiser is the shared loop's),
  constant    hi.

`DANN` is also the base of CDAN(+E) and BSP, which override the hooks
`domain_input`, `domain_weights` and `penalty`.

All of them take Emo-DNA's contrastive class alignment as an option
(`config.<method>.scl_weight` > 0: + scl_weight * L_SCL, Emo-DNA Table 5;
`jaxser.methods.scl`).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxser import losses
from jaxser.methods import base
from jaxser.methods import scl
from jaxser.models import discriminator

SCHEDULES = ('warm_start', 'dann_paper', 'constant')


def grl_coefficient(step, total_steps: int, *, schedule: str, lo: float = 0.0,
                    hi: float = 1.0, alpha: float = 1.0,
                    max_iters: float = 1000.0,
                    gamma: float = 10.0) -> jnp.ndarray:
  """The gradient-reversal coefficient lambda at `step` (module docstring).

  Args:
    step: 0-based optimiser step (may be traced).
    total_steps: length of training, for 'dann_paper' (static).
    schedule: 'warm_start', 'dann_paper' or 'constant'.
    lo: 'warm_start' start value.
    hi: 'warm_start' limit; the 'constant' value.
    alpha: 'warm_start' slope.
    max_iters: 'warm_start' N.
    gamma: 'dann_paper' slope.

  Returns:
    float32 scalar.
  """
  i = jnp.asarray(step, jnp.float32)
  if schedule == 'warm_start':
    return (2.0 * (hi - lo) / (1.0 + jnp.exp(-alpha * i / max_iters))
            - (hi - lo) + lo)
  if schedule == 'dann_paper':
    return 2.0 / (1.0 + jnp.exp(-gamma * i / total_steps)) - 1.0
  if schedule == 'constant':
    return jnp.asarray(hi, jnp.float32)
  raise ValueError(f'unknown GRL schedule {schedule!r}; known: '
                   f'{", ".join(SCHEDULES)}')


@base.register('dann')
class DANN(base.Method):
  """DANN (see module docstring); hyper-parameters in config.<name>."""

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    self.hparams = config[self.name]
    if self.hparams.schedule not in SCHEDULES:
      raise ValueError(f'config.{self.name}.schedule: unknown schedule '
                       f'{self.hparams.schedule!r}; known: '
                       f'{", ".join(SCHEDULES)}')
    self.scl = scl.Option(self.hparams, self.name, num_classes)
    self.model = self.scl.wrap(discriminator.AdversarialNet(
        self.build_emotion_model(),
        discriminator_hidden=self.hparams.discriminator_hidden))

  def init_state(self):
    return self.scl.init_state()

  def coefficient(self, step) -> jnp.ndarray:
    """lambda of the gradient reversal layer at `step`."""
    h = self.hparams
    return grl_coefficient(step, self.config.train.steps, schedule=h.schedule,
                           lo=h.lo, hi=h.hi, alpha=h.alpha,
                           max_iters=h.max_iters, gamma=h.gamma)

  def domain_input(self, reversed_e, logits):
    """The discriminator's input: DANN feeds it R(E) itself.

    Args:
      reversed_e: (B, d) features after the gradient reversal layer.
      logits: (B, C) emotion logits (unused by DANN).
    """
    del logits
    return reversed_e

  def domain_weights(self, logits, coeff):
    """Per-example weights of L_d; None: unweighted (DANN)."""
    del logits, coeff
    return None

  def penalty(self, e_s, e_t):
    """An extra loss term on the source and target features and its metrics
    (none for DANN)."""
    del e_s, e_t
    return 0.0, {}

  def _forward(self, module, x, lengths, coeff, *, train):
    """(emotion model outputs, domain logits); run as `module`'s method by
    flax. The discriminator sees the utterance embedding E."""
    out = module(x, lengths, train=train)
    h = self.domain_input(losses.grad_reverse(out['embedding'], coeff),
                          out['logits'])
    return out, module.discriminate(h, train=train)

  def init_variables(self, rng, batch):
    # Through the discriminator too, to create its variables: its input size
    # depends on the method (CDAN's map of E and the emotion logits).
    src = batch['source']
    return self.model.init({'params': rng, 'dropout': rng}, src['features'],
                           src['length'], 1.0, train=False,
                           method=self._forward)

  def loss(self, params, batch_stats, method_state, batch, rng, step):
    src, tgt = batch['source'], batch['target']
    n_s = src['features'].shape[0]
    x = jnp.concatenate([src['features'], tgt['features']])
    lengths = jnp.concatenate([src['length'], tgt['length']])
    coeff = self.coefficient(step)
    (out, domain_logits), updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, x, lengths, coeff,
        train=True, method=self._forward, mutable=['batch_stats'],
        rngs={'dropout': rng})

    e = out['embedding']
    loss_emotion, acc = self.emotion_loss(out, src['label'])
    loss_domain, domain_acc = losses.domain_adversarial_loss(
        domain_logits, n_s, self.domain_weights(out['logits'], coeff))
    penalty, penalty_metrics = self.penalty(e[:n_s], e[n_s:])
    loss_scl, method_state, scl_metrics = self.scl.loss(out, src['label'],
                                                         method_state)
    loss = (loss_emotion + self.hparams.trade_off * loss_domain + penalty
            + loss_scl)
    metrics = dict(loss_emotion=loss_emotion, loss_domain=loss_domain,
                   domain_acc=domain_acc, grl_coeff=coeff, source_acc=acc,
                   **penalty_metrics, **scl_metrics)
    return loss, (updates['batch_stats'], method_state, metrics)
