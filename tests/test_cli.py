"""What a user meets around a run: Ctrl-C, a failed first attempt on a
workdir, provenance in results.json, quiet library logs."""

import json
import logging as std_logging
import os

import pytest

from conftest import tiny_config
from jaxser import runtime
from jaxser import train
from jaxser.data import pipeline


def test_ctrl_c_saves_the_finished_steps_and_says_so(tmp_path, cache_dir,
                                                     monkeypatch):
  config = tiny_config('source_only', cache_dir, steps=6)
  config.train.checkpoint_every = 100
  config.data.resident = 'stream'  # Batches through pipeline.train_batches.
  real = pipeline.train_batches

  def interrupted_after_three(*args, **kwargs):
    for n, batch in enumerate(real(*args, **kwargs)):
      if n == 3:
        raise KeyboardInterrupt
      yield batch
  monkeypatch.setattr(pipeline, 'train_batches', interrupted_after_three)
  with pytest.raises(train.Interrupted) as e:
    train.train_and_evaluate(config, str(tmp_path))
  assert e.value.step == 3
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3']
  assert not os.path.exists(tmp_path / 'results.json')
  # Rerunning the same command resumes from step 3 and finishes.
  monkeypatch.setattr(pipeline, 'train_batches', real)
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result['steps'] == 6
  for key in ('jaxser_version', 'git_commit', 'wall_time_s', 'device_kind'):
    assert key in result
  assert result['wall_time_s'] >= 0


def test_a_run_failing_before_training_leaves_the_workdir_free(tmp_path,
                                                               cache_dir):
  config = tiny_config('source_only', cache_dir)
  config.data.source = 'casia'
  config.data.paths.casia = str(tmp_path / 'no_such_corpus')
  with pytest.raises(ValueError, match='no_such_corpus'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run' / 'config.json')
  # The corrected command (another source) is not refused.
  fixed = tiny_config('source_only', cache_dir)
  train._check_resumable(fixed, str(tmp_path / 'run'))


def test_library_warnings_are_filtered_and_jaxser_warnings_kept():
  keep = runtime._JaxserWarningsOnly()

  def record(level, path):
    return std_logging.LogRecord('absl', level, path, 1, 'm', (), None)
  tfds = '/venv/site-packages/tensorflow_datasets/core/dataset_builder.py'
  assert not keep.filter(record(std_logging.WARNING, tfds))
  assert not keep.filter(record(std_logging.INFO, tfds))
  assert keep.filter(record(std_logging.ERROR, tfds))
  own = os.path.join(os.path.dirname(runtime.__file__), 'data', 'audio.py')
  assert keep.filter(record(std_logging.WARNING, own))


def test_summary_line_of_every_kind_of_result():
  from jaxser import cli as main  # What jaxser.main prints.
  base = dict(method='dann', source='casia', target='emovo', task='arousal',
              protocol='transductive')
  labelled = dict(base, uar=0.5, war=0.625, macro_f1=0.25, num_eval=8)
  assert main.summary_line(labelled, '/w') == (
      'dann casia -> emovo (arousal, transductive): UAR 0.5000 WAR 0.6250 '
      'macro-F1 0.2500 on 8 utterances; /w/results.json')
  stats = {'mean': 0.5, 'std': 0.125}
  seeds = dict(base, seeds=[0, 1], uar=stats, war=stats, macro_f1=stats)
  assert 'dann casia -> emovo (arousal, transductive), 2 seeds: UAR 0.5000 ' \
      '± 0.1250' in main.summary_line(seeds, '/w')
  unlabelled = dict(base, target_labelled=False, num_eval=3,
                    predicted_counts={'low': 1, 'high': 2})
  assert 'target unlabelled, 3 utterances predicted (low 1, high 2)' in \
      main.summary_line(unlabelled, '/w')
  # A TTS run has no source, target or SER metrics (it used to crash here,
  # after training).
  tts = {'task': 'tts', 'method': 'gst_tacotron', 'variant': 'our-4cls',
         'corpus': 'ljspeech', 'num_train': 15, 'steps': 20,
         'val/loss': 3.0, 'val/mel_l1': 0.25}
  assert main.summary_line(tts, '/w') == (
      'gst_tacotron (our-4cls) on ljspeech: 15 utterances, 20 steps; '
      'held-out loss 3.0000 (mel L1 0.2500); /w/results.json')


def test_setup_process_first_then_opensmile_does_not_crash():
  """runtime.setup_process imports TensorFlow; called before any jaxser
  data module, openSMILE used to load second and abort in malloc."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = (
      'from absl import flags; flags.FLAGS(["x"])\n'
      'from jaxser import runtime; runtime.setup_process()\n'
      'import numpy as np, opensmile\n'
      'smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,'
      ' feature_level=opensmile.FeatureLevel.Functionals)\n'
      'x = np.random.default_rng(0).normal(size=16000).astype(np.float32)\n'
      'for _ in range(20): y = smile.process_signal(0.1 * x, 16000)\n'
      'print("features", y.shape)\n')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  assert 'features (1, 88)' in out.stdout
