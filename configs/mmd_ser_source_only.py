"""MMD-SER's baseline, the paper's ser-base (section 4.3): `source_only` on
the same network (cnn_gru), input, optimiser and class-weighted
cross-entropy, without MMD (the target is not used), so MMD-SER's row has its
no-adaptation counterpart.

  python -m jaxser.main --config=configs/mmd_ser_source_only.py \
      --workdir=/tmp/mmd_ser_so
"""

import os

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.load(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   'mmd_ser.py'))
  # Eq. 2's w_c = N / (K n_c), as configs/mmd_ser.py.
  return config_lib.source_only_baseline(
      c, class_weighted=c.mmd_ser.class_weighted)
