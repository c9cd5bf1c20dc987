"""jaxser.predict / jaxser.export: a trained run applied to audio files, from
its workdir and from an exported bundle; jaxser.label on a single file."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import render_tiny
from conftest import tiny_config
from jaxser import export as export_lib
from jaxser import inference
from jaxser import label as label_lib
from jaxser import predict as predict_lib
from jaxser import train
from jaxser.data import corpus as corpus_lib
from jaxser.data import pipeline

CLASSES = ('neutral', 'happy', 'sad', 'angry')


@pytest.fixture(scope='module')
def run(tmp_path_factory, cache_dir):
  """A tiny finished source_only run normalising per corpus (z-score), with
  its inference assets."""
  workdir = str(tmp_path_factory.mktemp('run'))
  config = tiny_config('source_only', cache_dir, steps=2)
  config.data.normalize = 'corpus_zscore'
  train.train_and_evaluate(config, workdir)
  saved_by_training = os.path.isdir(os.path.join(workdir,
                                                 inference.INFERENCE_DIR))
  if not saved_by_training:
    # What train.train_and_evaluate does once the run's data is loaded.
    export_lib.save_run_assets(workdir, pipeline.load_data(config.data),
                               config)
  RUN_STATE['saved_by_training'] = saved_by_training
  return workdir


RUN_STATE = {}


@pytest.fixture(scope='module')
def audio(tmp_path_factory):
  """The tiny target corpus as float WAV files (the exact waveforms the run
  evaluated), beside a cut file and an empty one."""
  root = tmp_path_factory.mktemp('audio')
  corpus = corpus_lib.load('tiny_tgt')
  for u in corpus.utterances:
    path = root / f'{u.utt_id}.wav'
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), render_tiny(u), 16000, subtype='FLOAT')
  (root / 'a' / 'cut.wav').write_bytes(b'RIFF\x10\x00\x00\x00WAVEfmt junk')
  (root / 'empty.flac').write_bytes(b'')
  (root / 'notes.txt').write_text('not audio, not listed')
  return str(root)


def _run_probs(workdir):
  """utt_id -> the class posteriors of the run's own final evaluation."""
  with open(os.path.join(workdir, 'predictions.csv')) as f:
    rows = list(csv.DictReader(f))
  return {r['utt_id']: inference.softmax(np.array(
      [[float(r[f'logit_{c}']) for c in CLASSES]]))[0] for r in rows}


def _probs(result):
  return {r['path']: np.array([r['probabilities'][c] for c in CLASSES])
          for r in result['rows'] if 'error' not in r}


def test_training_saves_the_inference_assets(run):
  if not RUN_STATE['saved_by_training']:
    pytest.skip('train.train_and_evaluate does not call '
                'export.save_run_assets yet')
  folder = os.path.join(run, inference.INFERENCE_DIR)
  with open(os.path.join(folder, inference.INFO)) as f:
    info = json.load(f)
  assert info['classes'] == list(CLASSES) and info['target'] == 'tiny_tgt'
  assert info['normalize'] == 'corpus_zscore'
  assert info['feature']['name'] == 'mfcc40'
  assert info['feature']['shape'] == [48, 40]
  stats = inference.read_stats(folder)
  assert stats['shift'].shape == stats['scale'].shape == (1, 40)


def test_predict_a_folder_equals_the_runs_evaluation_and_reports_bad_files(
    run, audio, tmp_path):
  result = predict_lib.predict([audio], workdir=run, progress=False)
  rows = result['rows']
  assert result['classes'] == list(CLASSES)
  assert 'target corpus' in result['normalization']
  errors = {os.path.relpath(r['path'], audio): r['error'] for r in rows
            if 'error' in r}
  assert set(errors) == {'a/cut.wav', 'empty.flac'}
  assert 'unreadable' in errors['a/cut.wav']
  assert 'empty' in errors['empty.flac']
  # Every other file predicted, with the posteriors the run's own final
  # evaluation gave the same audio (same features and normalisation).
  want = _run_probs(run)
  got = {os.path.relpath(p, audio)[:-len('.wav')]: v
         for p, v in _probs(result).items()}
  assert sorted(got) == sorted(want)
  for utt, p in got.items():
    np.testing.assert_allclose(p, want[utt], atol=1e-5)
  assert all(r['predicted'] == CLASSES[int(np.argmax(list(
      r['probabilities'].values())))] for r in rows if 'error' not in r)

  # One line per file, errors included; CSV and JSON hold the same.
  lines = [predict_lib.line(r) for r in rows]
  assert len(lines) == len(rows) and all('\n' not in l for l in lines)
  assert sum(': error: ' in l for l in lines) == 2
  predict_lib.save(result, str(tmp_path / 'p.csv'))
  predict_lib.save(result, str(tmp_path / 'p.json'))
  with open(tmp_path / 'p.csv', newline='') as f:
    table = list(csv.DictReader(f))
  assert [r['path'] for r in table] == [r['path'] for r in rows]
  by_path = _probs(result)
  for r in table:
    if r['error']:
      assert r['predicted'] == ''
    else:
      np.testing.assert_allclose([float(r[f'p_{c}']) for c in CLASSES],
                                 by_path[r['path']], rtol=1e-5)
  with open(tmp_path / 'p.json') as f:
    saved = json.load(f)
  assert saved['predictions'] == json.loads(json.dumps(rows))
  with pytest.raises(ValueError, match='--out'):
    predict_lib.save(result, str(tmp_path / 'p.txt'))


def test_normalize_self_uses_the_given_files_statistics(run, audio):
  everything = _probs(predict_lib.predict([audio], workdir=run,
                                          normalize='self', progress=False))
  by_run = _probs(predict_lib.predict([audio], workdir=run, progress=False))
  # The given files are the whole target corpus: its statistics are theirs.
  for p in by_run:
    np.testing.assert_allclose(everything[p], by_run[p], atol=1e-5)
  # A few files alone have other statistics, so other posteriors; those of
  # the run do not depend on which files are given.
  few = sorted(by_run)[:6]
  alone = predict_lib.predict(few, workdir=run, normalize='self',
                              progress=False)
  assert 'the 6 given files' in alone['normalization']
  alone = _probs(alone)
  assert max(np.abs(alone[p] - by_run[p]).max() for p in few) > 1e-3
  run_few = _probs(predict_lib.predict(few, workdir=run, progress=False))
  for p in few:
    np.testing.assert_allclose(run_few[p], by_run[p], atol=1e-5)


def test_exported_bundle_predicts_as_the_workdir(run, audio, tmp_path):
  bundle = str(tmp_path / 'model')
  summary = export_lib.export(run, bundle)
  assert sorted(os.listdir(bundle)) == sorted(summary['files'])
  assert inference.NORMALIZATION in summary['files']
  files = sorted(os.path.join(audio, 'b', e, '0.wav') for e in CLASSES)
  a = predict_lib.predict(files, workdir=run, progress=False)
  b = predict_lib.predict(files, model_dir=bundle, progress=False)
  assert b['step'] == a['step'] == 2
  assert [r['predicted'] for r in b['rows']] == [
      r['predicted'] for r in a['rows']]
  pa, pb = _probs(a), _probs(b)
  for p in files:
    np.testing.assert_array_equal(pa[p], pb[p])
  with pytest.raises(ValueError, match='not a bundle'):
    predict_lib.predict(files, model_dir=str(tmp_path), progress=False)
  with pytest.raises(ValueError, match='one of --workdir'):
    predict_lib.predict(files, workdir=run, model_dir=bundle)


def test_an_old_run_without_statistics(run, audio, tmp_path, monkeypatch):
  old = str(tmp_path / 'old')
  shutil.copytree(run, old)
  shutil.rmtree(os.path.join(old, inference.INFERENCE_DIR))
  files = [os.path.join(audio, 'c', 'sad', '1.wav')]
  want = _probs(predict_lib.predict(files, workdir=run, progress=False))
  # Its target corpus is reachable: the statistics are recomputed.
  got = _probs(predict_lib.predict(files, workdir=old, progress=False))
  np.testing.assert_allclose(got[files[0]], want[files[0]], atol=1e-6)
  # Not reachable: one line suggesting --normalize=self, which works.
  monkeypatch.setattr(inference, 'recompute_target_stats', lambda c: None)
  with pytest.raises(ValueError, match='--normalize=self') as e:
    predict_lib.predict(files, workdir=old, progress=False)
  assert '\n' not in str(e.value)
  assert _probs(predict_lib.predict(files, workdir=old, normalize='self',
                                    progress=False))


def test_label_accepts_a_single_file(run, audio, tmp_path):
  path = os.path.join(audio, 'a', 'angry', '2.wav')
  summary = label_lib.label(run, 'folder', root=path,
                            out=str(tmp_path / 'lab'), workers=0)
  assert summary['utterances'] == 1 and summary['skipped'] == 0
  with open(tmp_path / 'lab' / 'soft_labels.csv') as f:
    (row,) = list(csv.DictReader(f))
  assert row['path'] == path


def test_self_speaker_zscore_groups_files_by_folder():
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(6, 5, 3)).astype(np.float32)
  feats[3:] += 10.0  # The second speaker's files sit elsewhere.
  lengths = np.array([5, 4, 5, 3, 5, 5], np.int32)
  speakers = ['s1'] * 3 + ['s2'] * 3
  model = inference.Model(None, {'normalize': 'speaker_zscore',
                                 'target': 't'}, None, None, 0, 'run')
  out, how = inference.normalise(model, feats, lengths, speakers, 'self')
  assert 'per speaker (parent folder): 2' in how
  for sel in (slice(0, 3), slice(3, 6)):
    rows = np.concatenate([out[i, :lengths[i]] for i in range(6)[sel]])
    np.testing.assert_allclose(rows.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(rows.std(0), 1.0, atol=1e-4)
  assert not out[1, 4:].any()  # Padding stays zero.
  # The run's statistics are needed for 'run' and missing here: one line.
  with pytest.raises(ValueError, match='--normalize=self'):
    inference.normalise(model, feats, lengths, speakers, 'run')
  same, how = inference.normalise(model, feats, lengths, speakers, 'none')
  assert same is feats and '--normalize=none' in how
