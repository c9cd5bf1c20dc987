"""Source only: the Emo-DNA emotion network (CNN + TCN) with the emotion loss
alone; the no-adaptation baseline of every adaptation result.

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
  return c
