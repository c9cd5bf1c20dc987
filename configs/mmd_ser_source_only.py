"""MMD-SER's baseline, the paper's ser-base (section 4.3): the same network,
input, optimiser and class-weighted cross-entropy, without MMD (the target
is not used), so MMD-SER's row has its no-adaptation counterpart.

  python -m jaxser.main --config=configs/mmd_ser_source_only.py \
      --workdir=/tmp/mmd_ser_so
"""

import ml_collections

from jaxser import config as config_lib
from jaxser.models import cnn_gru


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'mmd_ser_source_only'
  cnn_gru.configure(c)  # As configs/mmd_ser.py.
  c.mmd_ser = ml_collections.ConfigDict()
  c.mmd_ser.class_weighted = True  # Eq. 2's w_c = N / (K n_c).
  return c
