"""End to end: GST-Tacotron 2 trained by the shared train loop on a tiny
espeak-ng corpus (jaxser's synthetic speech where espeak-ng is missing),
resumed, and synthesised from with `jaxser.synthesize`.

Slow: compiling the whole Tacotron (scans over the decoder, BiLSTM, GRUs,
their gradients) takes minutes on a CPU; the runs share the tests'
persistent compilation cache (conftest), so the resumed run compiles
nothing new.
"""

import inspect
import json
import os
import shutil
import subprocess
import types

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SENTENCES = ('a cat sat.', 'go home now!', 'we will see.', 'is it here?')
# espeak-ng prosody (pitch 0-99, words per minute, amplitude) standing in
# for four emotions: the soft labels below follow them.
STYLES = {'neutral': (50, 160, 100), 'happy': (80, 210, 140),
          'sad': (25, 110, 60), 'angry': (60, 240, 190)}
CLASSES = ('neutral', 'happy', 'sad', 'angry')


def make_corpus(root: str, sentences=SENTENCES, styles=STYLES) -> list:
  """An LJSpeech-style corpus: every sentence in every style. Returns
  [(path, style)]. espeak-ng when installed, else jaxser's synthetic
  speech (which does not say the text: enough for the plumbing)."""
  import soundfile as sf
  os.makedirs(os.path.join(root, 'wavs'), exist_ok=True)
  rows, out = [], []
  espeak = shutil.which('espeak-ng')
  for s, text in enumerate(sentences):
    for style, (pitch, speed, amp) in styles.items():
      uid = f'{style}-{s:03d}'
      path = os.path.join(root, 'wavs', uid + '.wav')
      if espeak:
        subprocess.run([espeak, '-w', path, '-p', str(pitch), '-s',
                        str(speed), '-a', str(amp), text], check=True)
      else:
        from jaxser.data import corpus as corpus_lib
        from jaxser.data import synthetic
        c = corpus_lib.load(synthetic.DEFAULT_SOURCE)
        utt = [u for u in c.utterances if u.emotion == style][s]
        sf.write(path, c.read_audio(utt), 16000)
      rows.append(f'{uid}|{text}|{text}')
      out.append((path, style))
  with open(os.path.join(root, 'metadata.csv'), 'w') as f:
    f.write('\n'.join(rows) + '\n')
  return out


def write_labels(out: str, utts, k: int = 2, sharp: float = 0.7) -> None:
  """A jaxser.label output folder whose soft labels follow the styles."""
  from jaxser import io as io_lib
  os.makedirs(out, exist_ok=True)
  probs = np.array([[sharp if c == s else (1 - sharp) / 3 for c in CLASSES]
                    for _, s in utts])
  probs += np.linspace(0, 0.01, len(utts))[:, None] * np.eye(4)[0]
  probs /= probs.sum(1, keepdims=True)
  pred = probs.argmax(1)
  io_lib.write_csv(os.path.join(out, 'soft_labels.csv'),
                   ['utt_id', 'path', 'predicted', 'confidence'] +
                   [f'p_{c}' for c in CLASSES],
                   ([os.path.basename(p), p, CLASSES[j], q[j]] + list(q)
                    for (p, _), q, j in zip(utts, probs, pred)))
  for j, c in enumerate(CLASSES):
    rows = np.flatnonzero(pred == j)
    rows = rows[np.argsort(-probs[rows, j], kind='stable')][:k]
    io_lib.write_csv(os.path.join(out, f'top_{k}_{c}.csv'),
                     ['rank', 'utt_id', 'path', 'posterior'],
                     ([r + 1, os.path.basename(utts[i][0]), utts[i][0],
                       probs[i, j]] for r, i in enumerate(rows)))


def tiny_config(corpus: str, labels: str, cache: str, steps: int = 4):
  from jaxser import config as config_lib
  c = config_lib.load(os.path.join(os.path.dirname(__file__), '..',
                                   'configs', 'gst_tacotron.py'))
  c.data.paths.ljspeech = corpus
  c.data.cache_dir = cache
  c.tts.labels = labels
  c.tts.top_k = 2
  c.tts.val_fraction = 0.25
  c.tts.max_decoder_steps = 30
  c.tts.audio.update(dict(n_fft=256, win_ms=16.0, hop_ms=16.0, n_mels=20,
                          griffin_lim_iters=8))
  c.tts.model.update(dict(
      outputs_per_step=4, embed_dim=32, encoder_lstm=16, prenet=(32, 32),
      attention_rnn=48, decoder_rnn=48, attention_dim=16, location_filters=4,
      location_kernel=7, postnet_convs=2, postnet_channels=32, cbhg_bank=2,
      cbhg_channels=16, cbhg_projections=32, cbhg_highway=1, cbhg_gru=16,
      reference_filters=(8, 16), reference_gru=16, num_tokens=4,
      token_dim=16, token_heads=2))
  c.tts.warmup_steps = 2
  c.train.steps = steps
  c.train.batch_size = 8  # A multiple of conftest's 8 CPU devices.
  c.train.eval_batch_size = 4
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  return c


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
  root = tmp_path_factory.mktemp('tts')
  utts = make_corpus(str(root / 'lj'))
  write_labels(str(root / 'labels'), utts)
  return root


def _needs_hook():
  from jaxser import train
  if 'own_data' not in inspect.getsource(train):
    pytest.skip('jaxser.train has no own-data hook for TTS methods yet')


def _params(workdir):
  from jaxser import synthesize
  return synthesize.Synthesizer(workdir).variables


def test_train_resume_and_synthesize(corpus, tmp_path):
  _needs_hook()
  from jaxser import synthesize
  from jaxser import train
  import jax
  cfg = tiny_config(str(corpus / 'lj'), str(corpus / 'labels'),
                    str(corpus / 'cache'))
  full = str(tmp_path / 'full')
  result = train.train_and_evaluate(cfg, full)
  assert result['task'] == 'tts' and result['num_val'] == 4
  assert result['num_train'] == 12 and result['steps'] == 4
  for k in ('val/mel_l1', 'val/linear_l1', 'val/stop_bce',
            'val/emotion_ce'):
    assert np.isfinite(result[k]), k
  assert 'uar' not in result
  assert os.path.getsize(os.path.join(full, 'alignment.png')) > 0
  with open(os.path.join(full, 'metrics.jsonl')) as f:
    rows = [json.loads(l) for l in f]
  assert [r['step'] for r in rows if 'train/train/loss' in r] == [1, 2, 3, 4]

  # Interrupted after 2 steps (a checkpoint), resumed to 4: the same run.
  part = str(tmp_path / 'part')
  train.train_and_evaluate(tiny_config(str(corpus / 'lj'),
                                       str(corpus / 'labels'),
                                       str(corpus / 'cache'), steps=2), part)
  resumed = train.train_and_evaluate(cfg, part)
  assert resumed['val/loss'] == pytest.approx(result['val/loss'], rel=1e-5)
  a, b = _params(full), _params(part)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)

  # Synthesis: a non-silent wav of plausible length, one per sentence.
  flags = types.SimpleNamespace(
      workdir=full, text='a cat sat.', text_file=None, emotion='happy',
      arousal='', valence='', out=str(tmp_path / 'x.wav'), references='',
      reference_set='top', top_k=None, temperature=None,
      max_decoder_steps=None, stop_threshold=None,
      tsne=str(tmp_path / 'tsne.png'), seed=0)
  written = synthesize.run(flags)
  import soundfile as sf
  wave, sr = sf.read(flags.out)
  hop = 256  # 16 ms.
  assert sr == 16000 and 4 * hop <= len(wave) <= (30 * 4 + 1) * hop
  assert np.sqrt(np.mean(wave ** 2)) > 3e-4  # Not silence.
  assert os.path.getsize(flags.tsne) > 0 and flags.tsne in written
  text_file = tmp_path / 'sentences.txt'
  text_file.write_text('go home now!\n\nwe will see.\n')
  flags.text, flags.text_file, flags.tsne = None, str(text_file), ''
  flags.out = str(tmp_path / 'many')
  flags.reference_set = 'full'
  assert [os.path.basename(p) for p in synthesize.run(flags)] == [
      '0001.wav', '0002.wav']

  # One-line errors.
  flags.emotion = 'bored'
  with pytest.raises(ValueError, match=r"--emotion: 'bored' is not a class"):
    synthesize.run(flags)
  flags.emotion, flags.text, flags.text_file = 'sad', 'caf\u00e9 5', None
  with pytest.raises(ValueError, match='not in the vocabulary'):
    synthesize.run(flags)

