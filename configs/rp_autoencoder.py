"""R-P auto-encoder (CAEmoCyGAN Table 3): Enc_S + Dec_T trained on random
(source, target) pairs as a generator of target-like samples.

  python -m jaxser.main --config=configs/rp_autoencoder.py --workdir=/tmp/rp_autoencoder
  # Real corpora (two sources, one target; arousal3 or valence3):
  python -m jaxser.main --config=configs/rp_autoencoder.py --workdir=/tmp/rp_autoencoder_urdu \
      --config.data.root=../shared/corpora --config.data.source=casia,emovo \
      --config.data.target=urdu

With no corpus on disk it runs on the synthetic sources synth_acted_a and
synth_acted_b and the synthetic target synth_natural. Hyper-parameters:
config.gan (jaxser.methods.cyclegan.hparams).
"""

import ml_collections

from jaxser.methods import cyclegan


def get_config() -> ml_collections.ConfigDict:
  c = cyclegan.config('rp_autoencoder')
  return c
