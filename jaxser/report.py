"""Figures and markdown reports of a run and of a grid (matplotlib, headless).

A finished `jaxser.main` run gets (`write_run`):

  DIR/plots/confusion.png  counts and row-normalised recall, class names.
  DIR/plots/curves.png     each logged training term and the target UAR
                           against step (DIR/metrics.jsonl), a panel per
                           phase (and per at most `MAX_TERMS` terms).
  DIR/plots/embedding.png  the utterance embeddings of source and target in
                           2-D (UMAP, or t-SNE), coloured by class and marked
                           by corpus, and coloured by corpus (Emo-DNA Figs.
                           2-3, CAEmoCyGAN Fig. 2); only with `embeddings`
                           (`corpus_sets` + `run_embeddings`).
  DIR/report.md            the experiment, data counts, metrics, per-class
                           recall, validation/phases, the figures.

A grid (`write_grid`, after `jaxser.grid.write_tables`):

  DIR/plots/<task>_uar.png      methods x pairs heatmap of UAR (mean over
                                seeds, annotated; Average column).
  DIR/plots/<task>_sources.png  per-source bars (averaged over the source's
                                targets) with the spread over seeds.
  DIR/pairs.md                  the per-pair UAR table (`pair_table`).
  DIR/report.md                 the figures beside the tables.

Redrawing a finished run's figures and report (e.g. a run from before they
existed), its model embedding its source and target evaluation sets:

  python -m jaxser.report --workdir=DIR [--embedding=umap|tsne|pca|none] \
      [--max_points=2000]

Figures are drawn on `matplotlib.figure.Figure` objects (no pyplot, so no
GUI backend and no global figure state: the Agg canvas renders them) and
written through `jaxser.io.save_figure`. This module imports neither JAX
nor TensorFlow at the top, so reports can be redrawn from a workdir alone.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Sequence

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import figure as mfigure
from matplotlib import lines as mlines
from matplotlib import patches as mpatches

from jaxser import io as io_lib
from jaxser import metrics as metrics_lib

PLOTS = 'plots'
CONFUSION = 'confusion.png'
CURVES = 'curves.png'
EMBEDDING = 'embedding.png'
REPORT = 'report.md'
PAIRS = 'pairs.md'
DPI = 110
MAX_TERMS = 6  # Lines per curves panel; more terms get more panels.
MAX_POINTS = 2000  # Embedded utterances per corpus (UMAP/t-SNE time).
PROJECTIONS = ('umap', 'tsne', 'pca')
# Markers of the corpora in embedding plots (7 corpora and more, cycled).
MARKERS = ('o', '^', 's', 'D', 'v', 'P', 'X', '*', 'h', '<', '>')


def _warn(message: str) -> None:
  print(f'report: {message}', file=sys.stderr, flush=True)


def _save(fig: mfigure.Figure, path: str) -> str:
  io_lib.save_figure(fig, path, dpi=DPI)
  return path


# --- run figures -------------------------------------------------------------


def _annotate(ax, values: np.ndarray, texts, norm_values: np.ndarray,
              fontsize: float) -> None:
  """Writes texts[i][j] in each cell, white on dark cells."""
  for i in range(values.shape[0]):
    for j in range(values.shape[1]):
      if not texts[i][j]:
        continue
      dark = np.isfinite(norm_values[i, j]) and norm_values[i, j] > 0.55
      ax.text(j, i, texts[i][j], ha='center', va='center', fontsize=fontsize,
              color='white' if dark else 'black')


def _class_ticks(ax, classes: Sequence[str]) -> None:
  k = len(classes)
  ax.set_xticks(range(k))
  ax.set_yticks(range(k))
  long = k > 4 or max(len(c) for c in classes) > 7
  ax.set_xticklabels(classes, rotation=45 if long else 0,
                     ha='right' if long else 'center',
                     rotation_mode='anchor')
  ax.set_yticklabels(classes)
  ax.set_xlabel('predicted class')
  ax.set_ylabel('true class')


def confusion_figure(confusion, classes: Sequence[str],
                     title: str = '') -> mfigure.Figure:
  """Counts (left) and row-normalised recall in % (right) of a confusion
  matrix (rows: true class, columns: predicted)."""
  c = np.asarray(confusion, np.float64)
  k = len(classes)
  support = c.sum(axis=1, keepdims=True)
  with np.errstate(invalid='ignore', divide='ignore'):
    recall = np.where(support > 0, c / support, np.nan)
  side = max(3.2, 0.55 * k + 1.6)
  fig = mfigure.Figure(figsize=(2 * side + 1.4, side + 0.9),
                       layout='constrained')
  axes = fig.subplots(1, 2)
  fontsize = 10 if k <= 6 else max(6, 12 - 0.5 * k)
  peak = max(c.max(), 1.0)
  im = axes[0].imshow(c, cmap='Blues', vmin=0, vmax=peak)
  _annotate(axes[0], c, [[f'{int(v)}' for v in row] for row in c],
            c / peak, fontsize)
  axes[0].set_title('counts')
  fig.colorbar(im, ax=axes[0], shrink=0.8, label='utterances')
  im = axes[1].imshow(100 * recall, cmap='Blues', vmin=0, vmax=100)
  _annotate(axes[1], recall,
            [['' if np.isnan(v) else f'{100 * v:.0f}' for v in row]
             for row in recall], recall, fontsize)
  axes[1].set_title('recall per true class (%)')
  fig.colorbar(im, ax=axes[1], shrink=0.8, label='% of the true class')
  for ax in axes:
    _class_ticks(ax, classes)
  if title:
    fig.suptitle(title)
  return fig


def read_metrics(path: str) -> list[dict]:
  """The rows of a metrics.jsonl (bad lines, e.g. a torn last line, are
  skipped); [] when the file does not exist."""
  if not io_lib.exists(path):
    return []
  rows = []
  for line in io_lib.read_text(path).splitlines():
    try:
      row = json.loads(line)
    except ValueError:
      continue
    if isinstance(row, dict) and 'step' in row:
      rows.append(row)
  return rows


def _series(rows: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  points = sorted({int(r['step']): float(r[key]) for r in rows
                   if key in r and r[key] is not None}.items())
  if not points:
    return np.zeros(0), np.zeros(0)
  steps, values = zip(*points)
  return np.asarray(steps), np.asarray(values)


def _is_score(term: str) -> bool:
  """Terms in [0, 1] that read as 'higher is better' (accuracies, UAR...),
  drawn beside the target UAR rather than among the losses."""
  name = term.rsplit('/', 1)[-1]
  return any(s in name for s in ('acc', 'uar', 'war', 'f1'))


def curve_groups(rows: Sequence[dict]) -> tuple[dict, list[str]]:
  """Logged quantities of metrics.jsonl rows, by panel.

  'train/<term>' belongs to phase 'train', 'train/<phase>/<term>' to
  <phase>; within a phase, loss terms (names with 'loss') and the other
  quantities (gradient norms, thresholds, weights...) go to separate
  panels, '<phase>' and '<phase>:other'. Scores in [0, 1] (train accuracies,
  'eval/*uar', 'select/*') go to one list; throughput
  ('...samples_per_s') is left out. Returns ({panel: [keys]}, [score
  keys]), each in order of first appearance.
  """
  groups: dict[str, list[str]] = {}
  scores: list[str] = []
  for row in rows:
    for key in row:
      if key == 'step' or key.endswith('samples_per_s'):
        continue
      if key.startswith('train/'):
        rest = key[len('train/'):]
        if _is_score(rest):
          target = scores
        else:
          phase = rest.split('/', 1)[0] if '/' in rest else 'train'
          name = rest.rsplit('/', 1)[-1]
          panel = phase if 'loss' in name else f'{phase}:other'
          target = groups.setdefault(panel, [])
      elif key.startswith('eval/') and key.endswith('uar'):
        target = scores
      elif key.startswith('select/') and not key.endswith('lr_scale'):
        target = scores
      else:
        continue
      if key not in target:
        target.append(key)
  # Phases in order of appearance, each's losses before its other panel.
  phases = list(dict.fromkeys(g.split(':')[0] for g in groups))
  return {g: groups[g] for p in phases for g in (p, f'{p}:other')
          if g in groups}, scores


LOG_DECADES = 5  # A log axis shows this many decades below the largest.


def _log_floor(values: list[np.ndarray]) -> float | None:
  """The bottom of a log y axis where positive terms span over two decades
  (so small terms are not flattened against a linear axis), at most
  LOG_DECADES below the largest value: a term that is ~0 (e.g. 1e-27) then
  lies under the axis instead of squeezing every other term into its top
  (the legend gives each term's last value). None: a linear axis (also
  whenever a term is <= 0)."""
  v = np.concatenate([x[np.isfinite(x)] for x in values] or [np.zeros(0)])
  if not v.size or (v <= 0).any() or v.max() / v.min() < 100:
    return None
  return max(float(v.min()), float(v.max()) * 10.0 ** -LOG_DECADES) / 2


def _label(key: str, phase: str | None) -> str:
  rest = key.split('/', 1)[1]
  if phase and phase != 'train' and rest.startswith(phase + '/'):
    rest = rest[len(phase) + 1:]
  if key.startswith('eval/'):
    return f'target {rest.upper()} (monitoring)'
  if key.startswith('select/'):
    return f'selection {rest}'
  return rest


def curves_figure(rows: Sequence[dict],
                  title: str = '') -> mfigure.Figure | None:
  """Each training term against step, a panel per phase (split every
  MAX_TERMS terms), then a panel of scores: train accuracies, the target
  UAR and selection metrics. None when `rows` hold nothing to draw."""
  groups, scores = curve_groups(rows)
  panels = []  # (title, phase, keys)
  for group, keys in groups.items():
    phase, _, other = group.partition(':')
    chunks = [keys[i:i + MAX_TERMS] for i in range(0, len(keys), MAX_TERMS)]
    for n, chunk in enumerate(chunks, 1):
      suffix = f' ({n}/{len(chunks)})' if len(chunks) > 1 else ''
      name = ('training' if phase == 'train' else f'phase {phase}') + (
          ': other logged quantities' if other else ': losses')
      panels.append((name + suffix, phase, chunk))
  if scores:
    panels.append(('accuracies and target UAR', None, scores))
  if not panels:
    return None
  fig = mfigure.Figure(figsize=(10, 0.6 + 2.6 * len(panels)),
                       layout='constrained')
  axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False)[:, 0])
  for ax, (name, phase, keys) in zip(axes, panels):
    series = {key: _series(rows, key) for key in keys}
    series = {k: v for k, v in series.items() if len(v[0])}
    floor = (_log_floor([v for _, v in series.values()])
             if phase is not None else None)
    for key, (steps, values) in series.items():
      marker = 'o' if len(steps) <= 12 or not key.startswith('train/') else None
      label = f'{_label(key, phase)} (last {values[-1]:.3g})'
      if floor is not None and values.max() < floor:
        label += ', below the axis'
      ax.plot(steps, values, marker=marker, markersize=3, linewidth=1.4,
              label=label)
    if floor is not None:
      ax.set_yscale('log')
      top = max(float(v.max()) for _, v in series.values())
      ax.set_ylim(floor, top * 2)
    elif phase is None:
      ax.set_ylim(-0.02, 1.02)
    ax.set_title(name, loc='left', fontsize=10)
    ax.set_xlabel('step')
    ax.set_ylabel('value' if phase is not None else 'fraction')
    ax.grid(alpha=0.3)
    if series:
      ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8,
                frameon=False)
  if title:
    fig.suptitle(title)
  return fig


def subsample(n: int, max_points: int, seed: int = 0) -> np.ndarray:
  """Sorted indices of at most `max_points` of `n` rows, drawn without
  replacement by `seed` (all rows when n <= max_points)."""
  if max_points <= 0 or n <= max_points:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).choice(n, max_points,
                                                     replace=False))


def project(x: np.ndarray, how: str = 'umap', seed: int = 0) -> np.ndarray:
  """(N, d) embeddings -> (N, 2), standardised first: UMAP (umap-learn),
  t-SNE (scikit-learn) or PCA (the two leading principal components: linear,
  instant, for quick looks); UMAP falls back to t-SNE, with a warning, where
  umap-learn is not importable."""
  if how not in PROJECTIONS:
    raise ValueError(f'report projection: unknown {how!r}; known: '
                     f'{", ".join(PROJECTIONS)}')
  x = np.asarray(x, np.float64)
  x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
  n = len(x)
  if how == 'pca' or n < 5:  # Too few points for neighbourhoods.
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
  if how == 'umap':
    try:
      import umap  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      _warn(f'umap-learn is not importable ({e}); embedding by t-SNE')
      how = 'tsne'
    else:
      # random_state makes it deterministic (and single-threaded).
      return np.asarray(umap.UMAP(n_neighbors=min(15, n - 1),
                                  random_state=seed,
                                  n_jobs=1).fit_transform(x))
  from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
  return TSNE(2, perplexity=min(30.0, (n - 1) / 3), init='pca',
              random_state=seed).fit_transform(x)


def embedding_figure(points: dict[str, tuple[np.ndarray, np.ndarray]],
                     classes: Sequence[str], title: str = '',
                     projection: str = '') -> mfigure.Figure:
  """Two panels over the same 2-D points: coloured by class and marked by
  corpus (left), coloured by corpus (right).

  Args:
    points: corpus label (e.g. 'casia (source)') -> ((n, 2) points, (n,)
      class indices; -1 unlabelled, drawn grey).
    classes: class names.
  """
  # Labels past the names given (e.g. a report without class names).
  top = max([int(np.max(l, initial=-1)) for _, l in points.values()] + [-1])
  classes = list(classes) + [f'class {i}' for i in range(len(classes),
                                                         top + 1)]
  fig = mfigure.Figure(figsize=(13, 6), layout='constrained')
  by_class, by_corpus = fig.subplots(1, 2, sharex=True, sharey=True)
  class_colours = _palette(len(classes))
  # Another palette than the classes', so the panels are not misread.
  corpus_colours = _palette(len(points), dark=True)
  total = sum(len(p) for p, _ in points.values())
  size = 14 if total < 1500 else 8
  for k, (name, (xy, labels)) in enumerate(points.items()):
    marker = MARKERS[k % len(MARKERS)]
    labels = np.asarray(labels)
    colours = [class_colours[l] if l >= 0 else (0.6, 0.6, 0.6, 1.0)
               for l in labels]
    by_class.scatter(xy[:, 0], xy[:, 1], c=colours, marker=marker, s=size,
                     alpha=0.7, linewidths=0)
    by_corpus.scatter(xy[:, 0], xy[:, 1], color=corpus_colours[k],
                      marker=marker, s=size, alpha=0.6, linewidths=0,
                      label=name)
  class_handles = [mpatches.Patch(color=class_colours[i], label=c)
                   for i, c in enumerate(classes)]
  corpus_handles = [mlines.Line2D([], [], color='0.3', marker=MARKERS[
      k % len(MARKERS)], linestyle='', label=name)
                    for k, name in enumerate(points)]
  first = by_class.legend(handles=class_handles, title='class', fontsize=8,
                          loc='upper left', bbox_to_anchor=(0.0, -0.08),
                          ncol=min(len(classes), 4), frameon=False)
  by_class.add_artist(first)
  by_class.legend(handles=corpus_handles, title='corpus (marker)',
                  fontsize=8, loc='upper right', bbox_to_anchor=(1.0, -0.08),
                  ncol=1 if len(points) <= 4 else 2, frameon=False)
  by_corpus.legend(title='corpus', fontsize=8, loc='upper left',
                   bbox_to_anchor=(0.0, -0.08),
                   ncol=1 if len(points) <= 4 else 2, frameon=False,
                   markerscale=2)
  axis = {'umap': 'UMAP', 'tsne': 't-SNE', 'pca': 'PC'}.get(projection,
                                                           'dimension')
  by_class.set_title('by class (colour) and corpus (marker)')
  by_corpus.set_title('by corpus')
  for ax in (by_class, by_corpus):
    ax.set_xlabel(f'{axis} 1')
    ax.set_ylabel(f'{axis} 2')
    ax.grid(alpha=0.2)
  if title:
    fig.suptitle(title)
  return fig


def _palette(n: int, dark: bool = False) -> list:
  """n distinct colours: tab10 (or Dark2 with `dark`), tab20 past 10."""
  names = _DARK2 if dark else _TAB10
  if n > len(names):
    names = _TAB20
  return [mcolors.to_rgba(names[i % len(names)]) for i in range(n)]


# By value, so the palettes do not depend on pyplot's colormap registry.
_TAB10 = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
          '#e377c2', '#bcbd22', '#17becf', '#7f7f7f')
_DARK2 = ('#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02',
          '#a6761d', '#666666')
_TAB20 = ('#1f77b4', '#aec7e8', '#ff7f0e', '#ffbb78', '#2ca02c', '#98df8a',
          '#d62728', '#ff9896', '#9467bd', '#c5b0d5', '#8c564b', '#c49c94',
          '#e377c2', '#f7b6d2', '#7f7f7f', '#c7c7c7', '#bcbd22', '#dbdb8d',
          '#17becf', '#9edae5')


# --- embeddings of a trained model -------------------------------------------


def _is_emotion_model_call(module, method_name: str) -> bool:
  from jaxser.models import classifier  # pylint: disable=g-import-not-at-top
  return (isinstance(module, classifier.EmotionModel)
          and method_name == '__call__')


def embedding_fn(method):
  """(variables, features, lengths) -> (B, d) utterance embeddings of
  `method`'s emotion model in inference mode, or None where the method's
  model holds no `EmotionModel` (e.g. cycle-GAN's own nets).

  The model's `classify` is run with Flax's `capture_intermediates` on the
  EmotionModel's call, whose output dict holds 'embedding': this needs no
  method to declare anything, and works through every wrapper (Emo-DNA,
  DANN, SCL, DIFL) that classifies through its emotion model.
  """
  import jax  # pylint: disable=g-import-not-at-top
  model = getattr(method, 'model', None)
  if model is None or not hasattr(model, 'classify'):
    return None

  def is_output(x):
    return isinstance(x, dict) and 'embedding' in x

  def embed(variables, features, lengths):
    _, state = model.apply(variables, features, lengths, method='classify',
                           capture_intermediates=_is_emotion_model_call,
                           mutable=['intermediates'])
    found = [x for x in jax.tree_util.tree_leaves(
        state.get('intermediates', {}), is_leaf=is_output) if is_output(x)]
    if not found:
      raise ValueError(f'{method.name}: its classify does not call an '
                       'EmotionModel; no embedding to draw')
    return found[0]['embedding']
  return embed


def run_embeddings(method, variables: dict,
                   sets: dict[str, dict[str, np.ndarray]], batch_size: int,
                   mesh=None, max_points: int = MAX_POINTS,
                   seed: int = 0) -> dict[str, dict[str, np.ndarray]] | None:
  """Utterance embeddings of at most `max_points` rows of each array set.

  Args:
    method: the trained run's method (`jaxser.methods`).
    variables: {'params': ..., 'batch_stats': ...} of the trained state.
    sets: corpus label -> array set ('features', 'length', 'label';
      `corpus_sets`).
    batch_size: rows per prediction batch (config.train.eval_batch_size).
    mesh: the prediction mesh (default `jaxser.train.make_mesh()`).

  Returns:
    corpus label -> {'embedding': (n, d), 'label': (n,)}, or None where the
    method has no emotion model to embed with.
  """
  from jaxser import train  # pylint: disable=g-import-not-at-top
  fn = embedding_fn(method)
  if fn is None:
    return None
  mesh = mesh if mesh is not None else train.make_mesh()
  out = {}
  for k, (name, arrays) in enumerate(sets.items()):
    rows = subsample(len(arrays['features']), max_points, seed + k)
    part = {'features': arrays['features'][rows],
            'length': arrays['length'][rows]}
    out[name] = {
        'embedding': train.predict_logits(
            method, variables, train.array_chunks(part, batch_size),
            batch_size, mesh, fn=fn),
        'label': np.asarray(arrays.get('label', np.full(len(rows), -1)))[rows]}
  return out


def sample_split(split, max_points: int, seed: int = 0):
  """`split` (a `pipeline.Split`) with at most `max_points` utterances of
  each of its corpora (`subsample`, by `seed` and the corpus's place)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  parts = []
  for k, part in enumerate(split.parts):
    rows = subsample(len(part.indices), max_points, seed + k)
    parts.append(dataclasses.replace(
        part, indices=np.asarray(part.indices)[rows],
        labels=np.asarray(part.labels)[rows]))
  return dataclasses.replace(split, parts=parts)


def corpus_sets(data, source: dict | None = None,
                target_eval: dict | None = None
                ) -> dict[str, dict[str, np.ndarray]]:
  """A run's source training set and target evaluation set, split by corpus
  (their 'domain' ids): label 'NAME (source)' / 'NAME (target)' -> array
  set. `data` is the run's `pipeline.Data`; `source` and `target_eval` its
  array sets (e.g. of `load_corpus_sets`), either None to leave it out."""
  out = {}
  for role, split, sets in (('source', data.source_train, source),
                            ('target', data.target_eval, target_eval)):
    if sets is None:
      continue
    for part in split.parts:
      rows = sets['domain'] == part.domain
      if rows.any():
        out[f'{part.cached.corpus.name} ({role})'] = {
            k: v[rows] for k, v in sets.items()}
  return out


def load_corpus_sets(data, max_points: int = MAX_POINTS, seed: int = 0
                     ) -> dict[str, dict[str, np.ndarray]]:
  """`corpus_sets` of at most `max_points` utterances per corpus of the
  run's source training and target evaluation sets, read from the feature
  cache (only the sampled utterances are loaded, whether the run held its
  data on the device or streamed it)."""
  return corpus_sets(data, sample_split(data.source_train, max_points,
                                        seed).load(),
                     sample_split(data.target_eval, max_points, seed).load())


# --- the run report ----------------------------------------------------------


def _pct(x) -> str:
  return '-' if x is None else f'{100 * float(x):.1f}'


def _read_json(path: str) -> dict | list | None:
  if not io_lib.exists(path):
    return None
  try:
    return json.loads(io_lib.read_text(path))
  except (OSError, ValueError):
    return None


def _network(config: dict | None) -> str:
  if not config:
    return '-'
  model = config.get('model', {})
  return model.get('name', '-') if isinstance(model, dict) else str(model)


def run_markdown(result: dict, config: dict | None,
                 figures: Sequence[str]) -> str:
  """DIR/report.md of a run: its results.json (`result`), config.json
  (`config`, may be None) and the figures that exist (paths relative to
  DIR)."""
  r = result
  title = (f'{r.get("method", "?")}: {r.get("source", "?")} → '
           f'{r.get("target", "?")} ({r.get("task", "?")})')
  out = [f'# {title}', '', '## Experiment', '',
         '| | |', '|---|---|',
         f'| method | {r.get("method", "-")} |',
         f'| network | {_network(config)} |',
         f'| features | {r.get("features", "-")} |',
         f'| source | {r.get("source", "-")} |',
         f'| target | {r.get("target", "-")} |',
         f'| task | {r.get("task", "-")} |',
         f'| protocol | {r.get("protocol", "-")} |',
         f'| seed | {r.get("seed", "-")} |',
         f'| steps | {r.get("steps", "-")} |',
         f'| batch size | {r.get("batch_size", "-")} |']
  for key, name in (('jaxser_version', 'jaxser'), ('git_commit', 'commit'),
                    ('device_kind', 'device'),
                    ('wall_time_s', 'wall time (s)')):
    if r.get(key) not in (None, ''):
      out.append(f'| {name} | {r[key]} |')
  if config:
    out += ['', 'Full configuration: [config.json](config.json).']
  out += ['', '## Data', '', '| | utterances |', '|---|---|',
          f'| source training | {r.get("num_source_train", "-")} |',
          '| target training (unlabelled) | '
          f'{r.get("num_target_train", "-")} |',
          f'| target evaluation | {r.get("num_eval", "-")} |']
  for key, name in (('left_out', 'left out by the task'),
                    ('skipped', 'skipped (bad files)')):
    counts = r.get(key) or {}
    if isinstance(counts, dict) and any(counts.values()):
      out.append(f'| {name} | ' + ', '.join(
          f'{k}: {v}' for k, v in counts.items() if v) + ' |')
  out += ['', '## Target metrics', '']
  if 'uar' not in r:
    out += ['No target metrics: the target has no labels. Label it with '
            '`python -m jaxser.label` or `python -m jaxser.predict`.', '']
  else:
    head = ['UAR', 'WAR', 'macro-F1']
    values = [_pct(r.get('uar')), _pct(r.get('war')), _pct(r.get('macro_f1'))]
    if r.get('positive_class_f1') is not None:
      head.append('F1 of class 1')
      values.append(_pct(r['positive_class_f1']))
    out += ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head),
            '| ' + ' | '.join(values) + ' |', '',
            'In %, on the target evaluation set.']
    collapsed = r.get('collapsed')
    if collapsed is None and 'confusion' in r:
      collapsed = metrics_lib.collapsed(r['confusion'])
    if collapsed:
      out += ['', '**Collapsed run**: the model predicts one class for every '
              'target utterance.']
    recall = r.get('per_class_recall') or {}
    if recall:
      support = ([int(sum(row)) for row in r['confusion']]
                 if 'confusion' in r else [None] * len(recall))
      out += ['', '### Recall per class', '', '| class | recall (%) | '
              'utterances |', '|---|---|---|']
      out += [f'| {k} | {_pct(v)} | {"-" if n is None else n} |'
              for (k, v), n in zip(recall.items(), support)]
    per_corpus = r.get('per_corpus') or {}
    if per_corpus:
      out += ['', '### Per target corpus', '',
              '| corpus | UAR | WAR | macro-F1 | utterances |',
              '|---|---|---|---|---|']
      out += [f'| {k} | {_pct(v.get("uar"))} | {_pct(v.get("war"))} | '
              f'{_pct(v.get("macro_f1"))} | {v.get("num_eval", "-")} |'
              for k, v in per_corpus.items()]
  out.append('')
  validation = r.get('validation')
  if validation:
    out += ['## Validation-based selection', '', '| | |', '|---|---|']
    out += [f'| {k} | {v} |' for k, v in validation.items()]
    out.append('')
  phases = r.get('phases') or []
  if phases:
    out += ['## Phases', '', '| phase | steps | planned | selection |',
            '|---|---|---|---|']
    for p in phases:
      sel = p.get('selection')
      sel_text = '-' if not sel else (
          f'{sel.get("metric")} on {sel.get("arrays")}: best '
          f'{float(sel.get("best", float("nan"))):.3f} at step '
          f'{sel.get("best_step")}')
      out.append(f'| {p.get("name")} | {p.get("steps")} | '
                 f'{p.get("planned_steps", "-")} | {sel_text} |')
    out.append('')
  captions = {CONFUSION: 'Confusion matrix on the target evaluation set',
              CURVES: 'Training terms and target UAR against step',
              EMBEDDING: 'Utterance embeddings of source and target'}
  if figures:
    out += ['## Figures', '']
    for path in figures:
      caption = captions.get(os.path.basename(path), os.path.basename(path))
      out += [f'### {caption}', '', f'![{caption}]({path})', '']
  return '\n'.join(out)


def _run_title(r: dict) -> str:
  return (f'{r.get("method", "?")}, {r.get("source", "?")} → '
          f'{r.get("target", "?")}, {r.get("task", "?")}, '
          f'seed {r.get("seed", "?")}')


def write_run(workdir: str, result: dict | None = None,
              embeddings: dict[str, dict[str, np.ndarray]] | None = None,
              projection: str = 'umap', seed: int = 0) -> list[str]:
  """Writes a finished run's figures (those its data allows) and report.md.

  Args:
    workdir: the run's folder (results.json, metrics.jsonl, config.json).
    result: its results dict (default: read from results.json).
    embeddings: `run_embeddings`'s output, or None for no embedding figure.
    projection: 'umap', 'tsne' or 'pca', for the embedding figure.
    seed: of the projection.

  Returns:
    The paths written. A figure that fails is reported on stderr and left
    out (the run's results are already written); report.md links the
    figures that exist: those of this call, and without `embeddings` the
    embedding figure of an earlier call.
  """
  if result is None:
    result = _read_json(io_lib.join(workdir, 'results.json'))
    if not isinstance(result, dict):
      raise ValueError(f'{workdir}: no results.json to report')
  config = _read_json(io_lib.join(workdir, 'config.json'))
  plots = io_lib.join(workdir, PLOTS)
  io_lib.makedirs(plots)
  title = _run_title(result)
  written = []

  def draw(name, make):
    path = io_lib.join(plots, name)
    try:
      fig = make()
      if fig is not None:
        written.append(_save(fig, path))
        return
    except Exception as e:  # pylint: disable=broad-except
      _warn(f'{name}: not drawn ({type(e).__name__}: {e})')
    if io_lib.exists(path):  # A stale figure of an earlier call.
      io_lib.remove(path)

  draw(CONFUSION, lambda: confusion_figure(
      result['confusion'], result['classes'], title)
       if 'confusion' in result else None)
  draw(CURVES, lambda: curves_figure(
      read_metrics(io_lib.join(workdir, 'metrics.jsonl')), title))
  if embeddings:
    def make_embedding():
      names = list(embeddings)
      stacked = np.concatenate([embeddings[n]['embedding'] for n in names])
      xy = project(stacked, projection, seed)
      bounds = np.cumsum([0] + [len(embeddings[n]['embedding'])
                                for n in names])
      points = {n: (xy[bounds[i]:bounds[i + 1]], embeddings[n]['label'])
                for i, n in enumerate(names)}
      return embedding_figure(points, result.get('classes', []), title,
                              projection)
    draw(EMBEDDING, make_embedding)
  # Without embeddings, an embedding figure of an earlier call (the same
  # run's model, e.g. `python -m jaxser.report`) is kept and linked.
  figures = [os.path.join(PLOTS, name)
             for name in (CONFUSION, CURVES, EMBEDDING)
             if io_lib.exists(io_lib.join(plots, name))]
  report = io_lib.join(workdir, REPORT)
  io_lib.write_text(report, run_markdown(result, config, figures))
  return written + [report]


# --- grid tables and figures -------------------------------------------------


def _fmt(values: Sequence[float]) -> str:
  if not values:
    return '-'
  if len(values) == 1:
    return f'{values[0]:.1f}'
  return f'{np.mean(values):.1f} ± {np.std(values):.1f}'


def _is_collapsed(r: dict) -> bool:
  if r.get('collapsed') is not None:
    return bool(r['collapsed'])
  return 'confusion' in r and metrics_lib.collapsed(r['confusion'])


def _arrow(source: str, target: str) -> str:
  return f'{source.replace("+", " + ")} → {target}'


def _by_task(results: Sequence[dict]) -> dict[str, dict[str, dict]]:
  """task -> method -> (source, target) -> [results], in order of first
  appearance."""
  out: dict[str, dict[str, dict]] = {}
  for r in results:
    out.setdefault(r['task'], {}).setdefault(r['method'], {}).setdefault(
        (r['source'], r['target']), []).append(r)
  return out


def pair_table(results: Sequence[dict], pairs: Sequence[tuple[str, str]],
               metric: str = 'uar', task: str | None = None) -> str:
  """The per-pair table (markdown): per task (or `task` alone), a row per
  method, a column per source → target pair of `pairs`, `metric` in % as
  mean ± std over the finished seeds (the value alone for one seed, '-' for
  none). A cell with collapsed seeds (one class predicted for every
  utterance) is marked '(n collapsed)'."""
  label = metric.upper() if metric in ('uar', 'war') else metric
  out = []
  for name, methods in _by_task(results).items():
    if task is not None and name != task:
      continue
    head = ['Method'] + [_arrow(s, t) for s, t in pairs]
    out += [f'## {name}: {label} per pair', '',
            '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for method, cells in methods.items():
      row = [method]
      for pair in pairs:
        rs = cells.get(pair, [])
        text = _fmt([100.0 * r[metric] for r in rs
                     if r.get(metric) is not None])
        bad = sum(_is_collapsed(r) for r in rs)
        row.append(text + (f' ({bad} collapsed)' if bad else ''))
      out.append('| ' + ' | '.join(row) + ' |')
    out += ['', f'{label} (%) of each source → target pair, mean ± std over '
            'seeds (one seed: the value alone). "(n collapsed)": n of the '
            'seeds predicted one class for every target utterance.', '']
  return '\n'.join(out)


def source_column_label(source: str) -> str:
  """The header of a table column that averages a source over its targets
  (`jaxser.grid.to_markdown`): 'casia → mean'."""
  return f'{source.replace("+", " + ")} → mean'


def columns_note(pairs: Sequence[tuple[str, str]]) -> str:
  """The note under a per-source table saying what each column averages."""
  targets: dict[str, list[str]] = {}
  for s, t in pairs:
    targets.setdefault(s, []).append(t)
  parts = [f'{source_column_label(s)} = source {s.replace("+", " + ")} '
           f'averaged over its targets {", ".join(ts)}'
           for s, ts in targets.items()]
  return ('Per-source columns and bars: ' + '; '.join(parts)
          + f'; Average = over all {len(pairs)} pairs.')


def collapsed_markdown(results: Sequence[dict]) -> str:
  """A line per collapsed run (one class predicted for everything), '' when
  none, for the grid's tables."""
  bad = [r for r in results if _is_collapsed(r)]
  if not bad:
    return ''
  lines = ['## Collapsed runs', '',
           'These runs predict one class for every target utterance; their '
           'UAR is 1 / classes whatever the data:', '']
  for r in bad:
    predicted = ''
    if 'confusion' in r and r.get('classes'):
      column = int(np.argmax(np.asarray(r['confusion']).sum(axis=0)))
      predicted = f' (always {r["classes"][column]})'
    lines.append(f'- {r["task"]} {r["method"]} '
                 f'{_arrow(r["source"], r["target"])} seed {r["seed"]}'
                 f'{predicted}')
  return '\n'.join(lines + [''])


def _pair_means(methods: dict, pairs, metric: str):
  """(methods x (pairs + Average)) mean and seed counts, NaN where no seed
  finished; Average per seed over all pairs, where a seed has them all."""
  names = list(methods)
  mean = np.full((len(names), len(pairs) + 1), np.nan)
  collapsed = np.zeros((len(names), len(pairs)), int)
  for i, m in enumerate(names):
    for j, pair in enumerate(pairs):
      rs = methods[m].get(pair, [])
      v = [r[metric] for r in rs if r.get(metric) is not None]
      if v:
        mean[i, j] = 100.0 * np.mean(v)
      collapsed[i, j] = sum(_is_collapsed(r) for r in rs)
    seeds = {}
    for pair in pairs:
      for r in methods[m].get(pair, []):
        seeds.setdefault(r['seed'], {})[pair] = r[metric]
    complete = [np.mean([s[p] for p in pairs]) for s in seeds.values()
                if all(p in s and s[p] is not None for p in pairs)]
    if complete:
      mean[i, -1] = 100.0 * np.mean(complete)
  return names, mean, collapsed


def uar_heatmap_figure(results: Sequence[dict],
                       pairs: Sequence[tuple[str, str]], task: str,
                       metric: str = 'uar') -> mfigure.Figure | None:
  """Methods x pairs heatmap of `metric` (mean over seeds, %), annotated,
  with an Average column; collapsed cells marked '*'."""
  methods = _by_task(results).get(task)
  if not methods:
    return None
  names, mean, collapsed = _pair_means(methods, pairs, metric)
  columns = [_arrow(s, t) for s, t in pairs] + ['Average']
  w = max(6.0, 2.2 + 0.62 * len(columns))
  h = max(3.0, 1.9 + 0.36 * len(names) + 0.06 * max(map(len, columns)))
  fig = mfigure.Figure(figsize=(w, h), layout='constrained')
  ax = fig.subplots()
  finite = mean[np.isfinite(mean)]
  lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0, 1)
  if hi - lo < 1e-6:
    lo, hi = lo - 1, hi + 1
  im = ax.imshow(np.ma.masked_invalid(mean), cmap='viridis', vmin=lo,
                 vmax=hi, aspect='auto')
  ax.axvline(len(pairs) - 0.5, color='white', linewidth=2)
  norm = (mean - lo) / (hi - lo)
  texts = [[('' if not np.isfinite(v) else f'{v:.1f}'
             + ('*' if j < len(pairs) and collapsed[i, j] else ''))
            for j, v in enumerate(row)] for i, row in enumerate(mean)]
  fontsize = 8 if len(columns) <= 16 else 6.5
  for i in range(mean.shape[0]):
    for j in range(mean.shape[1]):
      if texts[i][j]:
        ax.text(j, i, texts[i][j], ha='center', va='center',
                fontsize=fontsize,
                color='black' if norm[i, j] > 0.6 else 'white')
  ax.set_xticks(range(len(columns)))
  ax.set_xticklabels(columns, rotation=50, ha='right', rotation_mode='anchor',
                     fontsize=8)
  ax.set_yticks(range(len(names)))
  ax.set_yticklabels(names, fontsize=9)
  ax.set_xlabel('source → target')
  ax.set_ylabel('method')
  label = metric.upper()
  fig.colorbar(im, ax=ax, shrink=0.9, label=f'{label} (%)')
  note = ' (* collapsed seeds)' if collapsed.any() else ''
  ax.set_title(f'{task}: target {label} (%), mean over seeds{note}')
  return fig


def source_means(results: Sequence[dict], pairs: Sequence[tuple[str, str]],
                 task: str, metric: str = 'uar') -> tuple[list, list, dict]:
  """Per method and source corpus, the per-seed means of `metric` (%) over
  the source's targets, for the seeds that finished all of them (as
  `jaxser.grid.table_rows` counts a column): (methods, sources,
  {(method, source): [per-seed means]})."""
  by_source: dict[str, list] = {}
  for s, t in pairs:
    by_source.setdefault(s, []).append((s, t))
  methods = _by_task(results).get(task, {})
  values = {}
  for m, cells in methods.items():
    for source, source_pairs in by_source.items():
      seeds = {}
      for pair in source_pairs:
        for r in cells.get(pair, []):
          seeds.setdefault(r['seed'], {})[pair] = r[metric]
      values[(m, source)] = [
          100.0 * float(np.mean([s[p] for p in source_pairs]))
          for _, s in sorted(seeds.items())
          if all(p in s and s[p] is not None for p in source_pairs)]
  return list(methods), list(by_source), values


def sources_figure(results: Sequence[dict], pairs: Sequence[tuple[str, str]],
                   task: str, metric: str = 'uar') -> mfigure.Figure | None:
  """Grouped bars: per source corpus (averaged over its targets), a bar per
  method at the mean over seeds, the error bar its std over seeds, the
  seeds as dots."""
  methods, sources, values = source_means(results, pairs, task, metric)
  if not methods:
    return None
  n = len(methods)
  width = 0.8 / n
  fig = mfigure.Figure(figsize=(max(7.0, 2.5 + 0.22 * n * len(sources)), 5.2),
                       layout='constrained')
  ax = fig.subplots()
  colours = _palette(n)
  all_values = [v for vs in values.values() for v in vs]
  for i, m in enumerate(methods):
    xs = np.arange(len(sources)) + (i - (n - 1) / 2) * width
    means = [np.mean(values[(m, s)]) if values[(m, s)] else np.nan
             for s in sources]
    stds = [np.std(values[(m, s)]) if len(values[(m, s)]) > 1 else 0.0
            for s in sources]
    ax.bar(xs, means, width * 0.92, yerr=stds, color=colours[i], label=m,
           capsize=2 if n <= 6 else 0, error_kw={'linewidth': 1})
    for x, s in zip(xs, sources):
      if len(values[(m, s)]) > 1:
        ax.scatter(np.full(len(values[(m, s)]), x), values[(m, s)], s=5,
                   color='black', zorder=3, linewidths=0)
  ax.set_xticks(range(len(sources)))
  counts = {s: sum(p[0] == s for p in pairs) for s in sources}
  ax.set_xticklabels([f'{s.replace("+", " + ")}\n→ {counts[s]} target'
                      + ('s' if counts[s] > 1 else '') for s in sources],
                     fontsize=9)
  ax.set_xlabel('source corpus (averaged over its targets)')
  label = metric.upper()
  ax.set_ylabel(f'target {label} (%)')
  if all_values:
    lo, hi = min(all_values), max(all_values)
    pad = max(2.0, 0.1 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))
  ax.grid(axis='y', alpha=0.3)
  ax.legend(title='method', loc='upper left', bbox_to_anchor=(1.01, 1.0),
            fontsize=8, frameon=False)
  ax.set_title(f'{task}: target {label} per source (mean ± std over seeds; '
               'dots: seeds)')
  return fig


def grid_markdown(root: str, results: Sequence[dict],
                  pairs: Sequence[tuple[str, str]],
                  figures: dict[str, list[str]]) -> str:
  """DIR/report.md of a grid: per task its figures (paths relative to
  `root`) beside the per-pair table; links to the other tables."""
  tasks = list(_by_task(results))
  methods = list(dict.fromkeys(r['method'] for r in results))
  seeds = sorted({r['seed'] for r in results})
  out = ['# Grid report', '',
         f'{len(results)} finished runs: {len(methods)} methods '
         f'({", ".join(methods)}), {len(pairs)} pairs, tasks '
         f'{", ".join(tasks)}, seeds {", ".join(map(str, seeds))}.', '',
         'Tables: ' + ', '.join(
             f'[{name}]({name})' for name in ('table.md', 'table.csv',
                                              'scenarios.md', PAIRS)
             if io_lib.exists(io_lib.join(root, name))) + '.', '',
         columns_note(pairs), '']
  for task in tasks:
    out += [f'## {task}', '']
    for path in figures.get(task, []):
      out += [f'![{os.path.basename(path)}]({path})', '']
    out += ['#' + pair_table(results, pairs, task=task), '']
  extra = collapsed_markdown(results)
  if extra:
    out += [extra]
  return '\n'.join(out)


def write_grid(root: str, results: Sequence[dict],
               pairs: Sequence[tuple[str, str]]) -> list[str]:
  """The grid's figures, DIR/pairs.md and DIR/report.md (module docstring);
  returns the paths written. A figure that fails is reported on stderr and
  left out."""
  plots = io_lib.join(root, PLOTS)
  io_lib.makedirs(plots)
  pairs = [tuple(p) for p in pairs]
  written = []
  figures: dict[str, list[str]] = {}
  for task in _by_task(results):
    for suffix, make in (('uar', uar_heatmap_figure),
                         ('sources', sources_figure)):
      path = io_lib.join(plots, f'{task}_{suffix}.png')
      try:
        fig = make(results, pairs, task)
      except Exception as e:  # pylint: disable=broad-except
        _warn(f'{os.path.basename(path)}: not drawn ({type(e).__name__}: {e})')
        continue
      if fig is not None:
        written.append(_save(fig, path))
        figures.setdefault(task, []).append(os.path.relpath(path, root))
  path = io_lib.join(root, PAIRS)
  io_lib.write_text(path, pair_table(results, pairs))
  written.append(path)
  path = io_lib.join(root, REPORT)
  io_lib.write_text(path, grid_markdown(root, results, pairs, figures))
  return written + [path]


# --- redrawing a finished run ------------------------------------------------


def redraw(workdir: str, projection: str = 'umap',
           max_points: int = MAX_POINTS) -> list[str]:
  """`write_run` for a finished run from its folder alone plus its corpora:
  the model of its latest checkpoint (`jaxser.inference.open_run`) embeds
  its source and target evaluation sets (read as the run read them) unless
  `projection` is 'none'. Returns the paths written."""
  # pylint: disable=g-import-not-at-top
  from jaxser import inference
  from jaxser import train
  from jaxser.data import pipeline
  # pylint: enable=g-import-not-at-top
  if not io_lib.exists(io_lib.join(workdir, 'results.json')):
    raise ValueError(f'--workdir {workdir}: no results.json (not a finished '
                     'run)')
  embeddings = None
  if projection != 'none':
    if projection not in PROJECTIONS:
      raise ValueError(f'--embedding: unknown {projection!r}; known: '
                       f'{", ".join(PROJECTIONS)}, none')
    mesh = train.make_mesh()
    model = inference.open_run(workdir, mesh)
    config = model.config
    data = pipeline.load_data(config.data)
    embeddings = run_embeddings(
        model.method, model.variables,
        load_corpus_sets(data, max_points, config.seed),
        config.train.eval_batch_size, mesh, max_points, config.seed)
  return write_run(workdir, embeddings=embeddings,
                   projection=projection if embeddings else 'umap')


def _define_flags():
  """Defined only when run as a program (jaxser.main has --workdir too)."""
  # pylint: disable=g-import-not-at-top
  from absl import flags
  # pylint: enable=g-import-not-at-top
  flags.DEFINE_string('workdir', None, 'A finished training run.')
  flags.DEFINE_enum('embedding', 'umap', list(PROJECTIONS) + ['none'],
                    'Projection of the embedding figure (none: no figure, '
                    'no model or corpus read).')
  flags.DEFINE_integer('max_points', MAX_POINTS,
                       'Embedded utterances per corpus at most.')
  flags.mark_flags_as_required(['workdir'])


def main(argv):
  # pylint: disable=g-import-not-at-top
  from absl import flags
  from jaxser import runtime
  # pylint: enable=g-import-not-at-top
  del argv
  f = flags.FLAGS
  runtime.setup_process()
  try:
    paths = redraw(f.workdir, f.embedding, f.max_points)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print('\n'.join(paths))


if __name__ == '__main__':
  # Before TensorFlow is imported: openSMILE's native library loads first.
  # pylint: disable=g-import-not-at-top,unused-import
  from jaxser.data import features  # noqa: F401
  # pylint: enable=g-import-not-at-top,unused-import
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main)
