"""Emo-DNA (MM '23): contrastive emotion decoupling + dual-level alignment.

  python -m jaxser.main --config=configs/emodna.py --workdir=/tmp/emodna
  python -m jaxser.main --config=configs/emodna.py --workdir=/tmp/casia_emovo \
      --config.data.source=casia --config.data.target=emovo \
      --config.data.root=../shared/corpora --config.data.task=arousal
"""

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'emodna'
  # E_c's BiLSTM units per direction; 0: half of E's size (64 on the CNN +
  # TCN), as one projection head g takes E and C.
  c.model.lstm_hidden = 0
  c.model.projection_dim = 128
  c.emodna = ml_collections.ConfigDict()
  c.emodna.tau_p = 0.01  # Prototype temperature (paper: 1e-2).
  c.emodna.tau_s = 0.01  # SCL temperature (paper: 1e-2).
  c.emodna.alpha = 0.1  # alpha_1, weight of SCL in L_align (paper: 0.1).
  c.emodna.ema_momentum = 0.999  # lambda of eq. 6.
  c.emodna.mmd_estimator = 'unbiased'
  c.emodna.mmd_scales = (1 / 8, 1 / 4, 1 / 2, 1.0, 2.0)
  # Ablation switches (jaxser.methods.emodna; Tables 4 and 6 as grid rows:
  # python -m jaxser.grid --preset=emodna_table4). Defaults: the full model.
  c.emodna.corpus_encoder = True  # E_c, phi_c, L_corpus (off: V5, no decouple).
  c.emodna.decouple = True  # L_decouple (eq. 5).
  c.emodna.mmd = True  # MK-MMD of L_align (eq. 10).
  c.emodna.scl = True  # alpha_1 L_SCL of L_align (eq. 9).
  # Pseudo-label threshold: adaptive (EMA, eq. 6) | fixed | none (Table 6).
  c.emodna.threshold = 'adaptive'
  c.emodna.fixed_threshold = 0.9  # 'fixed' (Table 6: 0.9).
  return c
