"""Source only: the Emo-DNA emotion network (CNN + TCN) with the emotion loss
alone; the no-adaptation baseline of every adaptation result on that
network (any other: --config.model.name, with that method's data settings;
configs/difl_source_only.py, mmd_ser_source_only.py, multitask_source_only.py
are the baselines of the methods with their own networks).

  python -m jaxser.main --config=configs/source_only.py --workdir=/tmp/so
  # The within-target upper bound on the same network:
  python -m jaxser.main --config=configs/source_only.py --workdir=/tmp/within \
      --config.data.protocol=within
"""

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'source_only'
  c.source_only = ml_collections.ConfigDict()
  # Weight classes by N / (K n_c) of the source counts (MMD-SER's eq. 2).
  c.source_only.class_weighted = False
  return c
