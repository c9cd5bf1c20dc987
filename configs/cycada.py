"""CyCADA (Hoffman et al. 2018) as in CAEmoCyGAN Table 3: a cycle-GAN with
semantic consistency, then the classifier with a feature-level discriminator.

  python -m jaxser.main --config=configs/cycada.py --workdir=/tmp/cycada
  # Real corpora (two sources, one target; arousal3 or valence3):
  python -m jaxser.main --config=configs/cycada.py --workdir=/tmp/cycada_urdu \
      --config.data.root=../shared/corpora --config.data.source=casia,emovo \
      --config.data.target=urdu

With no corpus on disk it runs on the synthetic sources synth_acted_a and
synth_acted_b and the synthetic target synth_natural. Hyper-parameters:
config.gan (jaxser.methods.cyclegan.hparams).
"""

import ml_collections

from jaxser.methods import cyclegan


def get_config() -> ml_collections.ConfigDict:
  c = cyclegan.config('cycada')
  return c
