"""An unlabelled target corpus (a TTS corpus, a user's recordings) is a
first-class adaptation target: training runs, no target metrics exist, and
the predictions are written."""

import dataclasses
import json

import numpy as np
import pytest
from conftest import TINY_EMOTIONS, render_tiny, tiny_config
from jaxser import predictions as predictions_lib
from jaxser import train
from jaxser.data import corpus as corpus_lib


def _hidden(name, emotion_of=lambda e: None):
  def load(root):
    del root
    utts = [corpus_lib.Utterance(
        utt_id=f'{s}/{e}/{i}', corpus=name, speaker=s, language='xx',
        emotion=emotion_of(e))
            for s in 'ab' for e in TINY_EMOTIONS for i in range(3)]
    # The audio of the class its name says, the label hidden.
    render = lambda u: render_tiny(dataclasses.replace(
        u, corpus='tiny_tgt', emotion=u.utt_id.split('/')[1]))
    return corpus_lib.Corpus(name, utts, render=render)
  return load


corpus_lib.register('tiny_unlabelled', synthetic=True)(
    _hidden('tiny_unlabelled'))
# Labelled, but with categories no task of 4 emotions covers.
corpus_lib.register('tiny_uncovered', synthetic=True)(
    _hidden('tiny_uncovered', lambda e: 'disgust'))


def test_unlabelled_target_trains_and_predicts(tmp_path, capsys):
  config = tiny_config('dann', str(tmp_path / 'cache'), steps=2)
  config.data.target = 'tiny_unlabelled'
  config.train.eval_every = 1  # Monitoring needs labels: skipped.
  result = train.train_and_evaluate(config, str(tmp_path / 'w'))
  out = capsys.readouterr().out
  assert 'target unlabelled' in out and 'is unlabelled: no target metrics' in out
  saved = json.load(open(tmp_path / 'w' / 'results.json'))
  assert saved == json.loads(json.dumps(result))
  assert saved['target_labelled'] is False and 'uar' not in saved
  assert saved['num_eval'] == saved['num_target_train'] == 24
  assert sum(saved['predicted_counts'].values()) == 24
  keys, labels, logits, classes = predictions_lib.read(
      str(tmp_path / 'w' / predictions_lib.FILE))
  assert len(keys) == 24 and (labels == -1).all()
  assert logits.shape == (24, 4) and tuple(classes) == TINY_EMOTIONS
  rows = [json.loads(l) for l in open(tmp_path / 'w' / 'metrics.jsonl')]
  assert not any(k.startswith('eval/') for r in rows for k in r)
  assert (tmp_path / 'w' / 'report.md').exists()
  assert np.isfinite(logits).all()


def test_a_target_whose_labels_the_task_does_not_cover_is_an_error(tmp_path):
  config = tiny_config('source_only', str(tmp_path / 'cache'), steps=1)
  config.data.target = 'tiny_uncovered'
  with pytest.raises(ValueError, match="config.data.target: corpus "
                     "'tiny_uncovered' has no utterance covered by task"):
    train.train_and_evaluate(config, str(tmp_path / 'w'))
