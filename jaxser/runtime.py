"""Process setup shared by the command-line programs (main, grid, label)."""

from __future__ import annotations

import os

from absl import flags
from absl import logging


def setup_process() -> None:
  """Call first in an absl `main`, before JAX runs anything.

  - Library INFO logs (orbax, TFDS) drown the progress bar: they are off
    unless `--verbosity` is given (`--verbosity=0` brings them back).
  - TensorFlow is only used for tf.data: it is kept off the accelerators.
  - Reruns and resumptions reuse compiled programs through JAX's persistent
    compilation cache ($JAX_COMPILATION_CACHE_DIR, default
    ~/.cache/jaxser/xla) instead of recompiling.
  """
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_compilation_cache_dir', os.environ.get(
      'JAX_COMPILATION_CACHE_DIR',
      os.path.expanduser('~/.cache/jaxser/xla')))
