"""CACyGAN: CAEmoCyGAN without the emotion consistency term (lambda_4 = 0),
the ablation of Table 5.

  python -m jaxser.main --config=configs/cacygan.py --workdir=/tmp/cacygan
  # Real corpora (two sources, one target; arousal3 or valence3):
  python -m jaxser.main --config=configs/cacygan.py --workdir=/tmp/cacygan_urdu \
      --config.data.root=../shared/corpora --config.data.source=casia,emovo \
      --config.data.target=urdu

With no corpus on disk it runs on the synthetic sources synth_acted_a and
synth_acted_b and the synthetic target synth_natural. Hyper-parameters:
config.gan (jaxser.methods.cyclegan.hparams).
"""

import ml_collections

from jaxser.methods import cyclegan


def get_config() -> ml_collections.ConfigDict:
  c = cyclegan.config('cacygan')
  c.gan.lambdas = (10.0, 10.0, 1.0, 0.0)  # No emotion consistency.
  c.gan.plot_embedding = True
  return c
