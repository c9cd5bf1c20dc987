"""CDAN+E (Long et al., NeurIPS 2018): CDAN with each example's domain loss
weighted by 1 + exp(-entropy), on the Emo-DNA emotion network (CNN + TCN).

  python -m jaxser.main --config=configs/cdan_e.py --workdir=/tmp/cdan_e
  python -m jaxser.main --config=configs/cdan_e.py --workdir=/tmp/cdan_e_tll \
      --config.cdan_e.entropy_gradient=stop --config.data.source=casia \
      --config.data.target=emovo --config.data.root=../shared/corpora \
      --config.data.task=arousal
"""

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'cdan_e'
  c.cdan_e = ml_collections.ConfigDict()
  # Gradient through the entropy weights: reverse (CDAN reference code: a GRL
  # on the entropy) | stop (TLL).
  c.cdan_e.entropy_gradient = 'reverse'
  # The CDAN part, as configs/cdan.py.
  # Multilinear map: auto | always | never randomized (jaxser.methods.cdan).
  c.cdan_e.randomized = 'auto'
  c.cdan_e.max_multilinear_dim = 4096  # auto: full map up to d*C (paper).
  c.cdan_e.random_dim = 1024  # Randomized map's output size (paper: 1024).
  c.cdan_e.trade_off = 1.0  # Weight of the domain loss (TLL default: 1).
  c.cdan_e.discriminator_hidden = 1024  # Discriminator width (TLL: 1024).
  # GRL coefficient: warm_start | dann_paper | constant (jaxser.methods.dann).
  c.cdan_e.schedule = 'warm_start'
  c.cdan_e.lo = 0.0  # warm_start start (TLL: 0).
  c.cdan_e.hi = 1.0  # warm_start limit (TLL: 1); the constant schedule's value.
  c.cdan_e.alpha = 1.0  # warm_start slope (TLL: 1).
  c.cdan_e.max_iters = 1000.0  # warm_start N (TLL: 1000).
  c.cdan_e.gamma = 10.0  # dann_paper: 2 / (1 + exp(-gamma p)) - 1 (DANN: 10).
  # Emo-DNA's contrastive class alignment (its Table 5): + scl_weight * L_SCL
  # on a projection of E, source + confident target rows (jaxser.methods.scl);
  # 0: off (the method itself). Emo-DNA's own weight alpha_1 is 0.1.
  c.cdan_e.scl_weight = 0.0
  c.cdan_e.scl_temperature = 0.01  # tau_s (Emo-DNA: 1e-2).
  return c
