"""CASIA Chinese emotional speech (Institute of Automation, CAS), Mandarin.

Layout: `<speaker>/<emotion>/<text-id>.wav`, e.g. `wangzhe/angry/201.wav`; the
public subset has 4 speakers x 6 emotions x 50 texts (1,200 files). Speaker
genders are those of the four actors; other speakers get ''.
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
  if (len(parts) < 3 or parts[-2].lower() not in EMOTIONS
      or not _TEXT.fullmatch(common.stem(rel))):
    return ('not <speaker>/<emotion>/<text-id>.wav with emotion in '
            f'{"/".join(EMOTIONS)}')
  speaker = parts[-3]
  return dict(speaker=speaker, gender=GENDERS.get(speaker.lower(), ''),
              emotion=EMOTIONS[parts[-2].lower()])


@register('casia')
def load(root: str) -> Corpus:
  return common.listing('casia', root, parse, language='zh')
