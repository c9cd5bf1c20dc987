"""DANN (Ganin et al., JMLR 2016): gradient reversal into a domain
discriminator, on the Emo-DNA emotion network (CNN + TCN).

  python -m jaxser.main --config=configs/dann.py --workdir=/tmp/dann
  python -m jaxser.main --config=configs/dann.py --workdir=/tmp/dann_paper \
      --config.dann.schedule=dann_paper --config.data.source=casia \
      --config.data.target=emovo --config.data.root=../shared/corpora \
      --config.data.task=arousal
"""

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'dann'
  c.dann = ml_collections.ConfigDict()
  c.dann.trade_off = 1.0  # Weight of the domain loss (TLL default: 1).
  c.dann.discriminator_hidden = 1024  # Discriminator width (TLL: 1024).
  # GRL coefficient: warm_start | dann_paper | constant (jaxser.methods.dann).
  c.dann.schedule = 'warm_start'
  c.dann.lo = 0.0  # warm_start start (TLL WarmStartGradientReverseLayer: 0).
  c.dann.hi = 1.0  # warm_start limit (TLL: 1); the constant schedule's value.
  c.dann.alpha = 1.0  # warm_start slope (TLL: 1).
  c.dann.max_iters = 1000.0  # warm_start N (TLL: 1000).
  c.dann.gamma = 10.0  # dann_paper: 2 / (1 + exp(-gamma p)) - 1 (paper: 10).
  # Emo-DNA's contrastive class alignment (its Table 5): + scl_weight * L_SCL
  # on a projection of E, source + confident target rows (jaxser.methods.scl);
  # 0: off (the method itself). Emo-DNA's own weight alpha_1 is 0.1.
  c.dann.scl_weight = 0.0
  c.dann.scl_temperature = 0.01  # tau_s (Emo-DNA: 1e-2).
  return c
