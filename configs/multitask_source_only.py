"""Source-only baseline of the multitask method: `source_only` on the same
waveform input, on-device MFCC front end and network, trained with the
emotion loss alone on clean source audio (the target batch is not used).

  python -m jaxser.main --config=configs/multitask_source_only.py --workdir=DIR
"""

import os

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  return config_lib.source_only_baseline(config_lib.load(os.path.join(
      os.path.dirname(os.path.abspath(__file__)), 'multitask.py')))
