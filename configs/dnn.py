"""Cross-corpus DNN (CAEmoCyGAN Table 3): F_clf [1582, 500, 100, C] on the
sources alone, early-stopped on 10% of them. With
--config.data.protocol=within it is the within-target upper bound (Table 4).

  python -m jaxser.main --config=configs/dnn.py --workdir=/tmp/dnn
  # Real corpora (two sources, one target; arousal3 or valence3):
  python -m jaxser.main --config=configs/dnn.py --workdir=/tmp/dnn_urdu \
      --config.data.root=../shared/corpora --config.data.source=casia,emovo \
      --config.data.target=urdu

With no corpus on disk it runs on the synthetic sources synth_acted_a and
synth_acted_b and the synthetic target synth_natural. Hyper-parameters:
config.gan (jaxser.methods.cyclegan.hparams).
"""

import ml_collections

from jaxser.methods import cyclegan


def get_config() -> ml_collections.ConfigDict:
  c = cyclegan.config('dnn')
  return c
