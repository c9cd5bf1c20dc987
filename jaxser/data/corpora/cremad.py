"""CREMA-D (Cao et al. 2014), English.

Layout: `AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`, e.g.
`AudioWAV/1001_DFA_ANG_XX.wav`: actor 1001-1091, emotion ANG DIS FEA HAP NEU
SAD, level LO MD HI XX. The actors' sex comes from `VideoDemographics.csv`
(columns ActorID, Sex), found anywhere below the root; without it gender is ''.

Repairs (`common`): a letter-case change (`1001_dfa_ang_xx`) and an extra
suffix (`1001_DFA_ANG_XX (1)`, `1001_DFA_ANG_XX_16k`).
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'ANG': 'angry', 'DIS': 'disgust', 'FEA': 'fear', 'HAP': 'happy',
            'NEU': 'neutral', 'SAD': 'sad'}
_NAME = re.compile(r'(\d+)_([A-Z]+)_([A-Z]{3})_([A-Z]+)', re.IGNORECASE)


def demographics(root: str) -> dict[str, str]:
  """Actor id -> 'm' / 'f' from the first VideoDemographics.csv below root."""
  tables = common.find(root, 'VideoDemographics.csv')
  if not tables:
    return {}
  sex = {}
  for row in common.read_table(tables[0]):
    code = row.get('sex', '')[:1].lower()
    if row.get('actorid') and code in ('m', 'f'):
      sex[row['actorid']] = code
  return sex


@register('cremad')
def load(root: str) -> Corpus:
  sex = demographics(root)

  def parse(rel: str) -> dict | str:
    m, suffix = common.match_name(_NAME, common.stem(rel))
    if not m or m.group(3).upper() not in EMOTIONS:
      return ('not <actor>_<sentence>_<emotion>_<level>.wav with emotion in '
              f'{"/".join(EMOTIONS)}')
    actor = m.group(1)
    canonical = m.group(0).upper()
    return common.repaired(
        dict(speaker=actor, gender=sex.get(actor, ''),
             emotion=EMOTIONS[m.group(3).upper()]),
        common.join_reasons(common.case_reason(m.group(0), canonical),
                            suffix), canonical)

  return common.listing('cremad', root, parse, language='en')
