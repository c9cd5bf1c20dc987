"""MSP-Podcast and MSP-IMPROV (Busso et al.), English.

MSP-Podcast (`msp_podcast`), as distributed:
  Audios/<FileName>.wav, e.g. Audios/MSP-Podcast_0001_0008.wav
  Labels/labels_consensus.csv with columns FileName, EmoClass, EmoAct, EmoVal,
    EmoDom, SpkrID, Gender, Split_Set
  Transcripts/<FileName stem>.txt (optional), e.g.
    Transcripts/MSP-Podcast_0001_0008.txt: the utterance's transcript
EmoClass A S H U F D C N O X is angry, sad, happy, surprise, fear, disgust,
contempt (no canonical name: 'other'), neutral, other, and no agreement
(no category). Ratings are on a 1-7 scale (`dim_scale` 'msp_podcast');
Split_Set (Train, Development, Test1, ...) is the partition, lower-cased;
SpkrID 'Unknown' gives speaker ''. Audio files the table does not list are
reported as unrecognised. A transcript file (matched to the audio by name,
ignoring case; runs of whitespace made one space) gives the utterance's
`text`; without one it is ''.

MSP-IMPROV (`msp_improv`). Assumed layout, the one the corpus is distributed
in:
  Audio/session<k>/<S..>/<type>/MSP-IMPROV-S01A-F01-P-FM01.wav
  Evaluation.txt (anywhere below the root)
The name's tokens are the target sentence and emotion (S01A), the speaker
(F01: the letter is the speaker's sex, the digits the session), the
recording type (P natural interaction, R read, S improvised target sentence,
T other improvisation) and the turn. Evaluation.txt holds, per utterance, a
consensus line
  UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:2.600000; V:2.400000; D:3.000000 ; N:...
(the category letter A angry, H happy, S sad, N neutral, O other, X no
agreement, and the mean arousal, valence and dominance ratings on a 1-5
scale, `dim_scale` 'msp_improv'), followed by each rater's line, which is
ignored. The 'UTD-' video names key the 'MSP-' audio names by the tokens
after the prefix. Audio files without a consensus line are reported as
unrecognised. Ratings are kept as written: one public loader reverses the
arousal scale (6 - A), holding that the file stores it high to low; the
corpus's documentation was not at hand to confirm either reading. No
transcripts are read for MSP-IMPROV (their layout in the distribution was
not at hand either): its utterances have text ''.

Repairs (`common`), both corpora: a file named as the table names an
utterance but for its letter case (`MSP-PODCAST_0001_0008` for
`MSP-Podcast_0001_0008`) or with an extra suffix (`..._0008 (1)`) is that
utterance; MSP-IMPROV's also without its `MSP-IMPROV-` prefix or with it
shortened (`S01A-F01-P-FM01`, `IMPROV-S01A-...`): the tokens after it name
the utterance.
"""

from __future__ import annotations

import os
import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import CorpusError
from jaxser.data.corpus import register

PODCAST_EMOTIONS = {'A': 'angry', 'S': 'sad', 'H': 'happy', 'U': 'surprise',
                    'F': 'fear', 'D': 'disgust', 'C': 'other', 'N': 'neutral',
                    'O': 'other', 'X': None}
IMPROV_EMOTIONS = {'A': 'angry', 'H': 'happy', 'S': 'sad', 'N': 'neutral',
                   'O': 'other', 'X': None}
_GENDERS = {'male': 'm', 'female': 'f'}
_IMPROV_NAME = re.compile(r'(?:MSP|UTD)-IMPROV-(S\d\d[A-Z]-([FM])\d\d-[A-Z]-'
                          r'[A-Z0-9]+)', re.IGNORECASE)
# An audio name whose prefix may be missing or shortened.
_IMPROV_AUDIO = re.compile(r'((?:(?:MSP|UTD)-)?(?:IMPROV-)?)(S\d\d[A-Z]-([FM])'
                           r'\d\d-[A-Z]-[A-Z0-9]+)', re.IGNORECASE)
_IMPROV_PREFIXES = ('MSP-IMPROV-', 'UTD-IMPROV-')
_IMPROV_LINE = re.compile(r'(UTD-IMPROV-\S+)\.avi;\s*([A-Z]);\s*A:\s*(\S+?)\s*;'
                          r'\s*V:\s*(\S+?)\s*;\s*D:\s*(\S+?)\s*;')


def _one(root: str, name: str, corpus: str) -> str:
  """The annotation file `name` below `root`; the corpus is useless without."""
  found = common.find(root, name)
  if not found:
    raise CorpusError(f'corpus {corpus!r}: no {name} below {root!r}; its '
                      'labels, speakers and partitions come from it')
  return found[0]


def podcast_transcripts(root: str) -> dict[str, str]:
  """Lower-cased file stem -> transcript, from every Transcripts/*.txt."""
  out = {}
  for rel in common.walk(root):
    parts = rel.split('/')
    if (len(parts) < 2 or parts[-2].lower() != 'transcripts'
        or not rel.lower().endswith('.txt') or parts[-1].startswith('._')):
      continue
    with open(os.path.join(root, rel), encoding='utf-8-sig',
              errors='replace') as f:
      out[common.stem(rel).lower()] = ' '.join(f.read().split())
  return out


@register('msp_podcast')
def load_podcast(root: str) -> Corpus:
  texts = podcast_transcripts(root)
  rows = {}
  for row in common.read_table(_one(root, 'labels_consensus.csv',
                                    'msp_podcast')):
    rows[common.stem(row.get('filename', ''))] = row
  keys = {k.lower(): k for k in rows}

  def parse(rel: str) -> dict | str:
    key, reason = common.table_key(common.stem(rel), keys)
    if key is None:
      return 'not listed in Labels/labels_consensus.csv'
    return common.repaired(fields(key, rows[key]), reason, key)

  def fields(key: str, row: dict) -> dict:
    speaker = row.get('spkrid', '')
    return dict(
        speaker='' if speaker.lower() in ('', 'unknown') else speaker,
        gender=_GENDERS.get(row.get('gender', '').lower(), ''),
        emotion=PODCAST_EMOTIONS.get(row.get('emoclass', '').upper()),
        dims=common.ratings({'arousal': row.get('emoact'),
                             'valence': row.get('emoval'),
                             'dominance': row.get('emodom')}),
        partition=row.get('split_set', '').lower(),
        text=texts.get(key.lower(), ''))

  return common.listing('msp_podcast', root, parse, language='en',
                        dim_scale='msp_podcast')


def improv_evaluations(path: str) -> dict[str, dict]:
  """Utterance key (name after the prefix) -> category and ratings."""
  out = {}
  with open(path, encoding='utf-8', errors='replace') as f:
    for line in f:
      m = _IMPROV_LINE.match(line.strip())
      name = _IMPROV_NAME.fullmatch(m.group(1)) if m else None
      if name and m.group(2) in IMPROV_EMOTIONS:
        out[name.group(1).upper()] = dict(
            emotion=IMPROV_EMOTIONS[m.group(2)],
            dims=common.ratings({'arousal': m.group(3),
                                 'valence': m.group(4),
                                 'dominance': m.group(5)}))
  return out


@register('msp_improv')
def load_improv(root: str) -> Corpus:
  labels = improv_evaluations(_one(root, 'Evaluation.txt', 'msp_improv'))

  def parse(rel: str) -> dict | str:
    m, suffix = common.match_name(_IMPROV_AUDIO, common.stem(rel))
    if not m:
      return 'not MSP-IMPROV-S<nn><E>-<F|M><nn>-<type>-<turn>.wav'
    key = m.group(2).upper()
    fields = labels.get(key)
    if fields is None:
      return 'utterance has no consensus line in Evaluation.txt'
    speaker = key.split('-')[1]
    prefix = m.group(1)
    if prefix.upper() in _IMPROV_PREFIXES:
      canonical = f'{prefix.upper()}{key}'
      written = f'{prefix}{m.group(2)}'
      shortened = None
    else:
      canonical = f'MSP-IMPROV-{key}'
      written = f'MSP-IMPROV-{m.group(2)}'
      shortened = (f'prefix {prefix!r} for \'MSP-IMPROV-\'' if prefix
                   else 'no MSP-IMPROV- prefix')
    return common.repaired(
        dict(speaker=speaker, gender=m.group(3).lower(), **fields),
        common.join_reasons(shortened, common.case_reason(written, canonical),
                            suffix), canonical)

  return common.listing('msp_improv', root, parse, language='en',
                        dim_scale='msp_improv')
