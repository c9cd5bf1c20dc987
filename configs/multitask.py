"""Multitask SER (Ahn et al.): L_SER + 0.5 NT-Xent + 0.5 IM + 0.1 aug-type,
on two on-device augmented views of every source and target waveform.

  python -m jaxser.main --config=configs/multitask.py --workdir=/tmp/multitask
  python -m jaxser.main --config=configs/multitask.py --workdir=/tmp/mt_ci \
      --config.data.source=iemocap --config.data.target=msp_improv \
      --config.data.root=../shared/corpora
  # Its baseline, source_only on the same front end and network:
  python -m jaxser.main --config=configs/multitask_source_only.py --workdir=DIR

The method caches raw waveforms (`data.features = 'waveform'`, padded or
centre-cropped to `data.feature_params.waveform.samples`) and computes the
`mfcc40` features (with `data.feature_params.mfcc40`) on the accelerator after
augmenting. See jaxser/methods/multitask.py for the choices the paper leaves
open.
"""

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'multitask'
  c.data.features = 'waveform'
  c.data.feature_params.waveform.samples = 48000  # 3 s at 16 kHz.

  c.model.name = 'cnn_tcn'  # Emo-DNA's CNN + TCN; the paper's is AST.
  c.model.frontend = 'mfcc40'  # JAX twin of the `mfcc40` feature set.
  c.model.projection_hidden = 128  # Width of U (paper: not given).
  c.model.projection_dim = 128  # z (paper section 4.2.1: 128).

  c.multitask = ml_collections.ConfigDict()
  # Eq. 8 weights (paper section 4.2.1).
  c.multitask.lambda_cl = 0.5
  c.multitask.lambda_im = 0.5
  c.multitask.lambda_aug = 0.1
  c.multitask.temperature = 0.5  # NT-Xent tau (paper: not given).
  c.multitask.contrastive_pairs = 'per_domain'  # | 'joint'.
  c.multitask.im_domains = 'both'  # | 'target'.
  c.multitask.aug_target = 'type'  # a_1..a_5 (eq. 7) | 'transforms'.
  c.multitask.augment = True
  c.multitask.use_target = True  # False: Table 11's "without target data".
  # Text only (configs/multitask_text.py): token cutoff.
  c.multitask.cutoff_p = 0.15
  c.multitask.cutoff_keep_special = True  # [CLS], [SEP] (paper: not said).
  # Table 2 / torch-audiomentations ranges (jaxser/augment.py).
  c.multitask.aug = ml_collections.ConfigDict(dict(
      p=0.3,
      gain_db=(-15.0, 5.0),
      max_shift_fraction=0.5,
      band_stop_center_hz=(200.0, 4000.0),
      band_stop_bandwidth_fraction=(0.5, 1.99),
      noise_snr_db=(3.0, 30.0),
      noise_f_decay=(-2.0, 2.0)))
  return c
