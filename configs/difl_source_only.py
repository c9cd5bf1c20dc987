"""DIFL's baseline: `source_only` on its CNN-BLSTM on spectrogram segments
(the softmax loss alone over every valid segment, utterances predicted from
their mean segment posterior: the "Baseline S" rows of DIFL's Tables 2-4),
with DIFL's features and optimiser, so DIFL's row has its no-adaptation
counterpart on the same network and input.

  python -m jaxser.main --config=configs/difl_source_only.py \
      --workdir=/tmp/difl_so
  python -m jaxser.grid --methods=difl_source_only,difl \
      --pairs=iemocap:msp_improv,iemocap:savee,iemocap:emodb \
      --tasks=arousal,valence --data_root=../shared/corpora --workdir=/tmp/g
"""

import os

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  return config_lib.source_only_baseline(config_lib.load(os.path.join(
      os.path.dirname(os.path.abspath(__file__)), 'difl.py')))
