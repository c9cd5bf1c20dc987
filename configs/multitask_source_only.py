"""Source-only baseline of the multitask method: the same waveform input,
on-device MFCC front end and backbone, trained with L_SER alone on clean
source audio (the target batch is not used).

  python -m jaxser.main --config=configs/multitask_source_only.py --workdir=DIR
  # Source only with the Table 2 augmentation (one augmented view):
  python -m jaxser.main --config=configs/multitask_source_only.py \
      --workdir=DIR --config.multitask.augment=True
"""

import importlib.util
import os

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      'multitask.py')
  spec = importlib.util.spec_from_file_location('configs_multitask', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.multitask.lambda_cl = 0.0
  c.multitask.lambda_im = 0.0
  c.multitask.lambda_aug = 0.0
  c.multitask.augment = False
  return c
