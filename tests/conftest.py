"""Shared fixtures: 8 forced CPU devices and two tiny registered corpora."""

import os

# Must precede the first import of jax anywhere in the test session.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8')
os.environ.setdefault('NUMBA_CACHE_DIR', '/tmp/jaxser_numba_cache')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tempfile  # noqa: E402
import zlib  # noqa: E402

import jax  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from jaxser.data import corpus as corpus_lib  # noqa: E402
# Loads openSMILE's native library before any test imports TensorFlow.
from jaxser.data import features  # noqa: E402,F401

# Several tests compile the same programs; a persistent cache compiles once.
jax.config.update('jax_compilation_cache_dir',
                  os.path.join(tempfile.gettempdir(), 'jaxser_test_xla_cache'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)

TINY_EMOTIONS = ('neutral', 'happy', 'sad', 'angry')


def render_tiny(utt: corpus_lib.Utterance) -> np.ndarray:
  """0.5 s of a class-dependent tone in noise; the corpus shifts the pitch."""
  rng = np.random.default_rng(zlib.crc32(f'{utt.corpus}/{utt.utt_id}'.encode()))
  k = TINY_EMOTIONS.index(utt.emotion)
  shift = 1.3 if utt.corpus.endswith('tgt') else 1.0
  t = np.arange(8000) / 16000
  f0 = (150 + 60 * k) * shift * (1 + 0.05 * rng.standard_normal())
  wav = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(t.size)
  return wav.astype(np.float32)


def _tiny(name: str, speakers=('a', 'b', 'c'), per_class=4):
  def load(root):
    del root
    utts = [corpus_lib.Utterance(
        utt_id=f'{s}/{e}/{i}', corpus=name, speaker=s,
        gender='f' if s == 'a' else 'm', language='xx', emotion=e)
            for s in speakers for e in TINY_EMOTIONS for i in range(per_class)]
    return corpus_lib.Corpus(name, utts, render=render_tiny)
  return load


corpus_lib.register('tiny_src', synthetic=True)(_tiny('tiny_src'))
corpus_lib.register('tiny_tgt', synthetic=True)(_tiny('tiny_tgt'))


def tiny_config(method: str, cache_dir: str, steps: int = 4):
  """A config small enough to train in seconds on the tiny corpora."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(__file__), '..', 'configs',
                      f'{method}.py')
  spec = importlib.util.spec_from_file_location(f'cfg_{method}', path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config()
  c.data.source = 'tiny_src'
  c.data.target = 'tiny_tgt'
  c.data.frames = 48
  c.data.cache_dir = cache_dir
  c.data.workers = 0
  c.train.steps = steps
  c.train.batch_size = 8
  c.train.log_every = 2
  c.train.eval_every = 0
  c.train.checkpoint_every = 2
  c.train.eval_batch_size = 16
  c.report.embedding = 'none'  # UMAP would take minutes per run.
  return c


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('cache'))
