"""Which F1 is Emo-DNA's? Checks each candidate against its Tables 2-3.

  python benchmarks/emodna_paper_f1.py [PAPER.txt]

For every cell (method, source corpus) of Tables 2 (arousal) and 3 (valence)
it asks whether the printed F1 is reachable, at the printed WAR, by some
binary confusion matrix with the class balance of the source's five target
corpora under Table 1's mapping (their mean), for each candidate F1: of
class 1 (high arousal / positive valence; scikit-learn's default binary F1),
of class 0, macro, weighted, micro, the harmonic mean of WAR and UAR. The
cells are means over five targets, so the check allows 2 points. It also
lists the cells where F1 < WAR / 2, impossible for binary macro-F1 whatever
the class balance. Result (2026-11): only F1 of class 1 fits every cell
(jaxser.metrics.positive_class_f1).
"""
import os
import re
import sys

import numpy as np

PAPER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), '..', '..', 'shared', 'papers',
    'emo-dna-decoupling-and-alignment.txt')
LINES = open(PAPER).read().split('\n')
SOURCES = ['CASIA', 'EMODB', 'EMOVO', 'IEMOCAP', 'RAVDESS', 'SAVEE']
# Class 1's (high arousal / positive valence) share of each corpus under
# Table 1: CASIA 6 x 200; EmoDB's counts; EMOVO 7 x 84; IEMOCAP's usual four
# classes (neutral 1708, happy + excited 1636, sad 1084, angry 1103);
# RAVDESS neutral 96 + 7 x 192; SAVEE neutral 120 + 6 x 60.
SHARE = {
    'arousal': dict(CASIA=800 / 1200, EMODB=313 / 535, EMOVO=5 / 7,
                    IEMOCAP=2739 / 5531, RAVDESS=960 / 1440,
                    SAVEE=300 / 480),
    'valence': dict(CASIA=600 / 1200, EMODB=150 / 535, EMOVO=3 / 7,
                    IEMOCAP=3344 / 5531, RAVDESS=672 / 1440,
                    SAVEE=240 / 480)}
KEYS = ['f1_class1', 'f1_class0', 'macro', 'weighted', 'micro',
        'hm_war_uar']


def table(caption):
  """[(method, [WAR, F1] x 6 sources + average)] of a table's rows (means)."""
  start = next(i for i, l in enumerate(LINES) if l.startswith(caption))
  out = []
  for line in LINES[start:start + 14]:
    numbers = [float(x) for x in re.findall(r'\d+\.\d', line)]
    if len(numbers) == 28:  # 14 cells of mean +- std.
      out.append((line.split('\t')[0], numbers[0::2]))
  return out


def metrics(pi, tp, tn):
  """The candidates for a binary confusion matrix (fractions of the total;
  pi the share of class 1)."""
  fp, fn = (1 - pi) - tn, pi - tp
  f1p = 2 * tp / max(2 * tp + fp + fn, 1e-9)
  f1n = 2 * tn / max(2 * tn + fp + fn, 1e-9)
  acc, uar = tp + tn, (tp / pi + tn / (1 - pi)) / 2
  return dict(f1_class1=f1p, f1_class0=f1n, macro=(f1p + f1n) / 2,
              weighted=pi * f1p + (1 - pi) * f1n, micro=acc,
              hm_war_uar=2 * acc * uar / max(acc + uar, 1e-9))


def reachable(pi, acc, key):
  """(min, max) of a candidate over the matrices with this accuracy."""
  lo, hi = max(0, acc - (1 - pi)), min(pi, acc)
  if lo > hi:
    return None
  v = [metrics(pi, tp, acc - tp)[key] for tp in np.linspace(lo, hi, 2001)]
  return min(v), max(v)


for task, caption in (('arousal', 'Table 2:'), ('valence', 'Table 3:')):
  bad, cells, low = {k: [] for k in KEYS}, 0, []
  for name, nums in table(caption):
    for j, src in enumerate(SOURCES):
      war, f1 = nums[2 * j] / 100, nums[2 * j + 1] / 100
      pi = np.mean([SHARE[task][t] for t in SOURCES if t != src])
      cells += 1
      if f1 < war / 2:
        low.append(f'{name}/{src} WAR {100 * war:.1f} F1 {100 * f1:.1f}')
      for k in KEYS:
        r = reachable(pi, war, k)
        if r is None or not r[0] - 0.02 <= f1 <= r[1] + 0.02:
          bad[k].append(f'{name}/{src} WAR {100 * war:.1f} F1 '
                        f'{100 * f1:.1f}' + (
                            f' (reachable {100 * r[0]:.1f}-{100 * r[1]:.1f})'
                            if r else ''))
  print(f'{task}: {cells} cells; out of reach (2 points allowed) at the mean '
        'class balance of the targets:')
  for k in KEYS:
    print(f'  {k:11s} {len(bad[k]):3d}' + (f'  e.g. {bad[k][0]}' if bad[k]
                                          else ''))
  # Binary macro-F1 >= 2a / (1 + a) / 2 >= a / 2 per target, hence also for
  # means over targets, whatever the class balance.
  print(f'  F1 < WAR / 2 (impossible for macro-F1): {"; ".join(low) or "-"}')
