"""Berlin EmoDB (Burkhardt et al. 2005), German.

Layout: `wav/<spk><text><E><version>.wav`, e.g. `wav/03a01Fa.wav`: speaker =
characters 1-2, text = 3-5, emotion letter = 6 (W anger, L boredom, E
disgust, A fear, F happiness, T sadness, N neutral), version = 7. Male
speakers are 03 10 11 12 15, female 08 09 13 14 16.

Every speaker says the same ten German sentences, known by their text code
(the corpus's documentation, `SENTENCES`); an utterance's `text` is its
code's sentence ('' for a code not among the ten).

Repairs (`common`): a letter-case change (`03A01FA`, `03a01fa`: the scheme
is position-coded, so the case carries nothing) and an extra suffix
(`03a01Fa (1)`, `03a01Fa_16k`).
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'W': 'angry', 'L': 'boredom', 'E': 'disgust', 'A': 'fear',
            'F': 'happy', 'T': 'sad', 'N': 'neutral'}
MALE = frozenset({'03', '10', '11', '12', '15'})
FEMALE = frozenset({'08', '09', '13', '14', '16'})
SENTENCES = {
    'a01': 'Der Lappen liegt auf dem Eisschrank.',
    'a02': 'Das will sie am Mittwoch abgeben.',
    'a04': 'Heute abend könnte ich es ihm sagen.',
    'a05': 'Das schwarze Stück Papier befindet sich da oben neben dem '
           'Holzstück.',
    'a07': 'In sieben Stunden wird es soweit sein.',
    'b01': 'Was sind denn das für Tüten, die da unter dem Tisch stehen?',
    'b02': 'Sie haben es gerade hochgetragen und jetzt gehen sie wieder '
           'runter.',
    'b03': 'An den Wochenenden bin ich jetzt immer nach Hause gefahren und '
           'habe Agnes besucht.',
    'b09': 'Ich will das eben wegbringen und dann mit Karl was trinken gehen.',
    'b10': 'Die wird auf dem Platz sein, wo wir sie immer hinlegen.',
}
# Any letter case; the canonical one is lower, upper (emotion), lower.
_NAME = re.compile(r'(\d\d)([a-z]\d\d)([WLEAFTN])([a-z])', re.IGNORECASE)


def parse(rel: str) -> dict | str:
  m, suffix = common.match_name(_NAME, common.stem(rel))
  if not m:
    return 'not <spk><text><W|L|E|A|F|T|N><version>.wav (e.g. 03a01Fa.wav)'
  speaker, text = m.group(1), m.group(2).lower()
  emotion = m.group(3).upper()
  canonical = f'{speaker}{text}{emotion}{m.group(4).lower()}'
  gender = 'm' if speaker in MALE else 'f' if speaker in FEMALE else ''
  return common.repaired(
      dict(speaker=speaker, gender=gender, emotion=EMOTIONS[emotion],
           text=SENTENCES.get(text, '')),
      common.join_reasons(common.case_reason(m.group(0), canonical), suffix),
      canonical)


@register('emodb')
def load(root: str) -> Corpus:
  return common.listing('emodb', root, parse, language='de')
