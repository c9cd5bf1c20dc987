"""DAN (Long et al., ICML 2015): MK-MMD between source and target emotion
features, on the Emo-DNA emotion network (CNN + TCN).

  python -m jaxser.main --config=configs/dan.py --workdir=/tmp/dan
  python -m jaxser.main --config=configs/dan.py --workdir=/tmp/dan_ref \
      --config.dan.kernel=mul_family --config.dan.estimator=linear \
      --config.data.source=casia --config.data.target=emovo \
      --config.data.root=../shared/corpora --config.data.task=arousal
"""

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'dan'
  c.dan = ml_collections.ConfigDict()
  c.dan.trade_off = 1.0  # Weight of MK-MMD (TLL default: 1).
  # unbiased (quadratic; TLL default) | biased | linear (the paper's).
  c.dan.estimator = 'unbiased'
  # mean_scaled (TLL, Emo-DNA) | mul_family (the DAN reference code).
  c.dan.kernel = 'mean_scaled'
  c.dan.scales = (1 / 8, 1 / 4, 1 / 2, 1.0, 2.0)  # mean_scaled: 2^-3..2^1.
  c.dan.kernel_mul = 2.0  # mul_family bandwidth ratio (reference: 2).
  c.dan.kernel_num = 5  # mul_family number of kernels (reference: 5).
  # Emo-DNA's contrastive class alignment (its Table 5): + scl_weight * L_SCL
  # on a projection of E, source + confident target rows (jaxser.methods.scl);
  # 0: off (the method itself). Emo-DNA's own weight alpha_1 is 0.1.
  c.dan.scl_weight = 0.0
  c.dan.scl_temperature = 0.01  # tau_s (Emo-DNA: 1e-2).
  return c
