"""CycleGAN (Zhu et al. 2017) as a target-aware augmenter (CAEmoCyGAN Table 3).

  python -m jaxser.main --config=configs/cyclegan.py --workdir=/tmp/cyclegan
  # Real corpora (two sources, one target; arousal3 or valence3):
  python -m jaxser.main --config=configs/cyclegan.py --workdir=/tmp/cyclegan_urdu \
      --config.data.root=../shared/corpora --config.data.source=casia,emovo \
      --config.data.target=urdu

With no corpus on disk it runs on the synthetic sources synth_acted_a and
synth_acted_b and the synthetic target synth_natural. Hyper-parameters:
config.gan (jaxser.methods.cyclegan.hparams).
"""

import ml_collections

from jaxser.methods import cyclegan


def get_config() -> ml_collections.ConfigDict:
  c = cyclegan.config('cyclegan')
  return c
