"""DIFL (Gao et al.): a CNN-BLSTM on 265 ms spectrogram segments,
adversarial corpus, language and gender heads behind a gradient reversal
layer (gamma = 0.3) and softmax + center loss (lambda = 0.5): the paper's
DANN_2 with S+C; arousal / valence labelled as its Table 1 does.

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


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'difl'
  # The CNN-BLSTM on segments (jaxser.models.cnn_blstm; its sizes, ours, in
  # config.model.cnn_blstm.*).
  c.model.name = 'cnn_blstm'
  c.data.features = 'spec_segments'  # 23 x 32 x 129 segments per utterance.
  # DIFL: Adadelta; its learning rate is not given: 1.0 is Adadelta's own
  # (Zeiler 2012) and PyTorch's default.
  c.train.optimizer = 'adadelta'
  c.train.learning_rate = 1.0
  # DIFL's mini-batch is 128, most likely segments; a step here takes whole
  # utterances (every valid segment of each is a sample), and 16 utterances
  # per corpus give 128 segments or more once utterances last 1.2 s.
  c.train.batch_size = 16
  c.difl = ml_collections.ConfigDict()
  # DIFL Table 1: binary classes from categories (IEMOCAP's four, excited
  # with happy; MSP-IMPROV's four), disgust low arousal as in Schuller et al.
  c.data.label_from = 'categories'
  c.data.category_map = 'difl'
  # dann_2: corpus, language, gender heads (eq. 2, the paper's proposal);
  # dann_1: speaker and corpus heads (configs/difl_dann1.py); or a subset of
  # speaker, corpus, language, gender.
  c.difl.heads = 'dann_2'
  # What the heads see: source_and_target | source (the target's audio
  # unseen, DIFL's cross-corpus setting read literally; jaxser/methods/difl.py).
  c.difl.adversary_data = 'source_and_target'
  c.difl.gamma = 0.3  # Gradient reversal coefficient (paper: -0.3 in eq. 1).
  # gamma's schedule: constant (paper) | warm_start | dann_paper (x gamma).
  c.difl.schedule = 'constant'
  c.difl.domain_weight = 1.0  # w_D on L_D (the heads' own gradient scale).
  c.difl.head_hidden = 128  # Hidden units of each head (not in the paper).
  c.difl.num_languages = 0  # Language head size; 0: number of corpora.
  c.difl.num_speakers = 0  # Speaker head size; 0: the run's corpora's speakers.
  c.difl.softmax_weight = 0.5  # lambda of eq. 6 (paper: 0.5).
  c.difl.center_alpha = 0.5  # Centre step of eq. 5 (Wen et al.: 0.5).
  c.difl.center_loss_form = 'difl'  # difl: eq. 4 | wen: with Wen's 1/2.
  return c
