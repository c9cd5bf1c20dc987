"""DIFL's baseline: its CNN-BLSTM on spectrogram segments trained with the
softmax loss alone (the "Baseline S" rows of DIFL's Tables 2-4), so DIFL's
row has its no-adaptation counterpart on the same network and input.

  python -m jaxser.main --config=configs/difl_source_only.py \
      --workdir=/tmp/difl_so
  python -m jaxser.grid --methods=difl_source_only,difl \
      --pairs=iemocap:msp_improv,iemocap:savee,iemocap:emodb \
      --tasks=arousal,valence --data_root=../shared/corpora --workdir=/tmp/g
"""

import ml_collections

from jaxser import config as config_lib
from jaxser.models import cnn_blstm


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'source_only'
  cnn_blstm.configure(c)  # As configs/difl.py: features, network, optimiser.
  return c
