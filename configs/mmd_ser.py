"""MMD-SER (Cai et al., ICASSP 2021, section 3.1): CNN + BiGRU on 80-band
log-mel, class-weighted cross-entropy + 0.5 * MMD between source and target
encoder outputs.

  python -m jaxser.main --config=configs/mmd_ser.py --workdir=/tmp/mmd_ser
  python -m jaxser.label --workdir=/tmp/mmd_ser --corpus=folder \
      --root=/path/to/tts_wavs          # soft labels + top-50 per class
  python -m jaxser.grid --methods=mmd_ser_source_only,mmd_ser \
      --pairs=casia:emovo,emovo:casia --tasks=arousal,valence \
      --data_root=../shared/corpora --workdir=/tmp/g
"""

import ml_collections

from jaxser import config as config_lib
from jaxser.models import cnn_gru


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'mmd_ser'
  cnn_gru.configure(c)  # Features, optimiser, network (see there).
  c.mmd_ser = ml_collections.ConfigDict()
  c.mmd_ser.trade_off = 0.5  # lambda of eq. 3 (section 4.3).
  c.mmd_ser.class_weighted = True  # Eq. 2's w_c = N / (K n_c).
  # biased (eq. 1, DSN) | unbiased | linear.
  c.mmd_ser.estimator = 'biased'
  # fixed (DSN's sum over fixed bandwidths `sigmas`) | mean_scaled | mul_family.
  c.mmd_ser.kernel = 'fixed'
  c.mmd_ser.sigmas = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 5.0, 10.0,
                      15.0, 20.0, 25.0, 30.0, 35.0, 100.0, 1e3, 1e4, 1e5, 1e6)
  c.mmd_ser.scales = (1 / 8, 1 / 4, 1 / 2, 1.0, 2.0)  # mean_scaled.
  c.mmd_ser.kernel_mul = 2.0  # mul_family.
  c.mmd_ser.kernel_num = 5  # mul_family.
  return c
