"""Emotional speech from a trained GST-Tacotron 2 run (Cai et al. 2021,
section 3.2.3): the style-token weights are the average over the emotion's
reference set, a waveform by Griffin-Lim.

  python -m jaxser.synthesize --workdir=DIR --text="..." --emotion=happy \
      --out=x.wav
  python -m jaxser.synthesize --workdir=DIR --text_file=sentences.txt \
      --arousal=high --valence=negative --out=OUT_DIR        # our-2d
  python -m jaxser.synthesize --workdir=DIR --tsne=weights.png   # Fig. 4

DIR is a `configs/gst_tacotron.py` run. The reference set of a class is the
top-K utterances of the label run (`top_<K>_<class>.csv`, K = --top_k, 50 in
the paper) in --references (default: the run's config.tts.labels; for our-2d
"AROUSAL_DIR,VALENCE_DIR", default config.tts.arousal_labels and
valence_labels), or with --reference_set=full every utterance the label run
predicts as that class (the paper's full-4cls). Their token weights come
from the run's reference encoder on the TTS corpus's spectrograms (the
corpus is read where the run read it). For our-2d the arousal half of the
tokens takes the average over the arousal class's set, the valence half the
valence class's.

--text synthesises one sentence to --out (a .wav); --text_file one sentence
per non-empty line, to --out/0001.wav, ... The decoder runs at most
--max_decoder_steps steps (config.tts.max_decoder_steps) and stops at the
first step whose stop-token probability exceeds --stop_threshold; the
attention softmax temperature is --temperature (2.0, the paper). --tsne
writes the t-SNE of the reference sets' token weights of every class as a
PNG. Errors (no run, a corpus without text, characters outside the
vocabulary, an emotion the run does not know, a missing reference set)
print one line and exit with status 2.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

# Before TensorFlow is imported: it loads openSMILE's native library first.
from jaxser.data import features  # noqa: F401  pylint: disable=unused-import
from jaxser import io as io_lib

import numpy as np

SOFT_LABELS = 'soft_labels.csv'


def top_k_file(label_dir: str, k: int, class_name: str) -> str:
  return os.path.join(label_dir, f'top_{k}_{class_name}.csv')


def reference_rows(label_dir: str, class_name: str, paths: list[str],
                   top_k: int = 50, full: bool = False) -> np.ndarray:
  """Rows of `paths` (the corpus's realpaths) in the reference set of
  `class_name`: the label run's top-K file, or (full) every utterance its
  soft_labels.csv predicts as the class. Errors name the file."""
  from jaxser.data.corpora import common  # pylint: disable=g-import-not-at-top
  path = (os.path.join(label_dir, SOFT_LABELS) if full
          else top_k_file(label_dir, top_k, class_name))
  if not os.path.isfile(path):
    raise ValueError(f'--references: no {path} (a python -m jaxser.label '
                     f'output folder; --top_k must be the K it was run with)')
  rows = common.read_table(path)
  if full:
    rows = [r for r in rows if r.get('predicted') == class_name]
  where = {p: i for i, p in enumerate(paths)}
  out = [where[os.path.realpath(r['path'])] for r in rows
         if r.get('path') and os.path.realpath(r['path']) in where]
  if not out:
    raise ValueError(f'--references: no utterance of {path} is a usable '
                     'utterance of the run\'s TTS corpus (joined by audio '
                     'path)')
  return np.array(out, np.int64)


def average_weights(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
  """The (heads, tokens) mean of the per-utterance token weights of a
  reference set: w = (1 / |R|) sum_{i in R} w_i."""
  return np.asarray(weights, np.float64)[np.asarray(rows)].mean(0).astype(
      np.float32)


class Synthesizer:
  """A restored GST-Tacotron run and its TTS corpus's token weights."""

  def __init__(self, workdir: str):
    import jax  # pylint: disable=g-import-not-at-top
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    from jaxser import label as label_lib  # pylint: disable=g-import-not-at-top
    from jaxser import train  # pylint: disable=g-import-not-at-top
    from jaxser.methods import gst_tacotron  # pylint: disable=g-import-not-at-top
    from jaxser.tts import data as tts_data  # pylint: disable=g-import-not-at-top
    config, ckpt = label_lib.load_run(workdir)
    if config.method != 'gst_tacotron':
      raise ValueError(f'--workdir {workdir}: a {config.method!r} run, not a '
                       'gst_tacotron one')
    self.config = config
    self.method = gst_tacotron.GSTTacotronMethod(config)
    self.data = tts_data.load(config, with_labels=False)
    arrays = {'train': self.data.arrays}
    example = self.method.example_batch(arrays, 1)
    phases = self.method.phases(arrays)
    abstract = jax.eval_shape(lambda: train.create_train_state(
        self.method, None, config.seed, example, phases))
    self.step = int(ckpt.latest_step())
    state = ckpt.restore(self.step, args=ocp.args.StandardRestore(abstract))
    self.variables = {'params': state.params['tts'],
                      'batch_stats': state.batch_stats['tts']}
    self._weights = None

  @property
  def variant(self) -> str:
    return self.config.tts.variant

  def corpus_weights(self, batch_size: int = 16) -> np.ndarray:
    """(n, heads, tokens) token weights of every usable utterance."""
    if self._weights is None:
      import jax  # pylint: disable=g-import-not-at-top
      model = self.method.model
      fn = jax.jit(lambda v, m, f: model.apply(
          v, m.astype(np.float32), f, method='token_weights'))
      a = self.data.arrays
      n = len(a['frames'])
      bs = min(batch_size, n)
      out = []
      for s in range(0, n, bs):
        idx = np.arange(s, s + bs) % n  # A full last batch: one shape.
        out.append(np.asarray(fn(self.variables, a['mel'][idx],
                                 a['frames'][idx]))[:min(bs, n - s)])
      self._weights = np.concatenate(out)
    return self._weights

  def style_weights(self, classes: dict[str, str], references: list[str],
                    top_k: int, full: bool) -> np.ndarray:
    """(heads, tokens) weights for the requested class of each kind
    ({'emotion': 'happy'} or {'arousal': 'high', 'valence': 'low'})."""
    from jaxser.tts import tacotron  # pylint: disable=g-import-not-at-top
    w = self.corpus_weights()
    means = {}
    for (kind, name), ref in zip(classes.items(), references):
      means[kind] = average_weights(
          w, reference_rows(ref, name, self.data.paths, top_k, full))
    if self.variant == 'our-2d':
      return np.asarray(tacotron.combine_halves(means['arousal'],
                                                means['valence']))
    return means['emotion']

  def synthesize(self, texts: list[str], weights: np.ndarray, steps: int,
                 temperature: float, threshold: float, seed: int = 0):
    """[(waveform, mel frames, stopped)] per text, and the alignments."""
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from jaxser.tts import audio as audio_lib  # pylint: disable=g-import-not-at-top
    from jaxser.tts import tacotron  # pylint: disable=g-import-not-at-top
    from jaxser.tts import text as text_lib  # pylint: disable=g-import-not-at-top
    ids = [text_lib.encode(t, f'--text {t!r}') for t in texts]
    n = max(len(i) for i in ids)
    batch = np.zeros((len(ids), n), np.int32)
    for k, i in enumerate(ids):
      batch[k, :len(i)] = i
    lengths = np.array([len(i) for i in ids], np.int32)
    w = np.broadcast_to(weights, (len(ids),) + weights.shape)
    out = jax.jit(lambda v, x, l, w: self.method.model.apply(
        v, x, l, w, steps, temperature, method='synthesize',
        rngs={'dropout': jax.random.PRNGKey(seed)}))(
            self.variables, batch, lengths, jnp.asarray(w))
    r = self.method.model_cfg.outputs_per_step
    frames = tacotron.stop_length(np.asarray(out['stop']), threshold, r)
    linear = np.asarray(out['linear'])
    results = []
    for k, f in enumerate(frames):
      wave = audio_lib.griffin_lim(linear[k, :f], self.method.audio,
                                   seed=seed)
      results.append((wave, int(f), int(f) < steps * r))
    return results, np.asarray(out['alignment'])


def write_wav(path: str, wave: np.ndarray) -> None:
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  from jaxser.data.corpus import SAMPLE_RATE  # pylint: disable=g-import-not-at-top
  with io_lib.atomic_open(path, 'wb') as f:
    sf.write(f, wave, SAMPLE_RATE, format='WAV', subtype='PCM_16')


def save_tsne(weights: np.ndarray, sets: dict[str, np.ndarray], path: str,
              seed: int = 0) -> None:
  """Fig. 4: t-SNE of the token weights (flattened) of each reference set."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
  names = list(sets)
  x = np.concatenate([weights[sets[k]].reshape(len(sets[k]), -1)
                      for k in names])
  y = np.concatenate([np.full(len(sets[k]), i) for i, k in enumerate(names)])
  if len(x) < 3:
    raise ValueError('--tsne: the reference sets hold fewer than 3 '
                     'utterances')
  z = TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), init='pca',
           random_state=seed).fit_transform(x)
  fig, ax = plt.subplots(figsize=(5, 5))
  for i, k in enumerate(names):
    ax.scatter(z[y == i, 0], z[y == i, 1], s=12, label=k)
  ax.legend()
  ax.set_title('t-SNE of the style-token weights of the reference sets')
  fig.tight_layout()
  io_lib.save_figure(fig, path, dpi=100)
  plt.close(fig)


def _classes_and_references(f, synth) -> tuple[dict, list[str]]:
  """The requested class per label kind and the label folders to use."""
  from jaxser.tts import data as tts_data  # pylint: disable=g-import-not-at-top
  tts = synth.config.tts
  kinds = tts_data.label_kinds(synth.variant)
  refs = f.references.split(',') if f.references else [
      tts.get(field, '') for field, _ in kinds.values()]
  if len(refs) != len(kinds) or not all(refs):
    raise ValueError(
        f'--references: this {synth.variant} run needs '
        f'{" and ".join(k + " labels" for k in kinds)} '
        f'({"AROUSAL_DIR,VALENCE_DIR" if len(kinds) == 2 else "LABEL_DIR"})')
  if synth.variant == 'our-2d':
    if f.emotion:
      raise ValueError('--emotion: an our-2d run is controlled by --arousal '
                       'and --valence')
    asked = {'arousal': f.arousal, 'valence': f.valence}
  else:
    if f.arousal or f.valence:
      raise ValueError(f'--arousal/--valence: a {synth.variant} run is '
                       'controlled by --emotion')
    asked = {'emotion': f.emotion}
  for kind, name in asked.items():
    known = kinds[kind][1]
    if name not in known:
      raise ValueError(f'--{kind}: {name!r} is not a class of this run; '
                       f'known: {", ".join(known)}')
  return asked, refs


def _define_flags():
  flags.DEFINE_string('workdir', None, 'A gst_tacotron training run.')
  flags.DEFINE_string('text', None, 'The sentence to speak.')
  flags.DEFINE_string('text_file', None, 'Sentences, one per line.')
  flags.DEFINE_string('emotion', '', 'neutral | happy | sad | angry.')
  flags.DEFINE_string('arousal', '', 'low | high (our-2d).')
  flags.DEFINE_string('valence', '', 'negative | positive (our-2d).')
  flags.DEFINE_string('out', None, '.wav for --text, a folder for '
                      '--text_file.')
  flags.DEFINE_string('references', '', 'jaxser.label output folder(s).')
  flags.DEFINE_enum('reference_set', 'top', ['top', 'full'],
                    'top: the top-K file; full: every predicted utterance.')
  flags.DEFINE_integer('top_k', None, 'K (default config.tts.top_k).')
  flags.DEFINE_float('temperature', None, 'Attention softmax temperature '
                     '(default config.tts.temperature).')
  flags.DEFINE_integer('max_decoder_steps', None, 'Default: config.')
  flags.DEFINE_float('stop_threshold', None, 'Default: config.')
  flags.DEFINE_string('tsne', '', 'Also write the t-SNE PNG of the '
                      'reference sets\' token weights here.')
  flags.DEFINE_integer('seed', 0, 'Pre-net dropout and Griffin-Lim seed.')
  flags.mark_flag_as_required('workdir')


def run(f) -> list[str]:
  """Does what the flags ask; returns the files written."""
  from jaxser.tts import data as tts_data  # pylint: disable=g-import-not-at-top
  if f.text is not None and f.text_file is not None:
    raise ValueError('--text / --text_file: give one of them')
  texts = []
  if f.text is not None:
    texts = [f.text]
  elif f.text_file is not None:
    if not os.path.isfile(f.text_file):
      raise ValueError(f'--text_file: no file {f.text_file}')
    with open(f.text_file, encoding='utf-8') as fh:
      texts = [l.strip() for l in fh if l.strip()]
    if not texts:
      raise ValueError(f'--text_file: {f.text_file} holds no sentence')
  if not texts and not f.tsne:
    raise ValueError('--text, --text_file or --tsne: nothing to do')
  if texts and not f.out:
    raise ValueError('--out: where to write the speech')
  if texts:  # Before the run is restored: bad text fails fast.
    from jaxser.tts import text as text_lib  # pylint: disable=g-import-not-at-top
    for t in texts:
      text_lib.encode(t, f'--text {t!r}')
  synth = Synthesizer(f.workdir)
  tts = synth.config.tts
  top_k = f.top_k or tts.top_k
  full = f.reference_set == 'full'
  written = []
  if texts:
    asked, refs = _classes_and_references(f, synth)
    weights = synth.style_weights(asked, refs, top_k, full)
    results, _ = synth.synthesize(
        texts, weights, f.max_decoder_steps or tts.max_decoder_steps,
        f.temperature if f.temperature is not None else tts.temperature,
        f.stop_threshold if f.stop_threshold is not None
        else tts.stop_threshold, f.seed)
    if f.text is not None:
      paths = [f.out]
    else:
      os.makedirs(f.out, exist_ok=True)
      paths = [os.path.join(f.out, f'{i + 1:04d}.wav')
               for i in range(len(texts))]
    for path, (wave, _, stopped) in zip(paths, results):
      write_wav(path, wave)
      written.append(path)
      if not stopped:
        print(f'note: {path}: no stop token within the maximum decoder '
              'length; cut there', file=sys.stderr)
  if f.tsne:
    kinds = tts_data.label_kinds(synth.variant)
    refs = (f.references.split(',') if f.references else
            [tts.get(field, '') for field, _ in kinds.values()])
    sets = {}
    for (kind, (_, classes)), ref in zip(kinds.items(), refs):
      for c in classes:
        sets[c if kind == 'emotion' else f'{kind} {c}'] = reference_rows(
            ref, c, synth.data.paths, top_k, full)
    save_tsne(synth.corpus_weights(), sets, f.tsne, f.seed)
    written.append(f.tsne)
  return written


def main(argv):
  del argv
  try:
    for path in run(flags.FLAGS):
      print(path)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
