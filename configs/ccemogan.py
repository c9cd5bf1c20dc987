"""CCEmoGAN (Su & Lee 2020): a cycle-GAN conditioned on a one-hot emotion;
Type B fakes (source to target) augment the sources.

  python -m jaxser.main --config=configs/ccemogan.py --workdir=/tmp/ccemogan
  # Real corpora (two sources, one target; arousal3 or valence3):
  python -m jaxser.main --config=configs/ccemogan.py --workdir=/tmp/ccemogan_urdu \
      --config.data.root=../shared/corpora --config.data.source=casia,emovo \
      --config.data.target=urdu

With no corpus on disk it runs on the synthetic sources synth_acted_a and
synth_acted_b and the synthetic target synth_natural. Hyper-parameters:
config.gan (jaxser.methods.cyclegan.hparams).
"""

import ml_collections

from jaxser.methods import cyclegan


def get_config() -> ml_collections.ConfigDict:
  c = cyclegan.config('ccemogan')
  return c
