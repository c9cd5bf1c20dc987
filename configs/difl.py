"""DIFL (Gao et al.): a CNN-BLSTM on 265 ms spectrogram segments,
adversarial corpus, language and gender heads behind a gradient reversal
layer (gamma = 0.3) and softmax + center loss (lambda = 0.5).

  python -m jaxser.main --config=configs/difl.py --workdir=/tmp/difl
  # Cross-corpus (Tables 3-4): IEMOCAP -> MSP-Improv, arousal.
  python -m jaxser.main --config=configs/difl.py --workdir=/tmp/difl_msp \
      --config.data.source=iemocap --config.data.target=msp_improv \
      --config.data.root=../shared/corpora --config.data.task=arousal
  # Multi-corpus (Table 2): 80% of every corpus for training, speaker-
  # independent; results.json adds per_corpus metrics of each 20%.
  python -m jaxser.main --config=configs/difl.py --workdir=/tmp/difl_multi \
      --config.data.protocol=multi_corpus \
      --config.data.target_train_fraction=0.8 \
      --config.data.source=iemocap,msp_improv,savee --config.data.target=emodb \
      --config.data.root=../shared/corpora --config.data.task=arousal

Its baseline (the CNN-BLSTM with the softmax loss alone) is
configs/difl_source_only.py.
"""

import ml_collections

from jaxser import config as config_lib
from jaxser.models import cnn_blstm


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'difl'
  cnn_blstm.configure(c)  # Features, CNN-BLSTM, optimiser, batch size.
  c.difl = ml_collections.ConfigDict()
  c.difl.heads = 'corpus,language,gender'  # DANN_2 of the paper (eq. 2).
  c.difl.gamma = 0.3  # Gradient reversal coefficient (paper: -0.3 in eq. 1).
  # gamma's schedule: constant (paper) | warm_start | dann_paper (x gamma).
  c.difl.schedule = 'constant'
  c.difl.domain_weight = 1.0  # w_D on L_D (the heads' own gradient scale).
  c.difl.head_hidden = 128  # Hidden units of each head (not in the paper).
  c.difl.num_languages = 0  # Language head size; 0: number of corpora.
  c.difl.softmax_weight = 0.5  # lambda of eq. 6 (paper: 0.5).
  c.difl.center_alpha = 0.5  # Centre step of eq. 5 (Wen et al.: 0.5).
  c.difl.center_loss_form = 'difl'  # difl: eq. 4 | wen: with Wen's 1/2.
  return c
