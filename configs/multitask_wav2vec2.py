r"""The multitask paper's Table 11 ablation "Replace AST with wav2vec 2.0":
configs/multitask_ast.py with a wav2vec 2.0 encoder on the augmented
waveforms themselves (no fbank front end; the checkpoint's own input
normalisation on the device), fine-tuned with its CNN feature encoder
frozen, as usual.

  python -m jaxser.main --config=configs/multitask_wav2vec2.py --workdir=DIR \
      --config.model.wav2vec2.checkpoint=/path/to/wav2vec2-base \
      --config.data.source=iemocap --config.data.target=msp_improv

Any of `hubert`, `wavlm` (or `whisper`) in its place:
--config.model.name=wavlm --config.model.wavlm.checkpoint=DIR. The clips
are 10.26 s as for AST (`data.feature_params.waveform.samples`).
"""

import os

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.load(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   'multitask_ast.py'))
  c.model.name = 'wav2vec2'
  c.model.frontend = ''
  return c
