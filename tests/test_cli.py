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
