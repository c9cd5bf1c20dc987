"""DIFL's DANN_1 (Gao et al., section 4, Tables 2-4): speaker and corpus
heads behind the gradient reversal layer instead of DANN_2's corpus,
language and gender heads, and the softmax loss alone (lambda = 1: the
paper's DANN_1 rows are "S" only); everything else as configs/difl.py.

  python -m jaxser.grid --methods=difl_source_only,difl_dann1,difl \\
      --pairs=iemocap:msp_improv,iemocap:savee,iemocap:emodb \\
      --tasks=arousal,valence --data_root=../shared/corpora --workdir=/tmp/g

Speakers are told apart per corpus; the head has one class per speaker of
the run's corpora (`config.difl.num_speakers`, 0: counted from their
listings).
"""

import os

import ml_collections

from jaxser import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.load(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   'difl.py'))
  c.difl.heads = 'dann_1'
  c.difl.softmax_weight = 1.0  # S: no center loss.
  return c
