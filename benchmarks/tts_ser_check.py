"""Does GST-Tacotron 2 speak the emotion it is asked for? The MMD-SER paper's
pipeline end to end on espeak-ng speech, checked by the SER model itself.

  python benchmarks/tts_ser_check.py --workdir=/tmp/tts_check \
      [--ser_steps=600] [--tts_steps=5000] [--sentences=16]

1. Two espeak-ng corpora, four prosody styles standing in for the emotions
   of `emotion4` (pitch, speed, loudness; each utterance jittered):
   an SER corpus (`folder`, labelled by style, three voices, its own
   sentences) and a TTS corpus (`ljspeech`, another voice, other sentences,
   no labels: the paper's unlabelled TTS corpus).
2. An SER model (`configs/source_only.py`; by default an MLP on eGeMAPS
   functionals, z-scored per corpus; --ser_network=cnn_tcn
   --ser_features=mfcc40 --ser_normalize=none for the CNN) trained on the
   SER corpus with the TTS corpus as its unlabelled target, and
   `jaxser.label` soft labels + top-K reference sets for the TTS corpus.
3. GST-Tacotron 2 (our-4cls, a small size) trained on the TTS corpus with
   those soft labels (`configs/gst_tacotron.py` through `jaxser.main`).
4. Every TTS sentence synthesised in each emotion (token weights averaged
   over the emotion's top-K set), and every wav classified by the SER model
   (`jaxser.predict`'s function). Also classified, for scale: the TTS
   corpus's own recordings and their Griffin-Lim copy-synthesis (the
   vocoder alone).

Prints the SER accuracy (and confusion matrix) on each set against the
requested emotion (the style for recordings); chance is 25 %. Vocoded sets
are also classified normalised by their own statistics (`jaxser.predict
--normalize=self`), as every corpus is in training. Writes summary.json in --workdir.
Stages whose output exists are skipped, so a rerun continues.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from absl import app
from absl import flags

# Before TensorFlow: openSMILE's native library first.
from jaxser.data import features  # noqa: F401  pylint: disable=unused-import

import numpy as np

flags.DEFINE_string('workdir', '/tmp/tts_check', 'Where everything goes.')
flags.DEFINE_integer('ser_steps', 600, 'SER training steps.')
flags.DEFINE_integer('tts_steps', 5000, 'TTS training steps.')
flags.DEFINE_integer('sentences', 16, 'Sentences of the TTS corpus.')
flags.DEFINE_integer('top_k', 8, 'Reference-set size per emotion.')
flags.DEFINE_float('temperature', 1.0, 'Attention temperature at synthesis.')
flags.DEFINE_integer('seed', 0, 'Prosody jitter and training seed.')
# eGeMAPS on an MLP by default: prosody (pitch, loudness, rate) is what the
# styles differ in; the CNN on MFCCs heard the vocoded speech as sad or
# neutral whatever was asked (benchmarks/README.md).
flags.DEFINE_string('ser_features', 'egemaps', 'The SER model\'s features.')
flags.DEFINE_string('ser_network', 'mlp', 'The SER model\'s network.')
flags.DEFINE_string('ser_normalize', 'corpus_zscore', 'The SER model\'s '
                    'data.normalize.')
FLAGS = flags.FLAGS

CLASSES = ('neutral', 'happy', 'sad', 'angry')
# espeak-ng (pitch 0-99, words per minute, amplitude 0-200) per style.
STYLES = {'neutral': (50, 160, 100), 'happy': (80, 210, 140),
          'sad': (25, 110, 60), 'angry': (60, 240, 190)}
SER_VOICES = ('en+m3', 'en+f2', 'en+m7')
TTS_VOICE = 'en-us'
SER_SENTENCES = (
    'the sun is up.', 'open the door.', 'where is my bag?', 'i saw it.',
    'take the bus.', 'the dog ran off.', 'call me later.', 'it is cold.',
    'we lost again.', 'she is here!', 'look at that.', 'not today.')
TTS_SENTENCES = (
    'a cat sat on the mat.', 'go home now!', 'we will see.', 'is it here?',
    'the rain has stopped.', 'bring me the book.', 'he left early.',
    'what a day!', 'turn off the light.', 'my car is red.',
    'the tea is hot.', 'they won the game.', 'wait for me.',
    'this is mine.', 'time to eat.', 'the bird can sing.',
    'keep it simple.', 'ask him why.', 'the road is long.',
    'close the window.')


def _espeak(path: str, text: str, voice: str, style: str, rng) -> None:
  pitch, speed, amp = STYLES[style]
  pitch = int(np.clip(pitch + rng.integers(-8, 9), 0, 99))
  speed = int(speed * rng.uniform(0.9, 1.1))
  amp = int(amp * rng.uniform(0.85, 1.15))
  subprocess.run(['espeak-ng', '-v', voice, '-w', path, '-p', str(pitch),
                  '-s', str(speed), '-a', str(amp), text], check=True)


def make_corpora(work: str, n_tts: int, seed: int) -> dict[str, str]:
  """The SER corpus (folder + labels.csv) and the TTS corpus (metadata.csv);
  returns {tts wav path: its style}."""
  rng = np.random.default_rng(seed)
  ser, tts = os.path.join(work, 'ser_corpus'), os.path.join(work,
                                                            'tts_corpus')
  truth_file = os.path.join(work, 'tts_styles.json')
  if os.path.isfile(truth_file):
    with open(truth_file) as f:
      return json.load(f)
  for d in (ser, tts):
    shutil.rmtree(d, ignore_errors=True)
  os.makedirs(os.path.join(tts, 'wavs'))
  rows = ['path,emotion,speaker,text']
  for voice in SER_VOICES:
    os.makedirs(os.path.join(ser, voice))
    for s, text in enumerate(SER_SENTENCES):
      for style in CLASSES:
        rel = f'{voice}/{style}-{s:03d}.wav'
        _espeak(os.path.join(ser, rel), text, voice, style, rng)
        rows.append(f'{rel},{style},{voice},{text}')
  with open(os.path.join(ser, 'labels.csv'), 'w') as f:
    f.write('\n'.join(rows) + '\n')
  meta, truth = [], {}
  for s, text in enumerate(TTS_SENTENCES[:n_tts]):
    for style in CLASSES:
      uid = f'{style}-{s:03d}'
      path = os.path.join(tts, 'wavs', uid + '.wav')
      _espeak(path, text, TTS_VOICE, style, rng)
      meta.append(f'{uid}|{text}|{text}')
      truth[os.path.realpath(path)] = style
  with open(os.path.join(tts, 'metadata.csv'), 'w') as f:
    f.write('\n'.join(meta) + '\n')
  with open(truth_file, 'w') as f:
    json.dump(truth, f, indent=1)
  return truth


def _jaxser(*args: str) -> None:
  cmd = [sys.executable, '-m', *args]
  print('$', ' '.join(cmd), flush=True)
  subprocess.run(cmd, check=True)


TTS_CONFIG = '''\
import os
import runpy

def get_config():
  here = {root!r}
  c = runpy.run_path(os.path.join(here, 'configs', 'gst_tacotron.py'))[
      'get_config']()
  c.data.paths.ljspeech = {corpus!r}
  c.tts.labels = {labels!r}
  c.tts.top_k = {top_k}
  c.tts.val_fraction = 0.05
  c.tts.max_decoder_steps = 80
  c.tts.warmup_steps = 300
  # Overlapping frames: Griffin-Lim without overlap (the tests' 16 ms
  # window and hop) has no phase consistency to work with and garbles
  # exactly the loudness and voicing cues an SER model listens to.
  c.tts.audio.update(dict(n_fft=512, win_ms=32.0, hop_ms=12.0, n_mels=40,
                          griffin_lim_iters=60))
  c.tts.model.update(dict(
      outputs_per_step=4, embed_dim=32, encoder_lstm=16, prenet=(32, 32),
      attention_rnn=48, decoder_rnn=48, attention_dim=16, location_filters=4,
      location_kernel=7, postnet_convs=2, postnet_channels=32, cbhg_bank=2,
      cbhg_channels=16, cbhg_projections=32, cbhg_highway=1, cbhg_gru=16,
      reference_filters=(8, 16), reference_gru=16, num_tokens=4,
      token_dim=16, token_heads=2))
  c.train.steps = {steps}
  c.train.batch_size = 8
  c.train.eval_batch_size = 4
  c.train.log_every = 100
  c.train.checkpoint_every = 1000
  c.seed = {seed}
  return c
'''


def _accuracy(rows: list[dict], want: list[str]) -> dict:
  conf = np.zeros((len(CLASSES), len(CLASSES)), int)
  for r, w in zip(rows, want):
    if 'predicted' in r:
      conf[CLASSES.index(w), CLASSES.index(r['predicted'])] += 1
  n = int(conf.sum())
  recall = conf.diagonal() / np.maximum(conf.sum(1), 1)
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return {'n': n, 'errors': len(rows) - n,
          'accuracy': float(conf.trace() / max(n, 1)),
          # One-sided binomial test against guessing one of 4 classes.
          'p_vs_chance': float(stats.binom.sf(conf.trace() - 1, n, 0.25)),
          'uar': float(recall.mean()), 'confusion': conf.tolist()}


def _print(name: str, r: dict) -> None:
  print(f'\n{name}: accuracy {100 * r["accuracy"]:.1f} %, UAR '
        f'{100 * r["uar"]:.1f} % of {r["n"]} (chance 25 %; binomial p = '
        f'{r["p_vs_chance"]:.1g})')
  print('  requested \\ heard  ' + ' '.join(f'{c:>8}' for c in CLASSES))
  for c, row in zip(CLASSES, r['confusion']):
    print(f'  {c:>17}  ' + ' '.join(f'{x:8d}' for x in row))


def main(argv):
  del argv
  from jaxser import runtime  # pylint: disable=g-import-not-at-top
  runtime.setup_process()
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  work = os.path.abspath(FLAGS.workdir)
  os.makedirs(work, exist_ok=True)
  times = {}
  t0 = time.time()
  truth = make_corpora(work, FLAGS.sentences, FLAGS.seed)
  times['corpora_s'] = time.time() - t0
  ser_corpus = os.path.join(work, 'ser_corpus')
  tts_corpus = os.path.join(work, 'tts_corpus')
  ser, labels, tts = (os.path.join(work, d) for d in ('ser', 'labels', 'tts'))

  t0 = time.time()
  if not os.path.isfile(os.path.join(ser, 'results.json')):
    _jaxser('jaxser.main', f'--config={root}/configs/source_only.py',
            f'--workdir={ser}', '--config.data.source=folder',
            '--config.data.target=ljspeech',
            f'--config.data.paths.folder={ser_corpus}',
            f'--config.data.paths.ljspeech={tts_corpus}',
            f'--config.train.steps={FLAGS.ser_steps}',
            f'--config.data.features={FLAGS.ser_features}',
            f'--config.model.name={FLAGS.ser_network}',
            f'--config.data.normalize={FLAGS.ser_normalize}',
            '--config.train.eval_every=0', f'--config.seed={FLAGS.seed}')
  times['ser_s'] = time.time() - t0
  t0 = time.time()
  if not os.path.isfile(os.path.join(labels, 'soft_labels.csv')):
    _jaxser('jaxser.label', f'--workdir={ser}', '--corpus=ljspeech',
            f'--root={tts_corpus}', f'--out={labels}',
            f'--top_k={FLAGS.top_k}')
  times['label_s'] = time.time() - t0

  t0 = time.time()
  cfg = os.path.join(work, 'tts_config.py')
  with open(cfg, 'w') as f:
    f.write(TTS_CONFIG.format(root=root, corpus=tts_corpus, labels=labels,
                              top_k=FLAGS.top_k, steps=FLAGS.tts_steps,
                              seed=FLAGS.seed))
  if not os.path.isfile(os.path.join(tts, 'results.json')):
    _jaxser('jaxser.main', f'--config={cfg}', f'--workdir={tts}')
  times['tts_s'] = time.time() - t0

  from jaxser import predict  # pylint: disable=g-import-not-at-top
  from jaxser import synthesize  # pylint: disable=g-import-not-at-top
  from jaxser.data.corpora import common  # pylint: disable=g-import-not-at-top
  from jaxser.tts import audio as audio_lib  # pylint: disable=g-import-not-at-top

  # The labels against the styles the corpus was spoken in.
  soft = common.read_table(os.path.join(labels, 'soft_labels.csv'))
  label_rows = [{'predicted': r['predicted']} for r in soft]
  label_want = [truth[os.path.realpath(r['path'])] for r in soft]
  results = {'soft_labels_vs_style': _accuracy(label_rows, label_want)}

  t0 = time.time()
  synth = synthesize.Synthesizer(tts)
  texts = list(TTS_SENTENCES[:FLAGS.sentences])
  out = os.path.join(work, 'synth')
  files, want, stopped, seconds = [], [], [], {}
  for emotion in CLASSES:
    try:
      weights = synth.style_weights({'emotion': emotion}, [labels],
                                    FLAGS.top_k, full=False)
    except ValueError as e:  # The SER model never predicted this emotion.
      print(f'{emotion}: not synthesised: {e}')
      continue
    res, _ = synth.synthesize(texts, weights, synth.config.tts.
                              max_decoder_steps, FLAGS.temperature,
                              synth.config.tts.stop_threshold,
                              seed=FLAGS.seed)
    secs = []
    for i, (wave, _, stop) in enumerate(res):
      path = os.path.join(out, emotion, f'{i:03d}.wav')
      os.makedirs(os.path.dirname(path), exist_ok=True)
      synthesize.write_wav(path, wave)
      files.append(path)
      want.append(emotion)
      stopped.append(stop)
      secs.append(len(wave) / 16000)
    seconds[emotion] = float(np.mean(secs))
  # Copy-synthesis: Griffin-Lim of the corpus's own linear spectrograms.
  a = synth.data.arrays
  copy = os.path.join(work, 'copy_synthesis')
  copy_files, copy_want = [], []
  for i, path in enumerate(synth.data.paths):
    wave = audio_lib.griffin_lim(
        np.asarray(a['linear'][i, :a['frames'][i]], np.float32),
        synth.method.audio, seed=FLAGS.seed)
    dst = os.path.join(copy, os.path.basename(path))
    os.makedirs(copy, exist_ok=True)
    synthesize.write_wav(dst, wave)
    copy_files.append(dst)
    copy_want.append(truth[os.path.realpath(path)])
  times['synthesis_s'] = time.time() - t0

  t0 = time.time()
  for name, paths, w in (
      ('recordings', list(truth), list(truth.values())),
      ('copy_synthesis', copy_files, copy_want),
      ('synthesised', files, want)):
    pred = predict.predict(paths, workdir=ser, progress=False)
    results[name] = _accuracy(pred['rows'], w)
    if FLAGS.ser_normalize != 'none' and name != 'recordings':
      # A set of audio from elsewhere normalised by its own statistics, as
      # training normalises every corpus (the TTS corpus's statistics are
      # those of natural speech, not of the vocoder's).
      pred = predict.predict(paths, workdir=ser, normalize='self',
                             progress=False)
      results[name + '_self_normalised'] = _accuracy(pred['rows'], w)
  times['predict_s'] = time.time() - t0

  with open(os.path.join(tts, 'results.json')) as f:
    tts_result = json.load(f)
  summary = {
      'results': results, 'times_s': times,
      'synthesised_stopped': int(sum(stopped)),
      'synthesised_total': len(stopped),
      'synthesised_mean_seconds': seconds,
      'tts_val': {k: v for k, v in tts_result.items()
                  if k.startswith('val/')},
      'flags': {k: FLAGS[k].value for k in (
          'ser_steps', 'tts_steps', 'sentences', 'top_k', 'temperature',
          'seed', 'ser_features', 'ser_network', 'ser_normalize')}}
  with open(os.path.join(work, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  _print('soft labels of the TTS corpus vs the style it was spoken in',
         results['soft_labels_vs_style'])
  _print('SER on the TTS corpus recordings', results['recordings'])
  _print('SER on their Griffin-Lim copy-synthesis', results['copy_synthesis'])
  _print('SER on GST-Tacotron speech for the requested emotion',
         results['synthesised'])
  for name, what in (('copy_synthesis', 'the copy-synthesis'),
                     ('synthesised', 'GST-Tacotron speech')):
    if name + '_self_normalised' in results:
      _print(f'SER on {what}, normalised by its own statistics '
             '(--normalize=self)', results[name + '_self_normalised'])
  print(f'\nstopped by the stop token: {sum(stopped)}/{len(stopped)}; mean '
        'seconds per emotion: ' + ', '.join(
            f'{k} {v:.2f}' for k, v in seconds.items()))
  print('times (s): ' + ', '.join(f'{k} {v:.0f}' for k, v in times.items()))


if __name__ == '__main__':
  app.run(main)
