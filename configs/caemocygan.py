"""CAEmoCyGAN (Su & Lee): a multi-source cycle-GAN with corpus-aware attention
and emotion consistency generates target-aware samples with soft labels; a
DNN trained on sources + samples is evaluated on the target.

  python -m jaxser.main --config=configs/caemocygan.py --workdir=/tmp/caemocygan
  # Real corpora (two sources, one target; arousal3 or valence3):
  python -m jaxser.main --config=configs/caemocygan.py --workdir=/tmp/caemocygan_urdu \
      --config.data.root=../shared/corpora --config.data.source=casia,emovo \
      --config.data.target=urdu

With no corpus on disk it runs on the synthetic sources synth_acted_a and
synth_acted_b and the synthetic target synth_natural. Hyper-parameters:
config.gan (jaxser.methods.cyclegan.hparams).
"""

import ml_collections

from jaxser.methods import cyclegan


def get_config() -> ml_collections.ConfigDict:
  c = cyclegan.config('caemocygan')
  c.gan.plot_embedding = True
  return c
