"""Trains and evaluates one experiment.

  python -m jaxser.main --config=configs/emodna.py --workdir=DIR \
      [--config.train.steps=300 --config.seed=1 ...]

Writes DIR/results.json (target metrics), DIR/metrics.jsonl, TensorBoard
events and checkpoints; rerunning on the same DIR resumes.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

# Before TensorFlow is imported: it loads openSMILE's native library first.
from jaxser.data import features  # noqa: F401  pylint: disable=unused-import
from jaxser import runtime

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (configs/*.py).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where results, metrics and '
                               'checkpoints go; reused to resume.')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False, 'Call jax.distributed.initialize() first '
    '(multi-host launches, see launch/).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  runtime.setup_process()
  import jax  # pylint: disable=g-import-not-at-top
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  from jaxser import train  # pylint: disable=g-import-not-at-top
  try:
    result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except ValueError as e:
    # Config and data errors: one line naming the field or file.
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt as e:
    step = getattr(e, 'step', None)
    where = f' at step {step}, checkpoint saved' if step is not None else ''
    print(f'interrupted{where}; rerun the same command to resume',
          file=sys.stderr)
    sys.exit(130)
  print(f'{result["method"]} {result["source"]} -> {result["target"]} '
        f'({result["task"]}, {result["protocol"]}): UAR {result["uar"]:.4f} '
        f'WAR {result["war"]:.4f} macro-F1 {result["macro_f1"]:.4f} on '
        f'{result["num_eval"]} utterances; '
        f'{os.path.join(_WORKDIR.value, "results.json")}')


if __name__ == '__main__':
  app.run(main)
