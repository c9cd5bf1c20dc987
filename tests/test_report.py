"""Run and grid figures and reports (jaxser.report), collapsed runs."""

import json
import os
import re
import struct

import numpy as np
import pytest

from jaxser import metrics
from jaxser import report

CLASSES = ['neutral', 'happy', 'sad', 'angry']
CORPORA = ['casia', 'emodb', 'emovo', 'iemocap', 'msp_improv', 'ravdess',
           'urdu']
METHODS = ['source_only', 'dann', 'dan', 'jan', 'cdan', 'cdan_e', 'bsp',
           'emodna', 'difl', 'mmd_ser', 'cyclegan', 'multitask']


def png_size(path):
  """(width, height) from a PNG's IHDR; fails on anything but a PNG."""
  with open(path, 'rb') as f:
    head = f.read(24)
  assert head[:8] == b'\x89PNG\r\n\x1a\n', path
  assert head[12:16] == b'IHDR', path
  return struct.unpack('>II', head[16:24])


def assert_png(path, lo=(300, 200), hi=(6000, 4000)):
  w, h = png_size(path)
  assert lo[0] <= w <= hi[0] and lo[1] <= h <= hi[1], (path, w, h)
  # The whole file decodes, and is not a blank canvas.
  from matplotlib import image  # pylint: disable=g-import-not-at-top
  pixels = image.imread(path)
  assert pixels.shape[:2] == (h, w)
  assert pixels[..., :3].std() > 0.05
  return w, h


def linked(markdown_path):
  with open(markdown_path) as f:
    return set(re.findall(r'!\[[^\]]*\]\(([^)]+)\)', f.read()))


def pngs_under(folder, root):
  return {os.path.relpath(os.path.join(folder, n), root)
          for n in os.listdir(folder) if n.endswith('.png')}


def fake_result(confusion=None, **kw):
  c = np.asarray(confusion if confusion is not None else
                 [[30, 5, 3, 2], [4, 20, 1, 0], [2, 2, 25, 6], [3, 4, 5, 28]])
  r = dict(method='emodna', source='casia', target='emovo', task='emotion4',
           protocol='transductive', seed=0, steps=40, features='mfcc40',
           batch_size=32, num_source_train=1200, num_target_train=300,
           **metrics.summary(*_labels(c), CLASSES))
  r.update(kw)
  return r


def _labels(c):
  y, p = [], []
  for i in range(c.shape[0]):
    for j in range(c.shape[1]):
      y += [i] * int(c[i, j])
      p += [j] * int(c[i, j])
  return np.array(y), np.array(p)


def write_metrics(workdir, phases=('',), terms=8):
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
    for step in range(0, 101, 10):
      for phase in phases:
        prefix = f'train/{phase}/' if phase else 'train/'
        row = {'step': step, f'{prefix}loss': 2.0 / (1 + step),
               f'{prefix}source_acc': step / 100, f'{prefix}grad_norm': 3.0,
               f'{prefix}samples_per_s': 100.0}
        row.update({f'{prefix}loss_{k}': 10.0 ** -k for k in range(terms)})
        f.write(json.dumps(row) + '\n')
      if step % 50 == 0:
        f.write(json.dumps({'step': step, 'eval/uar': 0.3 + step / 500,
                            'eval/war': 0.3}) + '\n')
    f.write('{"step": 110, "train/lo')  # A torn last line is skipped.


def test_collapsed_hand_cases():
  assert metrics.collapsed([[10, 0], [7, 0]])
  assert metrics.collapsed(np.array([[0, 0, 4], [0, 0, 5], [0, 0, 1]]))
  assert not metrics.collapsed([[10, 1], [7, 0]])
  assert not metrics.collapsed([[3, 0], [0, 4]])
  # One class in truth: predicting it everywhere is not a collapse.
  assert not metrics.collapsed([[5, 0], [0, 0]])
  assert not metrics.collapsed(np.zeros((3, 3)))
  assert metrics.summary([0, 1, 1], [1, 1, 1], ('a', 'b'))['collapsed']
  assert not metrics.summary([0, 1, 1], [0, 1, 1], ('a', 'b'))['collapsed']


def test_write_run_figures_and_report_link_exactly_them(tmp_path):
  workdir = str(tmp_path)
  write_metrics(workdir, phases=('',), terms=9)
  rng = np.random.default_rng(0)
  embeddings = {
      f'{name} ({role})': {
          'embedding': rng.standard_normal((40, 16)) + k,
          'label': rng.integers(0, 4, 40)}
      for k, (name, role) in enumerate([('casia', 'source'),
                                        ('emodb', 'source'),
                                        ('emovo', 'target')])}
  result = fake_result()
  paths = report.write_run(workdir, result, embeddings, projection='pca')
  plots = os.path.join(workdir, 'plots')
  for name in (report.CONFUSION, report.CURVES, report.EMBEDDING):
    assert os.path.join(plots, name) in paths
    assert_png(os.path.join(plots, name))
  # 9 loss terms + 'loss' over two panels, the other quantities on a third,
  # then the scores: the curves figure is tall, not crammed.
  w, h = png_size(os.path.join(plots, report.CURVES))
  assert h > 4 * 2.6 * report.DPI * 0.9
  md = os.path.join(workdir, report.REPORT)
  assert linked(md) == pngs_under(plots, workdir)
  text = open(md).read()
  for expected in ('emodna', 'casia', 'emovo', 'mfcc40', 'transductive',
                   '| 1200 |', '| happy |', f'{100 * result["uar"]:.1f}'):
    assert expected in text, expected
  assert 'Collapsed' not in text
  # Redrawn without embeddings: the earlier embedding figure stays linked.
  report.write_run(workdir, result)
  assert linked(md) == pngs_under(plots, workdir)
  assert os.path.join('plots', report.EMBEDDING) in linked(md)


def test_run_report_without_labels_or_logs(tmp_path):
  """An unlabelled target: no confusion figure (a stale one is removed), no
  metrics, and the report links only what exists."""
  workdir = str(tmp_path)
  os.makedirs(os.path.join(workdir, 'plots'))
  stale = os.path.join(workdir, 'plots', report.CONFUSION)
  open(stale, 'w').close()
  result = {k: v for k, v in fake_result().items()
            if k not in ('uar', 'war', 'macro_f1', 'confusion',
                         'per_class_recall', 'collapsed')}
  paths = report.write_run(workdir, result)
  assert paths == [os.path.join(workdir, report.REPORT)]
  assert not os.path.exists(stale)
  assert linked(paths[0]) == set()
  assert 'No target metrics' in open(paths[0]).read()


def test_collapsed_run_is_flagged_in_its_report(tmp_path):
  result = fake_result([[40, 0, 0, 0], [25, 0, 0, 0], [35, 0, 0, 0],
                        [40, 0, 0, 0]])
  assert result['collapsed']
  report.write_run(str(tmp_path), result)
  assert 'Collapsed run' in open(tmp_path / report.REPORT).read()


def test_curve_groups_split_phases_losses_and_scores():
  rows = [{'step': 1, 'train/gan/loss_g': 1.0, 'train/gan/loss_d': 2.0,
           'train/gan/lr': 0.1, 'train/clf/loss': 0.5,
           'train/clf/source_acc': 0.4, 'train/clf/samples_per_s': 9.0},
          {'step': 2, 'eval/uar': 0.5, 'eval/war': 0.6,
           'select/clf/uar': 0.4, 'select/clf/lr_scale': 1.0}]
  groups, scores = report.curve_groups(rows)
  assert groups == {'gan': ['train/gan/loss_g', 'train/gan/loss_d'],
                    'gan:other': ['train/gan/lr'],
                    'clf': ['train/clf/loss']}
  assert scores == ['train/clf/source_acc', 'eval/uar', 'select/clf/uar']
  fig = report.curves_figure(rows)
  assert len(fig.axes) == 4
  assert report.curves_figure([{'step': 1}]) is None


def test_multi_phase_curves(tmp_path):
  workdir = str(tmp_path)
  write_metrics(workdir, phases=('gan', 'classifier'), terms=3)
  rows = report.read_metrics(os.path.join(workdir, 'metrics.jsonl'))
  assert rows and all('step' in r for r in rows)
  fig = report.curves_figure(rows, 'title')
  titles = [ax.get_title(loc='left') for ax in fig.axes]
  assert titles == ['phase gan: losses', 'phase gan: other logged quantities',
                    'phase classifier: losses',
                    'phase classifier: other logged quantities',
                    'accuracies and target UAR']
  # Losses spanning decades get a log axis.
  assert fig.axes[0].get_yscale() == 'log'


def test_projection_names_and_small_inputs():
  with pytest.raises(ValueError, match='projection'):
    report.project(np.zeros((10, 3)), 'pcaa')
  x = np.random.default_rng(0).standard_normal((30, 5))
  xy = report.project(x, 'pca')
  assert xy.shape == (30, 2)
  # PCA's first axis carries the largest variance of the standardised data.
  assert xy[:, 0].var() >= xy[:, 1].var()
  assert report.project(x[:3], 'umap').shape == (3, 2)


def test_subsample():
  assert list(report.subsample(5, 10)) == [0, 1, 2, 3, 4]
  rows = report.subsample(1000, 100, seed=3)
  assert len(rows) == 100 == len(set(rows)) and list(rows) == sorted(rows)
  assert list(rows) == list(report.subsample(1000, 100, seed=3))


@pytest.mark.slow
@pytest.mark.parametrize('how', ['umap', 'tsne'])
def test_nonlinear_projections_separate_clusters(how):
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.standard_normal((60, 10)),
                      rng.standard_normal((60, 10)) + 8])
  xy = report.project(x, how)
  a, b = xy[:60].mean(0), xy[60:].mean(0)
  assert np.linalg.norm(a - b) > 2 * max(xy[:60].std(), xy[60:].std())


def test_embedding_fn_reads_the_emotion_model_through_a_wrapper():
  """The embeddings of run_embeddings are the EmotionModel's 'embedding'
  output, found through a wrapper sharing its scope (as Emo-DNA's)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from jaxser.models import classifier  # pylint: disable=g-import-not-at-top

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, lengths, *, train):
      del lengths, train
      return {'embedding': nn.Dense(6)(x.mean(1))}

  class Wrapper(nn.Module):
    inner: nn.Module

    def setup(self):
      nn.share_scope(self, self.inner)
      self.extra = nn.Dense(3)

    def __call__(self, x, lengths, *, train):
      return self.extra(self.inner(x, lengths, train=train)['embedding'])

    def classify(self, x, lengths):
      return self.inner.classify(x, lengths)

  class FakeMethod:
    name = 'fake'
    model = Wrapper(classifier.EmotionModel(Net(),
                                            classifier.DenseHead(4)))

  rng = np.random.default_rng(0)
  x = rng.standard_normal((21, 5, 4)).astype(np.float32)
  lengths = np.full(21, 5, np.int32)
  variables = FakeMethod.model.init(jax.random.PRNGKey(0), x, lengths,
                                    train=False)
  sets = {'a (source)': {'features': x, 'length': lengths,
                         'label': np.arange(21) % 4}}
  out = report.run_embeddings(FakeMethod(), variables, sets, batch_size=8,
                              max_points=13)
  rows = report.subsample(21, 13, 0)
  got = out['a (source)']
  assert got['embedding'].shape == (13, 6)
  np.testing.assert_array_equal(got['label'], (np.arange(21) % 4)[rows])
  # The embedding maps to the logits through the head: head(E) = classify.
  head = variables['params']['emotion_head']
  logits = got['embedding'] @ np.asarray(head['kernel']) + np.asarray(
      head['bias'])
  np.testing.assert_allclose(
      logits, np.asarray(FakeMethod.model.apply(
          variables, x[rows], lengths[rows], method='classify')),
      rtol=1e-4, atol=1e-5)


# --- grid ---------------------------------------------------------------------


def fake_grid(seed=0, tasks=('arousal',), methods=METHODS, corpora=CORPORA,
              seeds=3):
  rng = np.random.default_rng(seed)
  pairs = [(a, b) for a in corpora for b in corpora if a != b]
  results = []
  for task in tasks:
    for m in methods:
      for s, t in pairs:
        for k in range(seeds):
          u = float(0.5 + 0.2 * rng.random())
          results.append(dict(task=task, method=m, source=s, target=t,
                              seed=k, uar=u, war=u, macro_f1=u,
                              confusion=[[40, 10], [12, 38]],
                              classes=['low', 'high']))
  return results, pairs


def test_pair_table_by_hand():
  def r(method, pair, seed, uar, confusion=((5, 5), (5, 5))):
    return dict(task='arousal', method=method, source=pair[0],
                target=pair[1], seed=seed, uar=uar, war=uar, macro_f1=uar,
                confusion=[list(c) for c in confusion],
                classes=['low', 'high'])
  pairs = [('casia', 'emovo'), ('casia+emodb', 'urdu')]
  results = [r('dann', pairs[0], 0, 0.5), r('dann', pairs[0], 1, 0.7),
             r('dann', pairs[1], 0, 0.6, ((9, 0), (8, 0))),
             r('jan', pairs[1], 0, 0.55)]
  text = report.pair_table(results, pairs)
  lines = text.splitlines()
  assert '| Method | casia → emovo | casia + emodb → urdu |' in lines
  assert '| dann | 60.0 ± 10.0 | 60.0 (1 collapsed) |' in lines
  assert '| jan | - | 55.0 |' in lines
  note = report.columns_note(pairs)
  assert 'casia → mean = source casia averaged over its targets emovo' in note
  assert report.source_column_label('casia') == 'casia → mean'
  flagged = report.collapsed_markdown(results)
  assert 'dann casia + emodb → urdu seed 0 (always' in flagged
  assert 'jan' not in flagged
  assert report.collapsed_markdown(results[:2]) == ''


def test_source_means_agree_with_the_grid_tables():
  from jaxser import grid  # pylint: disable=g-import-not-at-top
  results, pairs = fake_grid(methods=METHODS[:3], corpora=CORPORA[:3])
  results = results[:-1]  # One seed of one column unfinished.
  methods, sources, values = report.source_means(results, pairs, 'arousal')
  rows = grid.table_rows(results, pairs)['arousal']
  assert methods == [row['method'] for row in rows]
  for row in rows:
    for source in sources:
      mean, std, n = row['columns'][source]['UAR']
      v = values[(row['method'], source)]
      assert len(v) == n
      assert np.mean(v) == pytest.approx(mean)
      assert np.std(v) == pytest.approx(std)


def test_grid_figures_with_7_corpora_and_12_methods(tmp_path):
  root = str(tmp_path)
  results, pairs = fake_grid()
  results[5]['confusion'] = [[50, 0], [50, 0]]
  results[5]['collapsed'] = True
  for name in ('table.md', 'scenarios.md'):
    (tmp_path / name).write_text('x')
  paths = report.write_grid(root, results, pairs)
  plots = os.path.join(root, 'plots')
  w, h = assert_png(os.path.join(plots, 'arousal_uar.png'), hi=(5000, 2000))
  assert w > h  # 42 pairs across, 12 methods down.
  assert_png(os.path.join(plots, 'arousal_sources.png'), hi=(4000, 1500))
  md = os.path.join(root, report.REPORT)
  assert md in paths and os.path.join(root, report.PAIRS) in paths
  assert linked(md) == pngs_under(plots, root)
  text = open(md).read()
  assert '[table.md](table.md)' in text and '[scenarios.md](scenarios.md)' \
      in text and '[table.csv]' not in text
  assert '## Collapsed runs' in text
  assert text.count('| source_only |') == 1
  # The heatmap says which cell had a collapsed seed.
  fig = report.uar_heatmap_figure(results, pairs, 'arousal')
  marked = [t.get_text() for t in fig.axes[0].texts if t.get_text()
            .endswith('*')]
  assert len(marked) == 1
  assert len(fig.axes[0].texts) == 12 * 43


def test_corpus_sets_split_by_domain():
  from types import SimpleNamespace as NS  # pylint: disable=g-import-not-at-top

  def part(name, domain):
    return NS(domain=domain, cached=NS(corpus=NS(name=name)))
  data = NS(source_train=NS(parts=[part('casia', 0), part('emodb', 1)]),
            target_eval=NS(parts=[part('emovo', 2), part('urdu', 3)]))
  source = {'features': np.arange(5), 'domain': np.array([0, 1, 0, 1, 1])}
  target = {'features': np.arange(3), 'domain': np.array([2, 2, 2])}
  sets = report.corpus_sets(data, source, target)
  assert list(sets) == ['casia (source)', 'emodb (source)', 'emovo (target)']
  np.testing.assert_array_equal(sets['emodb (source)']['features'], [1, 3, 4])
  assert list(report.corpus_sets(data, None, target)) == ['emovo (target)']


def test_embedding_figure_without_class_names():
  xy = np.random.default_rng(0).standard_normal((10, 2))
  fig = report.embedding_figure(
      {'a (source)': (xy, np.arange(10) % 3), 'b (target)': (xy, -np.ones(
          10, int))}, [], projection='pca')
  names = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert names == ['a (source)', 'b (target)']
  assert fig.axes[0].get_xlabel() == 'PC 1'


def test_sample_split_keeps_at_most_max_points_per_corpus():
  import dataclasses  # pylint: disable=g-import-not-at-top

  @dataclasses.dataclass
  class Part:
    indices: np.ndarray
    labels: np.ndarray
    domain: int

  @dataclasses.dataclass
  class Split:
    parts: list

  split = Split([Part(np.arange(100, 150), np.arange(50) % 4, 0),
                 Part(np.arange(7), np.zeros(7, int), 1)])
  small = report.sample_split(split, 20, seed=1)
  a, b = small.parts
  assert len(a.indices) == 20 and b.indices.tolist() == list(range(7))
  # Labels stay with their utterances.
  np.testing.assert_array_equal(a.labels, (a.indices - 100) % 4)
  assert len(split.parts[0].indices) == 50  # The run's split is untouched.


def test_a_run_writes_its_figures_and_report(tmp_path, cache_dir):
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  from jaxser import train  # pylint: disable=g-import-not-at-top
  c = tiny_config('source_only', cache_dir, steps=2)
  c.report.embedding = 'pca'
  train.train_and_evaluate(c, str(tmp_path))
  plots = str(tmp_path / 'plots')
  for name in (report.CONFUSION, report.CURVES, report.EMBEDDING):
    assert_png(os.path.join(plots, name))
  assert linked(str(tmp_path / report.REPORT)) == pngs_under(
      plots, str(tmp_path))
