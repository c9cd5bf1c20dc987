"""SAVEE (Haq & Jackson 2009), British English, four male speakers.

Layout, either as distributed, `AudioData/<DC|JE|JK|KL>/<code><nn>.wav` (e.g.
`AudioData/DC/sa01.wav`), or flattened, `<SPK>_<code><nn>.wav` (e.g.
`DC_sa01.wav`, or without the underscore, `DCsa01.wav`), with codes a
anger, d disgust, f fear, h happiness, n neutral, sa sadness, su surprise.

Repairs (`common`): a letter-case change of the code (`DC/A01.wav`) and an
extra suffix (`DC/a01 (1).wav`).
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'a': 'angry', 'd': 'disgust', 'f': 'fear', 'h': 'happy',
            'n': 'neutral', 'sa': 'sad', 'su': 'surprise'}
SPEAKERS = ('DC', 'JE', 'JK', 'KL')
_NAME = re.compile(r'(?:(DC|JE|JK|KL)(_?))?(sa|su|a|d|f|h|n)(\d\d)',
                   re.IGNORECASE)


def parse(rel: str) -> dict | str:
  m, suffix = common.match_name(_NAME, common.stem(rel))
  parts = rel.split('/')
  speaker = (m.group(1) if m and m.group(1)
             else parts[-2] if len(parts) > 1 else '').upper()
  if not m or speaker not in SPEAKERS:
    return ('not <DC|JE|JK|KL>/<code><nn>.wav or <SPK>_<code><nn>.wav with '
            f'code in {"/".join(EMOTIONS)}')
  code = m.group(3)
  prefix = f'{speaker}{m.group(2)}' if m.group(1) else ''
  canonical = f'{prefix}{code.lower()}{m.group(4)}'
  return common.repaired(
      dict(speaker=speaker, gender='m', emotion=EMOTIONS[code.lower()]),
      common.join_reasons(common.case_reason(m.group(0), canonical), suffix),
      canonical)


@register('savee')
def load(root: str) -> Corpus:
  return common.listing('savee', root, parse, language='en')
