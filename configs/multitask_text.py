r"""The multitask paper's text system (sections 3.2 and 4.2.2): BERT on
transcripts.

L = L_SER + 0.5 L_CL + 0.5 L_IM (lambda_aug = 0: text has one augmentation
type, so no augmentation-type task) on two token-cutoff views (ids set to 0
with p = 0.15) of every source and target transcript. Adam at 1e-4, x0.1 on
a plateau of the source validation accuracy (patience 5), validation every 5
batches on 10% of the source held out, best state restored; batch 512 (per
domain); target split 30% unlabelled training / 70% test.

Corpora need transcripts (IEMOCAP, MSP-Podcast, the `folder` corpus's text
column, the built-in synthetic corpora); a corpus without them is a one-line
error. Token ids come from the `tokens` feature set: the checkpoint's own
tokenizer with `--config.data.feature_params.tokens.tokenizer=DIR`, or the
built-in hashed-word tokenizer (tests and CPU runs without a checkpoint).

  # With the paper's pretrained BERT (a local bert-base-uncased directory):
  python -m jaxser.main --config=configs/multitask_text.py --workdir=DIR \
      --config.model.bert.checkpoint=/path/to/bert-base-uncased \
      --config.data.feature_params.tokens.tokenizer=/path/to/bert-base-uncased \
      --config.data.source=iemocap --config.data.target=msp_podcast
  # A tiny random BERT on the synthetic corpora, for a CPU:
  python -m jaxser.main --config=configs/multitask_text.py --workdir=DIR \
      --config.model.bert.layers=2 --config.model.bert.hidden=64 \
      --config.model.bert.heads=4 --config.model.bert.mlp_dim=128 \
      --config.train.batch_size=32 --config.train.steps=100
  # Decision-level fusion with an audio run of the same target split:
  python -m jaxser.fuse --workdirs=AUDIO_DIR,DIR --workdir=FUSED

The paper also measures "every 3rd batch for the target data"; jaxser never
reads target labels during training, so only the source is validated.
"""

import os

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.load(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   'multitask.py'))
  c.model.name = 'bert'
  c.model.frontend = ''
  c.data.features = 'tokens'
  c.multitask.lambda_aug = 0.0

  c.data.protocol = 'split'
  c.data.target_train_fraction = 0.3
  c.data.source_val_fraction = 0.1

  c.train.optimizer = 'adam'
  c.train.learning_rate = 1e-4
  c.train.batch_size = 512
  c.train.steps = 2000
  c.train.validation.every = 5
  c.train.validation.metric = 'war'
  c.train.validation.patience = 10
  c.train.validation.plateau_factor = 0.1
  c.train.validation.plateau_patience = 5
  c.train.eval_every = 0
  return c
