"""CASIA Chinese emotional speech (Institute of Automation, CAS), Mandarin.

Layout: `<speaker>/<emotion>/<text-id>.wav`, e.g. `wangzhe/angry/201.wav`; the
public subset has 4 speakers x 6 emotions x 50 texts (1,200 files). Speaker
genders are those of the four actors; other speakers get ''.

Repairs (`common`): an extra suffix after the text id (`201 (1).wav`,
`201_16k.wav`); the emotion folder is read in any letter case.
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'angry': 'angry', 'fear': 'fear', 'happy': 'happy',
            'neutral': 'neutral', 'sad': 'sad', 'surprise': 'surprise'}
GENDERS = {'liuchanhg': 'f', 'wangzhe': 'm', 'zhaoquanyin': 'f',
           'zhaozuoxiang': 'm'}
_TEXT = re.compile(r'\d+')


def parse(rel: str) -> dict | str:
  parts = rel.split('/')
  m, suffix = common.match_name(_TEXT, common.stem(rel))
  if len(parts) < 3 or parts[-2].lower() not in EMOTIONS or not m:
    return ('not <speaker>/<emotion>/<text-id>.wav with emotion in '
            f'{"/".join(EMOTIONS)}')
  speaker = parts[-3]
  return common.repaired(
      dict(speaker=speaker, gender=GENDERS.get(speaker.lower(), ''),
           emotion=EMOTIONS[parts[-2].lower()]), suffix, m.group(0))


@register('casia')
def load(root: str) -> Corpus:
  return common.listing('casia', root, parse, language='zh')
