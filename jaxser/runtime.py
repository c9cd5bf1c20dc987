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
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  if quiet():
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    tfds.disable_progress_bar()
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_compilation_cache_dir', os.environ.get(
      'JAX_COMPILATION_CACHE_DIR',
      os.path.expanduser('~/.cache/jaxser/xla')))
