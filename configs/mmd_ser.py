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


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'mmd_ser'
  # The CNN + BiGRU with its PReLU classifier (jaxser.models.cnn_gru; sizes
  # of the authors' code, config.model.cnn_gru.*). Where the paper is silent
  # the settings below are those of the released code
  # (thuhcsi/icassp2021-emotion-tts, `ser2tts_cfg/iemo2bc.yml`, `MMDModel2`).
  c.model.name = 'cnn_gru'
  # "80-dimension log mel spectrum" (the code used 128 bands: logmel128).
  c.data.features = 'logmel80'
  # The code standardises each mel band by its corpus's mean and standard
  # deviation over all frames (`prepare_data_util.norm`).
  c.data.normalize = 'corpus_zscore'
  # The code centre-crops to 1400 frames (14 s, the paper's TTS length
  # limit) and pads batches only to their longest utterance; here every
  # utterance is padded to `frames`, so 300 (3 s, as the other methods)
  # costs ~1/5 of 1400. --config.data.frames=1400 reproduces the code; the
  # network accepts any length, and `jaxser.label --frames` may label with
  # another.
  c.data.frames = 300
  # Batch size 96 per domain (the code draws 96 source and 96 target
  # utterances a step); Adam at 3e-5 for 100 steps then 3e-4 (section 4.2);
  # gradients clipped to global norm 5 (the code).
  c.train.batch_size = 96
  c.train.optimizer = 'adam'
  c.train.learning_rate = 3e-4
  c.train.warmup_steps = 100
  c.train.warmup_learning_rate = 3e-5
  c.train.grad_clip = 5.0
  # The code trains up to 15000 steps and early-stops on 500 held-out source
  # utterances; the loop has no early stopping: the base config's steps stay.

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
