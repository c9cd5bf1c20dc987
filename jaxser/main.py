"""Trains and evaluates one experiment.

  python -m jaxser.main --config=configs/emodna.py --workdir=DIR \
      [--config.train.steps=300 --config.seed=1 ...]

Writes DIR/results.json (target metrics), DIR/metrics.jsonl, TensorBoard
events and checkpoints; rerunning on the same DIR resumes. With
--config.seeds=0,1,2 one run per seed (packed into one program) in
DIR/seed<k>/, and DIR/summary.json with the mean and std over the seeds.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

# Before TensorFlow is imported: it loads openSMILE's native library first.
from jaxser.data import features  # noqa: F401  pylint: disable=unused-import
from jaxser import cli
from jaxser import runtime

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config: a file (configs/emodna.py) or a '
    'shipped config\'s name (emodna); override its fields with '
    '--config.<field>=value. python -m jaxser.info lists the configs, '
    'fields, corpora, tasks, methods, networks and feature sets.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where results, metrics and '
                               'checkpoints go; reused to resume.')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False, 'One run over several processes: call '
    'jax.distributed.initialize() first (multi-host launches, see launch/).')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'With --distributed: HOST:PORT of process '
    "0's coordinator; default: detected from the cluster (Cloud TPU, SLURM, "
    'Open MPI, Kubernetes) or $JAX_COORDINATOR_ADDRESS.')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', None, 'With --distributed: number of processes; '
    'default: detected from the cluster.')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', None, 'With --distributed: this process, 0 to '
    '--num_processes - 1; default: detected from the cluster.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  runtime.setup_process()
  import jax  # pylint: disable=g-import-not-at-top
  if _DISTRIBUTED.value:
    try:
      runtime.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                     _PROCESS_ID.value)
    except ValueError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
  elif any(f.value is not None
           for f in (_COORDINATOR, _NUM_PROCESSES, _PROCESS_ID)):
    print('error: --coordinator_address, --num_processes and --process_id '
          'need --distributed', file=sys.stderr)
    sys.exit(2)
  from jaxser import train  # pylint: disable=g-import-not-at-top
  try:
    result = train.run_experiment(_CONFIG.value, _WORKDIR.value)
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
  print(cli.summary_line(result, _WORKDIR.value))


if __name__ == '__main__':
  # One-line errors: the config found from anywhere, a misspelt field with
  # the closest one (jaxser.cli).
  app.run(main, flags_parser=cli.parse_flags)
