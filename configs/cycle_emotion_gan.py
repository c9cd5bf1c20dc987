"""CycleEmotionGAN (Zhao et al. 2019) as in CAEmoCyGAN Table 3: a cycle-GAN
whose reconstructions keep their emotion (F_s, eq. 16).

  python -m jaxser.main --config=configs/cycle_emotion_gan.py --workdir=/tmp/cycle_emotion_gan
  # Real corpora (two sources, one target; arousal3 or valence3):
  python -m jaxser.main --config=configs/cycle_emotion_gan.py --workdir=/tmp/cycle_emotion_gan_urdu \
      --config.data.root=../shared/corpora --config.data.source=casia,emovo \
      --config.data.target=urdu

With no corpus on disk it runs on the synthetic sources synth_acted_a and
synth_acted_b and the synthetic target synth_natural. Hyper-parameters:
config.gan (jaxser.methods.cyclegan.hparams).
"""

import ml_collections

from jaxser.methods import cyclegan


def get_config() -> ml_collections.ConfigDict:
  c = cyclegan.config('cycle_emotion_gan')
  return c
