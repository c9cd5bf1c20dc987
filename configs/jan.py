"""JAN (Long et al., ICML 2017): joint MMD over emotion features and softmax
outputs, on the Emo-DNA emotion network (CNN + TCN).

  python -m jaxser.main --config=configs/jan.py --workdir=/tmp/jan
  python -m jaxser.main --config=configs/jan.py --workdir=/tmp/jan_linear \
      --config.jan.estimator=linear --config.data.source=casia \
      --config.data.target=emovo --config.data.root=../shared/corpora \
      --config.data.task=valence
"""

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'jan'
  c.jan = ml_collections.ConfigDict()
  c.jan.trade_off = 1.0  # Weight of JMMD (TLL default: 1).
  # unbiased (quadratic; TLL default) | biased | linear (the paper's).
  c.jan.estimator = 'unbiased'
  # Kernel on the features: mean_scaled (TLL) | mul_family (JAN reference).
  c.jan.kernel = 'mean_scaled'
  c.jan.scales = (1 / 8, 1 / 4, 1 / 2, 1.0, 2.0)  # mean_scaled: 2^-3..2^1.
  c.jan.kernel_mul = 2.0  # mul_family bandwidth ratio (reference: 2).
  c.jan.kernel_num = 5  # mul_family number of kernels (reference: 5).
  c.jan.softmax_sigma = 0.92  # Gaussian width on the outputs (TLL: 0.92).
  # Emo-DNA's contrastive class alignment (its Table 5): + scl_weight * L_SCL
  # on a projection of E, source + confident target rows (jaxser.methods.scl);
  # 0: off (the method itself). Emo-DNA's own weight alpha_1 is 0.1.
  c.jan.scl_weight = 0.0
  c.jan.scl_temperature = 0.01  # tau_s (Emo-DNA: 1e-2).
  return c
