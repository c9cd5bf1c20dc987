"""BSP+DANN (Chen et al., ICML 2019): DANN plus the squared largest singular
values of the source and target feature batches, on the Emo-DNA emotion
network (CNN + TCN).

  python -m jaxser.main --config=configs/bsp.py --workdir=/tmp/bsp
  python -m jaxser.main --config=configs/bsp.py --workdir=/tmp/bsp_casia \
      --config.data.source=casia --config.data.target=emovo \
      --config.data.root=../shared/corpora --config.data.task=valence \
      --config.bsp.bsp_weight=2e-4
"""

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'bsp'
  c.bsp = ml_collections.ConfigDict()
  c.bsp.bsp_weight = 1e-4  # Weight of the spectral penalty (paper: 1e-4).
  c.bsp.bsp_k = 1  # Largest singular values penalised per corpus (paper: 1).
  # The DANN part, as configs/dann.py.
  c.bsp.trade_off = 1.0  # Weight of the domain loss (TLL default: 1).
  c.bsp.discriminator_hidden = 1024  # Discriminator width (TLL: 1024).
  # GRL coefficient: warm_start | dann_paper | constant (jaxser.methods.dann).
  c.bsp.schedule = 'warm_start'
  c.bsp.lo = 0.0  # warm_start start (TLL WarmStartGradientReverseLayer: 0).
  c.bsp.hi = 1.0  # warm_start limit (TLL: 1); the constant schedule's value.
  c.bsp.alpha = 1.0  # warm_start slope (TLL: 1).
  c.bsp.max_iters = 1000.0  # warm_start N (TLL: 1000).
  c.bsp.gamma = 10.0  # dann_paper: 2 / (1 + exp(-gamma p)) - 1 (DANN: 10).
  # Emo-DNA's contrastive class alignment (its Table 5): + scl_weight * L_SCL
  # on a projection of E, source + confident target rows (jaxser.methods.scl);
  # 0: off (the method itself). Emo-DNA's own weight alpha_1 is 0.1.
  c.bsp.scl_weight = 0.0
  c.bsp.scl_temperature = 0.01  # tau_s (Emo-DNA: 1e-2).
  return c
