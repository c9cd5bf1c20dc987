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

from jaxser import config as config_lib
from jaxser.methods import cyclegan


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'ccemogan'
  c.data.source = 'synth_acted_a,synth_acted_b'
  c.data.target = 'synth_natural'
  c.data.task = 'arousal3'
  c.data.features = 'is10'  # 1582 openSMILE functionals (sec. 3.2).
  c.data.normalize = 'corpus_minmax'  # Per corpus to [-1, 1].
  c.train.batch_size = 256
  c.train.eval_every = 0
  c.train.checkpoint_every = 100
  c.gan = cyclegan.hparams()
  c.gan.plot_embedding = False
  return c
