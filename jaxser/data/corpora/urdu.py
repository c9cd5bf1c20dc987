"""URDU (Latif et al. 2018), Urdu talk-show speech.

Layout: `<Emotion>/S<G><id>_F<n>_<E><k>.wav`, e.g. `Angry/SM1_F19_A019.wav`:
speaker `S<G><id>` (G = M or F gives the gender), emotion letter E (A angry,
H happy, N neutral, S sad). The letter is authoritative; the folder is
optional but must agree with it when it names an emotion.

Repairs (`common`): a letter-case change (`sm1_f19_a019`), an extra suffix
(`SM1_F19_A019 (1)`) and a speaker prefix shortened by its `S` (`M1_F19_A019`:
the gender letter and number still name the speaker).
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'A': 'angry', 'H': 'happy', 'N': 'neutral', 'S': 'sad'}
_NAME = re.compile(r'(S?)(([MF])\d+)_(F\d+)_(([AHNS])\d+)', re.IGNORECASE)


def parse(rel: str) -> dict | str:
  m, suffix = common.match_name(_NAME, common.stem(rel))
  if not m:
    return 'not <Emotion>/S<M|F><id>_F<n>_<A|H|N|S><k>.wav'
  s, spk, gender, file_no, utt = m.groups()[:5]
  emotion = EMOTIONS[m.group(6).upper()]
  speaker = f'S{spk}'.upper()
  canonical = f'{speaker}_{file_no}_{utt}'.upper()
  shortened = None if s else f'speaker prefix {spk!r} for {speaker!r}'
  written = f'S{m.group(0)}' if not s else m.group(0)
  return common.folder_conflict(rel, emotion) or common.repaired(
      dict(speaker=speaker, gender=gender.lower(), emotion=emotion),
      common.join_reasons(shortened, common.case_reason(written, canonical),
                          suffix), canonical)


@register('urdu')
def load(root: str) -> Corpus:
  return common.listing('urdu', root, parse, language='ur')
