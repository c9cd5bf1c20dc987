"""Process setup shared by the command-line programs (main, grid, label)."""

from __future__ import annotations

import logging as std_logging
import os

from absl import flags
from absl import logging


class _JaxserWarningsOnly(std_logging.Filter):
  """Passes jaxser's own records and every library's errors: TensorFlow,
  TFDS, orbax and JAX info and warning lines (e.g. TFDS's "Using custom data
  configuration") are not jaxser's user's business by default."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.ERROR
            or f'{os.sep}jaxser{os.sep}' in (record.pathname or ''))


def quiet() -> bool:
  """Whether library output is hidden (no --verbosity given)."""
  return not flags.FLAGS['verbosity'].present


def setup_process() -> None:
  """Call first in an absl `main`, before JAX runs anything.

  - Library logs (orbax, TFDS, TensorFlow, XLA info and warnings) drown
    the progress bar: unless `--verbosity` is given (`--verbosity=0` or 1
    brings them back) only jaxser's own lines, its warnings and the
    libraries' errors show; TFDS's progress bars and its "Downloading and
    preparing dataset" lines (nothing is downloaded) are hidden too
    (`jaxser.data.cache`).
  - TensorFlow is only used for tf.data: it is kept off the accelerators.
  - Reruns and resumptions reuse compiled programs through JAX's persistent
    compilation cache ($JAX_COMPILATION_CACHE_DIR, default
    ~/.cache/jaxser/xla) instead of recompiling.
  """
  if quiet():
    logging.set_verbosity(logging.WARNING)
    logging.get_absl_handler().addFilter(_JaxserWarningsOnly())
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  # openSMILE's native library before TensorFlow's (jaxser.data.features):
  # a script calling this before importing any of jaxser's data modules
  # crashed later in malloc when openSMILE loaded second.
  from jaxser.data import features  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  if quiet():
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    tfds.disable_progress_bar()
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_compilation_cache_dir', os.environ.get(
      'JAX_COMPILATION_CACHE_DIR',
      os.path.expanduser('~/.cache/jaxser/xla')))


# How long the other processes of a --distributed run wait at exit for
# process 0 to finish writing (initialize_distributed).
SHUTDOWN_TIMEOUT_S = 2 * 3600


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """`jax.distributed.initialize` for a multi-process run (`--distributed`).

  Call after `setup_process` and before JAX touches a device. Arguments left
  None are detected from the cluster (Cloud TPU metadata, SLURM, Open MPI,
  Kubernetes/JobSet; `JAX_COORDINATOR_ADDRESS`, `JAX_LOCAL_DEVICE_IDS`);
  elsewhere all three are needed. On CPU, processes exchange collectives
  through gloo (JAX's default, set here where it is unset) and connect
  before returning.

  Raises:
    ValueError: the arguments are missing and no cluster is detected, or
      inconsistent (`--process_id` not below `--num_processes`).
  """
  import jax  # pylint: disable=g-import-not-at-top
  if jax.config.jax_cpu_collectives_implementation is None:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if num_processes is not None and num_processes < 1:
    raise ValueError(f'--num_processes must be at least 1, got '
                     f'{num_processes}')
  if (process_id is not None and num_processes is not None
      and not 0 <= process_id < num_processes):
    raise ValueError(f'--process_id must be in [0, {num_processes}) '
                     f'(--num_processes), got {process_id}')
  try:
    # At exit every process waits for the others (JAX's shutdown barrier,
    # 300 s by default, then all abort). Process 0 alone writes results,
    # predictions, plots and reports after the last collective, which can
    # take longer: the others wait up to SHUTDOWN_TIMEOUT_S. A process that
    # dies is still noticed within the heartbeat timeout.
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes,
                               process_id=process_id,
                               shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
  except ValueError as e:  # JAX's: a field it could neither get nor detect.
    raise ValueError(
        f'--distributed: {e}; outside a detected cluster (Cloud TPU, SLURM, '
        'Open MPI, Kubernetes) give --coordinator_address=HOST:PORT, '
        '--num_processes and --process_id') from None
  if jax.process_count() > 1 and jax.default_backend() == 'cpu':
    # Gloo connects a set of devices at its first collective and gives up
    # after 30 s (XLA's fixed key-value timeout; later collectives wait
    # longer). Processes skewed by more (a cache hit on one, a compile on
    # the other, a loaded machine) then fail in orbax's first barrier, so
    # connect all devices now, while initialize() holds them in step.
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices('jaxser: processes connected')
