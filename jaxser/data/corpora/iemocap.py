"""IEMOCAP (Busso et al. 2008), English dyadic sessions.

Layout (as distributed in IEMOCAP_full_release/):
  Session<k>/sentences/wav/<dialog>/<utterance>.wav
  Session<k>/dialog/EmoEvaluation/<dialog>.txt
  Session<k>/dialog/transcriptions/<dialog>.txt
An evaluation file holds one line per utterance,
  [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
with the consensus category and the mean ratings in the order valence,
activation (arousal), dominance, on a 1-5 scale (`dim_scale` 'iemocap').
A transcription file holds one line per turn,
  Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
whose text (as written, bracketed events like [LAUGHTER] included, runs of
whitespace made one space) is the utterance's `text`; an utterance without a
line keeps text ''.

The speaker of an utterance is the gender letter before its 3-digit index
(Ses01F_impro01_M013 is the male actor of session 1: speaker Ses01_M, gender
m), not the dialog's Ses01F token, which names who wore the motion capture.

Categories neu hap exc sad ang fru sur fea dis oth map to neutral, happy,
excited, sad, angry, frustrated, surprise, fear, disgust, other; xxx (no
majority) leaves the utterance without a category but with its ratings.
Whole-dialog recordings (dialog/wav/) and utterances missing from every
evaluation file are reported as unrecognised.

Repairs (`common`): a file whose name is an evaluated utterance id but for
its letter case (`ses01f_impro01_f000`) or followed by an extra suffix
(`Ses01F_impro01_F000_16k`) is that utterance.
"""

from __future__ import annotations

import os
import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'neu': 'neutral', 'hap': 'happy', 'exc': 'excited', 'sad': 'sad',
            'ang': 'angry', 'fru': 'frustrated', 'sur': 'surprise',
            'fea': 'fear', 'dis': 'disgust', 'oth': 'other', 'xxx': None}
_UTTERANCE = re.compile(r'(Ses\d\d)[FM]_.+_([FM])\d{3}')
_LINE = re.compile(r'\[[^\]]*\]\s+(\S+)\s+(\w+)\s+\[([^\]]*)\]')
_DIMS = ('valence', 'arousal', 'dominance')
_TRANSCRIPT = re.compile(r'(\S+)\s*\[[^\]]*\]\s*:\s*(.*)')


def evaluations(root: str) -> dict[str, tuple[str | None, dict[str, float]]]:
  """Utterance id -> (category, ratings) from every EmoEvaluation/*.txt."""
  out = {}
  for rel in common.walk(root):
    parts = rel.split('/')
    if len(parts) < 2 or parts[-2] != 'EmoEvaluation' or not rel.endswith(
        '.txt') or parts[-1].startswith('._'):
      continue
    with open(os.path.join(root, rel), encoding='utf-8',
              errors='replace') as f:
      for line in f:
        m = _LINE.match(line)
        if m and m.group(2) in EMOTIONS:
          values = [v.strip() for v in m.group(3).split(',')]
          out[m.group(1)] = (EMOTIONS[m.group(2)],
                             common.ratings(dict(zip(_DIMS, values))))
  return out


def transcriptions(root: str) -> dict[str, str]:
  """Utterance id -> transcript from every dialog/transcriptions/*.txt."""
  out = {}
  for rel in common.walk(root):
    parts = rel.split('/')
    if len(parts) < 2 or parts[-2] != 'transcriptions' or not rel.endswith(
        '.txt') or parts[-1].startswith('._'):
      continue
    with open(os.path.join(root, rel), encoding='utf-8',
              errors='replace') as f:
      for line in f:
        m = _TRANSCRIPT.fullmatch(line.strip())
        if m:
          out[m.group(1)] = ' '.join(m.group(2).split())
  return out


@register('iemocap')
def load(root: str) -> Corpus:
  labels = evaluations(root)
  texts = transcriptions(root)
  keys = {k.lower(): k for k in labels}

  def parse(rel: str) -> dict | str:
    name = common.stem(rel)
    utt, reason = common.table_key(name, keys)
    m = (_UTTERANCE.fullmatch(utt) if utt else
         common.match_name(_UTTERANCE, name)[0])
    if not m:
      return ('not Session<k>/sentences/wav/<dialog>/<utterance>.wav with an '
              'utterance id like Ses01F_impro01_M013')
    if utt is None:
      return 'utterance has no line in any dialog/EmoEvaluation/*.txt'
    emotion, dims = labels[utt]
    gender = m.group(2)
    return common.repaired(
        dict(speaker=f'{m.group(1)}_{gender}', gender=gender.lower(),
             emotion=emotion, dims=dims, text=texts.get(utt, '')),
        reason, utt)

  return common.listing('iemocap', root, parse, language='en',
                        dim_scale='iemocap')
