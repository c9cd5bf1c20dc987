r"""The multitask paper's audio system (section 4.2.1): AST on `fbank128`.

L = L_SER + 0.5 L_CL + 0.5 L_IM + 0.1 L_aug on two on-device augmented views
(the five augmentation types of Table 2) of every source and target
waveform; the `fbank128` front end turns each view into AST's 1024 x 128
Kaldi fbank on the device. Adam at 1e-4, x0.1 on a plateau of the source
validation accuracy (patience 5 evaluations), validation every 30 batches on
10% of the source held out, best state restored; batch 64 (per domain);
target split 30% unlabelled training / 70% test.

  # With the paper's pretrained AST (a local Hugging Face checkpoint
  # directory of MIT/ast-finetuned-audioset-10-10-0.4593):
  python -m jaxser.main --config=configs/multitask_ast.py --workdir=DIR \
      --config.model.ast.checkpoint=/path/to/ast-finetuned-audioset \
      --config.data.source=iemocap --config.data.target=msp_improv
  # A tiny random AST on 3 s clips, for a CPU:
  python -m jaxser.main --config=configs/multitask_ast.py --workdir=DIR \
      --config.model.ast.layers=2 --config.model.ast.hidden=64 \
      --config.model.ast.heads=4 --config.model.ast.mlp_dim=128 \
      --config.data.feature_params.waveform.samples=48000 \
      --config.train.batch_size=8 --config.train.steps=60

Table 11's ablations: --config.multitask.lambda_cl=0 (without CL),
lambda_im=0 (without IM), lambda_aug=0 (without the augmentation
classifier), lambda_aug=0.5, --config.multitask.use_target=False (without
target data). Its baseline: configs/multitask_source_only.py with the same
--config.model.* and data overrides.

Choices where the paper is silent (jaxser/methods/multitask.py lists the
method's own): validation accuracy is the held-out source WAR; early
stopping after `train.validation.patience` = 10 evaluations without
improvement (the paper halts when an epoch does not improve); the run is at
most `train.steps` = 3000 steps.
"""

import os

import ml_collections

from jaxser import config as config_lib

# AST's 1024 frames of 25 ms every 10 ms (snip_edges): 400 + 1023 * 160.
AST_SAMPLES = 400 + (1024 - 1) * 160


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.load(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   'multitask.py'))
  c.model.name = 'ast'
  c.model.frontend = 'fbank128'
  c.data.features = 'waveform'
  c.data.feature_params.waveform.samples = AST_SAMPLES

  c.data.protocol = 'split'
  c.data.target_train_fraction = 0.3
  c.data.source_val_fraction = 0.1

  c.train.optimizer = 'adam'
  c.train.learning_rate = 1e-4
  c.train.batch_size = 64
  c.train.steps = 3000
  c.train.validation.every = 30
  c.train.validation.metric = 'war'
  c.train.validation.patience = 10
  c.train.validation.plateau_factor = 0.1
  c.train.validation.plateau_patience = 5
  c.train.eval_every = 0  # Target metrics at the end only.
  return c
