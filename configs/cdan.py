"""CDAN (Long et al., NeurIPS 2018): a domain discriminator conditioned on
features x predictions, on the Emo-DNA emotion network (CNN + TCN).

  python -m jaxser.main --config=configs/cdan.py --workdir=/tmp/cdan
  python -m jaxser.main --config=configs/cdan.py --workdir=/tmp/cdan_rand \
      --config.cdan.randomized=always --config.data.source=casia \
      --config.data.target=emovo --config.data.root=../shared/corpora \
      --config.data.task=arousal
"""

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'cdan'
  c.cdan = ml_collections.ConfigDict()
  # Multilinear map: auto | always | never randomized (jaxser.methods.cdan).
  c.cdan.randomized = 'auto'
  c.cdan.max_multilinear_dim = 4096  # auto: full map up to d*C (paper: 4096).
  c.cdan.random_dim = 1024  # Randomized map's output size (paper: 1024).
  c.cdan.trade_off = 1.0  # Weight of the domain loss (TLL default: 1).
  c.cdan.discriminator_hidden = 1024  # Discriminator width (TLL: 1024).
  # GRL coefficient: warm_start | dann_paper | constant (jaxser.methods.dann).
  # TLL's CDAN uses warm_start with the defaults below; the CDAN reference
  # code uses it with alpha = 10, max_iters = 10000.
  c.cdan.schedule = 'warm_start'
  c.cdan.lo = 0.0  # warm_start start (TLL: 0).
  c.cdan.hi = 1.0  # warm_start limit (TLL: 1); the constant schedule's value.
  c.cdan.alpha = 1.0  # warm_start slope (TLL: 1).
  c.cdan.max_iters = 1000.0  # warm_start N (TLL: 1000).
  c.cdan.gamma = 10.0  # dann_paper: 2 / (1 + exp(-gamma p)) - 1 (DANN: 10).
  # Emo-DNA's contrastive class alignment (its Table 5): + scl_weight * L_SCL
  # on a projection of E, source + confident target rows (jaxser.methods.scl);
  # 0: off (the method itself). Emo-DNA's own weight alpha_1 is 0.1.
  c.cdan.scl_weight = 0.0
  c.cdan.scl_temperature = 0.01  # tau_s (Emo-DNA: 1e-2).
  return c
