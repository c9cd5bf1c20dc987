"""CAEmoCyGAN's analyses of its generated samples: the attention weights
(Table 7, Fig. 3) and a t-SNE picture of sources, target and fakes (Fig. 2).

`analyse` writes DIR/attention.csv (one row per generated sample: its
reference target utterance, the weight of each source, its soft label and,
where the evaluation set holds it, the reference's true class, used for this
analysis only) and returns the results.json block 'attention': the mean
weight of each source and the share of samples whose weight on a source is
above 0.5, overall and per class of the reference target sample. With
`config.gan.plot_embedding` it also draws DIR/embedding_<method>.png.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from jaxser import io as io_lib
from jaxser.data import pipeline


def attention_summary(alpha: np.ndarray, ref_labels: np.ndarray,
                      sources, classes) -> dict:
  """Mean weight and share above 0.5 per source, overall and per class.

  Args:
    alpha: (N, C) attention weights of the generated samples.
    ref_labels: (N,) class of each sample's reference target (-1: unknown).
    sources: the C source names.
    classes: the class names.
  """
  def block(rows):
    a = alpha[rows]
    return {'count': int(len(a)),
            'mean_weight': {s: float(a[:, i].mean()) if len(a) else None
                            for i, s in enumerate(sources)},
            'above_half': {s: float((a[:, i] > 0.5).mean()) if len(a)
                           else None for i, s in enumerate(sources)}}
  out = {'sources': list(sources), 'overall': block(np.arange(len(alpha)))}
  out['per_target_class'] = {
      c: block(np.flatnonzero(ref_labels == k))
      for k, c in enumerate(classes) if (ref_labels == k).any()}
  return out


def analyse(method, arrays, data, workdir: str) -> dict:
  gen = arrays['generated']
  sources = pipeline.source_names(method.config.data)
  classes = list(data.classes)
  ev = arrays['target_eval']
  label_of = dict(zip(ev['index'].tolist(), ev['label'].tolist()))
  ref = gen['reference']
  ref_labels = np.array([label_of.get(int(i), -1) for i in ref], np.int32)
  utts = data.target_train.parts[0].cached.corpus.utterances
  path = os.path.join(workdir, 'attention.csv')
  with io_lib.atomic_open(path, newline='') as f:
    w = csv.writer(f)
    w.writerow(['sample', 'reference'] + [f'weight_{s}' for s in sources]
               + [f'soft_{c}' for c in classes] + ['reference_class'])
    for n in range(len(ref)):
      w.writerow([n, utts[int(ref[n])].utt_id]
                 + [f'{x:.6f}' for x in gen['attention'][n]]
                 + [f'{x:.6f}' for x in gen['soft_label'][n]]
                 + [classes[ref_labels[n]] if ref_labels[n] >= 0 else ''])
  out = {'attention': attention_summary(gen['attention'], ref_labels,
                                        sources, classes)}
  if method.hparams.plot_embedding:
    out['embedding_plot'] = plot_embedding(
        arrays, method.num_sources, sources, classes,
        os.path.join(workdir, f'embedding_{method.name}.png'),
        seed=int(method.config.seed))
  return out


def plot_embedding(arrays, num_sources: int, sources, classes, path: str,
                   seed: int = 0, per_set: int = 400) -> str:
  """t-SNE of up to `per_set` samples of each source, the target and the
  fakes; colour = class (the target's true class, for the picture only),
  marker = set. Returns `path`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  sets = [(sources[i], arrays[f'source{i}']) for i in range(num_sources)]
  sets += [('target', arrays['target_eval']), ('generated',
                                               arrays['generated'])]
  xs, ys, which = [], [], []
  for k, (_, a) in enumerate(sets):
    idx = rng.permutation(len(a['features']))[:per_set]
    xs.append(a['features'][idx])
    ys.append(a['label'][idx])
    which.append(np.full(len(idx), k))
  x, y, which = np.concatenate(xs), np.concatenate(ys), np.concatenate(which)
  z = TSNE(2, init='pca', random_state=seed,
           perplexity=min(30.0, max(5.0, len(x) / 10))).fit_transform(
               x.astype(np.float64))
  markers = ['^', 'v', '<', '>', 'o', '*']
  colours = plt.get_cmap('tab10')
  fig, ax = plt.subplots(figsize=(8, 7))
  for k, (name, _) in enumerate(sets):
    for c, cname in enumerate(classes):
      rows = (which == k) & (y == c)
      if rows.any():
        ax.scatter(z[rows, 0], z[rows, 1], s=10, alpha=0.6,
                   marker='o' if name == 'target' else
                   ('*' if name == 'generated' else markers[k % 4]),
                   color=colours(c), label=f'{name} / {cname}')
  ax.set_title('t-SNE of sources, target and generated samples')
  ax.set_xlabel('t-SNE 1')
  ax.set_ylabel('t-SNE 2')
  ax.legend(fontsize=7, markerscale=1.5, ncol=2, loc='best')
  fig.tight_layout()
  io_lib.save_figure(fig, path, dpi=120)
  plt.close(fig)
  return path
