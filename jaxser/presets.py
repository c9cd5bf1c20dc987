"""Paper tables as grid presets: each row of a table is a grid "method".

  python -m jaxser.grid --preset=emodna_table4 --pairs=casia:emovo,emovo:casia \
      --tasks=arousal --seeds=3 --workdir=DIR --data_root=../shared/corpora

A row is the config it starts from (configs/<config>.py), the overrides that
make it the row (dotted config fields with values as text, as `--set`), and
its name: the table's row and the row's folder (DIR/<task>/<name>/...).
`build_configs` returns {row name: config}, ready for the grid's cells.

The rows (Emo-DNA's switches: `jaxser.methods.emodna`):
  emodna_table4  Table 4: V1 source-only; V2 w/o L_decouple + L_align (the
                 corpus encoder alone); V3 w/o L_decouple; V4 w/o L_align
                 (no MK-MMD, no L_SCL); V5 w/o Decoupling (no corpus encoder,
                 L_corpus or L_decouple); Emo-DNA. The row labels as the
                 table prints them (its prose swaps V3 and V4).
  emodna_table5  Table 5: DANN, DAN, JAN, CDAN, BSP, each without and with
                 + alpha_1 L_SCL (`<method>.scl_weight` = 0.1, Emo-DNA's
                 alpha_1; the paper does not give the weight it used).
  emodna_table6  Table 6: w/o L_SCL, w/o threshold (every target row
                 pseudo-labelled), fixed threshold 0.9, adaptive (Emo-DNA).
  emodna_terms   Not a paper table: Emo-DNA less one term at a time (MK-MMD,
                 L_SCL, L_decouple, the corpus encoder with L_corpus and
                 L_decouple), for finding which term does what.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import ml_collections


@dataclasses.dataclass(frozen=True)
class Row:
  """One row of a preset."""
  name: str  # Table row and folder name.
  config: str  # configs/<config>.py.
  overrides: tuple[tuple[str, str], ...] = ()  # (dotted field, value text).
  paper: str = ''  # The paper's label of the row.


def _scl(method: str) -> Row:
  return Row(f'{method}_scl', method, ((f'{method}.scl_weight', '0.1'),),
             f'{method.upper()} + L_SCL')


PRESETS: dict[str, tuple[Row, ...]] = {
    'emodna_table4': (
        Row('v1_source_only', 'source_only', (), 'V1: Source-only'),
        Row('v2_no_decouple_align', 'emodna',
            (('emodna.decouple', 'False'), ('emodna.mmd', 'False'),
             ('emodna.scl', 'False')), 'V2: w/o L_decouple + L_align'),
        Row('v3_no_decouple', 'emodna', (('emodna.decouple', 'False'),),
            'V3: w/o L_decouple'),
        Row('v4_no_align', 'emodna',
            (('emodna.mmd', 'False'), ('emodna.scl', 'False')),
            'V4: w/o L_align'),
        Row('v5_no_decoupling', 'emodna',
            (('emodna.corpus_encoder', 'False'),
             ('emodna.decouple', 'False')), 'V5: w/o Decoupling'),
        Row('emodna', 'emodna', (), 'Emo-DNA'),
    ),
    'emodna_table5': tuple(
        row for m in ('dann', 'dan', 'jan', 'cdan', 'bsp')
        for row in (Row(m, m, (), m.upper()), _scl(m))),
    'emodna_table6': (
        Row('emodna_no_scl', 'emodna', (('emodna.scl', 'False'),),
            'w/o L_SCL'),
        Row('emodna_no_threshold', 'emodna', (('emodna.threshold', 'none'),),
            'w/o threshold'),
        Row('emodna_fixed_threshold', 'emodna',
            (('emodna.threshold', 'fixed'),
             ('emodna.fixed_threshold', '0.9')), 'Fixed threshold'),
        Row('emodna', 'emodna', (), 'Adaptive threshold'),
    ),
    'emodna_terms': (
        Row('emodna', 'emodna', (), 'Emo-DNA'),
        Row('emodna_no_mmd', 'emodna', (('emodna.mmd', 'False'),),
            'w/o MK-MMD'),
        Row('emodna_no_scl', 'emodna', (('emodna.scl', 'False'),),
            'w/o L_SCL'),
        Row('emodna_no_decouple', 'emodna', (('emodna.decouple', 'False'),),
            'w/o L_decouple'),
        Row('emodna_no_corpus', 'emodna',
            (('emodna.corpus_encoder', 'False'),
             ('emodna.decouple', 'False')),
            'w/o E_c, L_corpus, L_decouple'),
    ),
}

def names() -> list[str]:
  return sorted(PRESETS)


def rows(preset: str) -> tuple[Row, ...]:
  """The rows of `preset`; a one-line ValueError naming --preset if unknown."""
  if preset not in PRESETS:
    raise ValueError(f'--preset: unknown preset {preset!r}; known: '
                     f'{", ".join(names())}')
  return PRESETS[preset]


def build_configs(preset: str, configs_dir: str,
                  overrides: Sequence[tuple[str, str]] = (), grid=None
                  ) -> dict[str, ml_collections.ConfigDict]:
  """{row name: config} of `preset`, in table order.

  Each row's config is configs_dir/<row.config>.py with first `overrides`
  (the grid's --set, --steps, --data_root: each key must be in at least one
  row's config) and then the row's own overrides applied, so a row stays
  what it is whatever --set says.

  `grid` is the jaxser.grid module to load configs with: the grid passes
  itself, since under `python -m jaxser.grid` a second import of
  jaxser.grid would define its flags twice.

  Raises:
    ValueError: an unknown preset, config or field (one line).
  """
  if grid is None:
    # Imported here: jaxser.grid imports this module.
    from jaxser import grid  # pylint: disable=g-import-not-at-top,redefined-outer-name
  configs = {row.name: grid.load_config(row.config, configs_dir)
             for row in rows(preset)}
  grid.apply_overrides(configs, overrides)
  for row in rows(preset):
    grid.apply_overrides({row.name: configs[row.name]}, row.overrides)
  return configs


def describe(preset: str) -> str:
  """One line per row: name, the paper's label, config and overrides."""
  lines = []
  for row in rows(preset):
    sets = ' '.join(f'{k}={v}' for k, v in row.overrides)
    lines.append(f'{row.name:24s} {row.paper:32s} configs/{row.config}.py'
                 + (f' {sets}' if sets else ''))
  return '\n'.join(lines)

