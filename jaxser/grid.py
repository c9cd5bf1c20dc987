"""Runs a grid of experiments and tabulates it as Emo-DNA's Tables 2-3.

  python -m jaxser.grid --methods=source_only,dann,dan,jan,cdan,bsp \
      --pairs=casia:emovo,emovo:casia --tasks=arousal,valence --seeds=3 \
      --workdir=DIR [--steps=N] [--data_root=PATH] [--set=key=value ...]

One cell is (method, source, target, task, seed): configs/<method>.py with
data.source, data.target, data.task and seed set (seeds 0..N-1); a source of
several corpora joined by '+' is a multi-source cell (`--pairs=casia+emovo:
urdu,casia:urdu,emovo:urdu`: data.source=casia,emovo), then
--steps (train.steps), --data_root (data.root) and each --set (a dotted
config field, e.g. --set=train.batch_size=32 --set=dann.trade_off=0.5,
applied to the methods whose config has the field). Cells run one after
another in this process (`jaxser.train.train_and_evaluate`), each in
DIR/<task>/<method>/<source>_<target>/seed<k>/. A cell with a results.json
is finished and skipped; an interrupted one resumes from its checkpoint, so
rerunning the same command continues the grid.

After every cell, DIR/table.md and DIR/table.csv are rewritten: one table
per task, a row per method, per source corpus the mean +- std over seeds of
WAR, F1 (macro) and UAR in %, each first averaged over that source's targets
within a seed, and an Average column over all pairs (per seed, then mean and
std). A seed counts in a column only once all the column's pairs are
finished for it; the CSV gives the number of seeds counted.
DIR/scenarios.md has the layout of CAEmoCyGAN's Table 3: a row per method, a
column pair (UA, WA) per scenario source -> target, mean +- std over seeds.
A method that needs several sources (CAEmoCyGAN, CACyGAN) is left out of
the single-source pairs ('-'), so one command makes the whole table.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import importlib.util
import io
import json
import os
import sys
import time
from typing import Any, Callable, Iterable, Sequence

from absl import app
from absl import flags
import ml_collections
import numpy as np

# Before TensorFlow is imported (as jaxser.main): openSMILE's native library
# must load first.
from jaxser.data import features  # noqa: F401  pylint: disable=unused-import
from jaxser import io as io_lib
from jaxser import report
from jaxser import runtime

# (column label, results.json key), in table order.
# F1-pos: the F1 of class 1 of a binary task, the "F1" of Emo-DNA's tables
# (`metrics.positive_class_f1`); '-' for other tasks.
METRICS = (('WAR', 'war'), ('F1', 'macro_f1'), ('F1-pos', 'positive_class_f1'),
           ('UAR', 'uar'))
AVERAGE = 'Average'

_METHODS = flags.DEFINE_list('methods', None, 'Methods (configs/<m>.py).')
_PRESET = flags.DEFINE_string(
    'preset', None, 'A paper table instead of --methods: its rows are the '
    'grid\'s methods (jaxser.presets: emodna_table4, emodna_table5, '
    'emodna_table6, emodna_terms); with --methods, only those rows.')
_PAIRS = flags.DEFINE_list('pairs', None, 'source:target corpus pairs.')
_TASKS = flags.DEFINE_list('tasks', ['arousal', 'valence'], 'Tasks.')
_SEEDS = flags.DEFINE_integer('seeds', 3, 'Seeds 0..N-1 per cell.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Grid folder.')
_STEPS = flags.DEFINE_integer('steps', None, 'train.steps of every cell.')
_DATA_ROOT = flags.DEFINE_string('data_root', None,
                                 'data.root of every cell.')
_SET = flags.DEFINE_multi_string('set', [], 'key=value config override.')
_PACK = flags.DEFINE_integer(
    'pack', 0, 'Runs per program: cells of one task and method (seeds, '
    'pairs) share one compiled train program (jaxser.train.train_many); '
    '0: as many as fit in device memory; 1: one cell at a time.')
_CONFIGS_DIR = flags.DEFINE_string(
    'configs_dir', None, 'Folder of the <method>.py configs (default: '
    'the shipped ones, jaxser/configs/ when installed, the clone\'s '
    'configs/ otherwise; python -m jaxser.info lists them).')


@dataclasses.dataclass(frozen=True)
class Cell:
  """One experiment of the grid."""
  method: str
  source: str
  target: str
  task: str
  seed: int

  def workdir(self, root: str) -> str:
    return io_lib.join(root, self.task, self.method,
                        f'{self.source}_{self.target}', f'seed{self.seed}')

  def __str__(self):
    return (f'{self.method} {self.source}->{self.target} {self.task} '
            f'seed{self.seed}')


def parse_pairs(specs: Iterable[str]) -> list[tuple[str, str]]:
  pairs = []
  for spec in specs:
    source, sep, target = spec.partition(':')
    if not (sep and source and target) or not all(source.split('+')):
      raise ValueError(f'--pairs: {spec!r} is not source:target (several '
                       'sources joined by +)')
    pairs.append((source, target))
  return pairs


def grid_cells(methods: Sequence[str], pairs: Sequence[tuple[str, str]],
               tasks: Sequence[str], seeds: int) -> list[Cell]:
  """All cells, task-major then method, pair and seed (the table order)."""
  return [Cell(m, s, t, task, k) for task in tasks for m in methods
          for s, t in pairs for k in range(seeds)]


def default_configs_dir() -> str:
  """The shipped configs, found from anywhere (`jaxser.cli`)."""
  from jaxser import cli  # pylint: disable=g-import-not-at-top
  return cli.shipped_configs_dir()


def load_config(method: str, configs_dir: str) -> ml_collections.ConfigDict:
  """get_config() of configs_dir/<method>.py."""
  path = os.path.join(configs_dir, f'{method}.py')
  if not os.path.exists(path):
    from jaxser import cli  # pylint: disable=g-import-not-at-top
    raise ValueError(
        f'--methods: no config {path} for method {method!r}; --configs_dir '
        f'names the folder of <method>.py configs (default: the shipped '
        f'{default_configs_dir()})' +
        cli.suggest(method, cli.shipped_configs()))
  spec = importlib.util.spec_from_file_location(f'grid_config_{method}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def parse_override(spec: str) -> tuple[str, str]:
  key, sep, value = spec.partition('=')
  if not (sep and key):
    raise ValueError(f'--set: {spec!r} is not key=value')
  return key, value


def _lookup(config: ml_collections.ConfigDict, key: str):
  """(parent ConfigDict, field name) of a dotted key, or None if absent."""
  *parents, field = key.split('.')
  node = config
  for p in parents:
    if not isinstance(node, ml_collections.ConfigDict) or p not in node:
      return None
    node = node[p]
  if not isinstance(node, ml_collections.ConfigDict) or field not in node:
    return None
  return node, field


def _typed(value: str, current: Any) -> Any:
  """`value` read as the type of the field's current value."""
  if isinstance(current, bool):
    if value.lower() not in ('true', 'false', '1', '0'):
      raise ValueError(f'--set: {value!r} is not a bool')
    return value.lower() in ('true', '1')
  if isinstance(current, str):
    return value
  try:
    return ast.literal_eval(value)
  except (ValueError, SyntaxError) as e:
    raise ValueError(f'--set: cannot read {value!r}') from e


def apply_overrides(configs: dict[str, ml_collections.ConfigDict],
                    overrides: Sequence[tuple[str, str]]) -> None:
  """Sets each key=value in every config that has the key.

  Raises:
    ValueError: a key none of the configs has (a typo would otherwise be
      silently ignored), or a value of the wrong type.
  """
  for key, value in overrides:
    found = False
    for config in configs.values():
      where = _lookup(config, key)
      if where is None:
        continue
      node, field = where
      try:
        node[field] = _typed(value, node[field])
      except TypeError as e:
        raise ValueError(f'--set {key}={value}: {e}') from e
      found = True
    if not found:
      raise ValueError(f'--set: no method config has the field {key!r}')


def cell_config(base: ml_collections.ConfigDict,
                cell: Cell) -> ml_collections.ConfigDict:
  """The method's config with the cell's corpora, task and seed."""
  config = base.copy_and_resolve_references()
  config.data.source = cell.source.replace('+', ',')
  config.data.target = cell.target
  config.data.task = cell.task
  config.seed = cell.seed
  return config


def runnable_cells(cells: Sequence[Cell],
                   configs: dict[str, ml_collections.ConfigDict],
                   log: Callable[[str], None] = print) -> list[Cell]:
  """The cells whose method can run on their sources: a method that needs
  several source corpora (`Method.min_sources`, e.g. CAEmoCyGAN) has no
  single-source cells, as in the paper's Table 3 ('-' in the tables); one
  line per method says which pairs it leaves out."""
  from jaxser import methods as methods_lib  # pylint: disable=g-import-not-at-top
  keep, left_out = [], {}
  for cell in cells:
    try:
      need = methods_lib.get(configs[cell.method].method).min_sources
    except (ValueError, KeyError, AttributeError):
      need = 1  # An unknown method fails with its own error when it runs.
    if len(cell.source.split('+')) < need:
      left_out.setdefault((cell.method, need), []).append(
          f'{cell.source}:{cell.target}')
    else:
      keep.append(cell)
  for (method, need), where in left_out.items():
    where = list(dict.fromkeys(where))
    log(f'{method}: needs {need} or more source corpora; left out of '
        f'{", ".join(where)}')
  return keep


def run_grid(cells: Sequence[Cell], root: str,
             make_config: Callable[[Cell], ml_collections.ConfigDict],
             train_fn: Callable[[list, list], list[dict]],
             on_result: Callable[[list[dict]], None] = lambda results: None,
             log: Callable[[str], None] = print) -> list[dict]:
  """Runs the cells without results.json; returns every cell's results.

  The cells of one task and method not finished before go to `train_fn`
  together (which packs those that can share a program).

  Args:
    cells: the grid.
    root: the grid folder.
    make_config: the config of a cell.
    train_fn: (configs, workdirs) -> their results dicts; it also writes
      each workdir/results.json (`jaxser.train.train_many`).
    on_result: called with the results so far after each batch of cells.
    log: where the progress lines go.

  Returns:
    The results dicts, in cell order, each with the cell's fields.
  """
  found = {}
  for cell in cells:
    path = io_lib.join(cell.workdir(root), 'results.json')
    if io_lib.exists(path):
      found[cell] = (json.loads(io_lib.read_text(path)), 'done before')
  batches = {}
  for cell in cells:
    if cell not in found:
      batches.setdefault((cell.task, cell.method), []).append(cell)
  results, reported = [], 0

  def report():
    nonlocal reported
    while reported < len(cells) and cells[reported] in found:
      cell = cells[reported]
      result, status = found[cell]
      result = dict(result, **dataclasses.asdict(cell))
      results.append(result)
      reported += 1
      log(f'[{reported}/{len(cells)}] {cell}: WAR {result["war"]:.4f} '
          f'F1 {result["macro_f1"]:.4f} UAR {result["uar"]:.4f} ({status})')
    on_result(results + [dict(found[c][0], **dataclasses.asdict(c))
                         for c in cells[reported:] if c in found])

  report()
  for batch in batches.values():
    start = time.perf_counter()
    out = train_fn([make_config(c) for c in batch],
                   [c.workdir(root) for c in batch])
    took = time.perf_counter() - start
    for cell, result in zip(batch, out):
      found[cell] = (result, f'{took:.0f} s for {len(batch)} cells'
                     if len(batch) > 1 else f'{took:.0f} s')
    report()
  return results


def table_rows(results: Sequence[dict],
               pairs: Sequence[tuple[str, str]]) -> dict[str, list[dict]]:
  """The Emo-DNA Table 2-3 numbers of finished cells (pure).

  For a task and method, a column (a source corpus with its targets among
  `pairs`, or AVERAGE with all of `pairs`) has, per seed with all of the
  column's pairs finished, the mean of each metric over those pairs; the
  column's entry is the mean and standard deviation (np.std, ddof = 0) of
  these per-seed means, in %.

  Args:
    results: dicts with method, source, target, task, seed and the METRICS
      keys (fractions), e.g. `run_grid`'s.
    pairs: the grid's (source, target) pairs; they fix the columns.

  Returns:
    {task: [{'method': name, 'columns': {column: {metric: (mean, std,
    num_seeds) or None}}}]}, tasks and methods in order of first appearance,
    columns in order of the sources' first appearance in `pairs`, then
    AVERAGE.
  """
  columns = {}
  for source, target in pairs:
    columns.setdefault(source, []).append((source, target))
  columns[AVERAGE] = list(pairs)

  by_key = {}  # (task, method) -> seed -> (source, target) -> result
  for r in results:
    by_key.setdefault((r['task'], r['method']), {}).setdefault(
        r['seed'], {})[(r['source'], r['target'])] = r

  tables = {}
  for (task, method), seeds in by_key.items():
    row = {}
    for column, column_pairs in columns.items():
      complete = [s for s in sorted(seeds)
                  if all(p in seeds[s] for p in column_pairs)]
      row[column] = {}
      for label, key in METRICS:
        values = [[seeds[s][p].get(key) for p in column_pairs]
                  for s in complete]
        if not complete or any(v is None for vs in values for v in vs):
          row[column][label] = None
          continue
        per_seed = [100.0 * np.mean(vs) for vs in values]
        row[column][label] = (float(np.mean(per_seed)),
                              float(np.std(per_seed)), len(complete))
    tables.setdefault(task, []).append({'method': method, 'columns': row})
  return tables


def to_markdown(tables: dict[str, list[dict]],
                pairs: Sequence[tuple[str, str]] = ()) -> str:
  """One markdown table per task: 'mean ± std' per column and metric ('mean'
  where only one seed finished). A source column is headed 'casia → mean'
  (that source averaged over its targets, listed under the table from
  `pairs`)."""
  out = []
  for task, rows in tables.items():
    columns = list(rows[0]['columns'])
    metrics = _shown_metrics(rows)
    head = ['Method'] + [
        f'{c if c == AVERAGE else report.source_column_label(c)} {label}'
        for c in columns for label, _ in metrics]
    out += [f'## {task}', '', '| ' + ' | '.join(head) + ' |',
            '|' + '---|' * len(head)]
    for row in rows:
      cells = [row['method']]
      for c in columns:
        for label, _ in metrics:
          entry = row['columns'][c][label]
          if entry is None:
            cells.append('-')
          elif entry[2] == 1:  # One seed: no spread to show.
            cells.append(f'{entry[0]:.1f}')
          else:
            cells.append(f'{entry[0]:.1f} ± {entry[1]:.1f}')
      out.append('| ' + ' | '.join(cells) + ' |')
    out += ['', 'mean ± std (%) over seeds (one seed: the value alone). '
            + (report.columns_note(pairs) if pairs else
               'Per source: averaged over its targets; Average: over all '
               'pairs.'), '']
  return '\n'.join(out)


def _shown_metrics(rows) -> tuple[tuple[str, str], ...]:
  """METRICS less F1-pos where no cell has it (tasks of 3+ classes)."""
  return tuple(
      (label, key) for label, key in METRICS
      if key != 'positive_class_f1' or any(
          row['columns'][c][label] is not None
          for row in rows for c in row['columns']))


def to_csv(tables: dict[str, list[dict]]) -> str:
  """The same numbers, one row per task and method: per column and metric,
  mean, std and the number of seeds (empty when none finished)."""
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator='\n')
  header_written = False
  for task, rows in tables.items():
    for row in rows:
      columns = list(row['columns'])
      if not header_written:
        writer.writerow(['task', 'method'] + [
            f'{c}_{label}_{stat}' for c in columns for label, _ in METRICS
            for stat in ('mean', 'std', 'seeds')])
        header_written = True
      values = [task, row['method']]
      for c in columns:
        for label, _ in METRICS:
          entry = row['columns'][c][label]
          values += (['', '', 0] if entry is None
                     else [f'{entry[0]:.4f}', f'{entry[1]:.4f}', entry[2]])
      writer.writerow(values)
  return buf.getvalue()


def scenario_table(results: Sequence[dict],
                   pairs: Sequence[tuple[str, str]]) -> str:
  """CAEmoCyGAN Table 3's layout (markdown): per task, a row per method and
  per scenario (source -> target, in `pairs` order) UA and WA in %, mean ±
  std over the finished seeds (the value alone for one seed, '-' for
  none)."""
  by_key = {}
  for r in results:
    by_key.setdefault(r['task'], {}).setdefault(r['method'], {}).setdefault(
        (r['source'], r['target']), []).append(r)
  out = []
  for task, methods in by_key.items():
    head = ['Method'] + [f'{s.replace("+", " + ")} → {t} {m}'
                         for s, t in pairs for m in ('UA', 'WA')]
    out += [f'## {task}', '', '| ' + ' | '.join(head) + ' |',
            '|' + '---|' * len(head)]
    for method, cells in methods.items():
      row = [method]
      for pair in pairs:
        rs = cells.get(pair, [])
        for key in ('uar', 'war'):
          v = [100.0 * r[key] for r in rs]
          row.append('-' if not v else f'{v[0]:.1f}' if len(v) == 1 else
                     f'{np.mean(v):.1f} ± {np.std(v):.1f}')
      out.append('| ' + ' | '.join(row) + ' |')
    out += ['', 'UA = UAR, WA = WAR (%), mean ± std over seeds.', '']
  return '\n'.join(out)


def write_tables(root: str, results: Sequence[dict],
                 pairs: Sequence[tuple[str, str]]) -> None:
  tables = table_rows(results, pairs)
  # Runs that predict one class for everything, listed under the tables.
  collapsed = report.collapsed_markdown(results)
  for name, text in (('table.md', to_markdown(tables, pairs) + collapsed),
                     ('table.csv', to_csv(tables)),
                     ('scenarios.md',
                      scenario_table(results, pairs) + collapsed),
                     (report.PAIRS, report.pair_table(results, pairs))):
    io_lib.write_text(io_lib.join(root, name), text)


def run(methods, pairs, tasks, seeds, root, configs_dir, overrides,
        train_fn=None, pack: int = 0, preset: str | None = None
        ) -> list[dict]:
  """Loads and checks every method's config, then runs the grid (`run_grid`;
  `train_fn` defaults to `jaxser.train.train_many` with `pack` runs per
  program). With `preset` (`jaxser.presets`), its rows are the methods
  (those named in `methods`, if any)."""
  if train_fn is None:
    from jaxser import train  # pylint: disable=g-import-not-at-top
    train_fn = lambda configs, workdirs: train.train_many(configs, workdirs,
                                                          pack=pack)
  if preset:
    from jaxser import presets  # pylint: disable=g-import-not-at-top
    configs = presets.build_configs(preset, configs_dir, overrides,
                                    grid=sys.modules[__name__])
    # --methods with a preset picks some of its rows (e.g. leaving out one
    # known to equal another); the table keeps the preset's order.
    unknown = [m for m in methods or () if m not in configs]
    if unknown:
      raise ValueError(f'--methods: {", ".join(unknown)} not a row of '
                       f'--preset={preset}; its rows: {", ".join(configs)}')
    methods = [m for m in configs if not methods or m in methods]
    configs = {m: configs[m] for m in methods}
  elif not methods:
    raise ValueError('--methods: give the methods (or --preset)')
  else:
    configs = {m: load_config(m, configs_dir) for m in methods}
    apply_overrides(configs, overrides)
  cells = runnable_cells(grid_cells(methods, pairs, tasks, seeds), configs)
  if not cells:
    raise ValueError('--pairs: no cell left to run; a multi-source pair '
                     'joins its sources with + (casia+emovo:urdu)')
  io_lib.makedirs(root)
  results = run_grid(
      cells, root,
      lambda cell: cell_config(configs[cell.method], cell), train_fn,
      on_result=lambda results: write_tables(root, results, pairs))
  # Figures once the grid is done (drawing them after every cell of a large
  # grid would cost seconds per cell); a rerun of a finished grid redraws.
  report.write_grid(root, results, pairs)
  return results


def main(argv):
  del argv
  runtime.setup_process()
  try:
    overrides = [parse_override(s) for s in _SET.value]
    if _STEPS.value is not None:
      overrides.append(('train.steps', str(_STEPS.value)))
    if _DATA_ROOT.value is not None:
      overrides.append(('data.root', _DATA_ROOT.value))
    results = run(_METHODS.value, parse_pairs(_PAIRS.value), _TASKS.value,
                  _SEEDS.value, _WORKDIR.value,
                  _CONFIGS_DIR.value or default_configs_dir(), overrides,
                  pack=_PACK.value, preset=_PRESET.value)
  except ValueError as e:
    # Config and data errors: one line naming the flag, field or file.
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(f'{len(results)} cells; tables in '
        f'{os.path.join(_WORKDIR.value, "table.md")} and table.csv')


if __name__ == '__main__':
  flags.mark_flags_as_required(['pairs', 'workdir'])
  from jaxser import cli  # pylint: disable=g-import-not-at-top
  app.run(main, flags_parser=lambda argv: cli.parse_flags(argv, None))
