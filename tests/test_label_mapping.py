"""DIFL's Table 1 label mapping (`data.label_from`, `data.category_map`) on
fixture trees with the corpora's real category counts, against the counts
the paper prints; and each paper's config choosing its own mapping.

The fixture files are empty: listing and labelling never read audio.
"""

import collections
import os

import pytest

from jaxser import config as config_lib
from jaxser.data import corpus as corpus_lib
from jaxser.data import labels
from jaxser.data.corpus import Utterance

CONFIGS = os.path.join(os.path.dirname(__file__), '..', 'configs')

# Emo-DB's 535 utterances per emotion letter (Burkhardt et al. 2005).
EMODB_COUNTS = {'W': 127, 'L': 81, 'E': 46, 'A': 69, 'F': 71, 'T': 62,
                'N': 79}
# SAVEE: 60 per emotion, 120 neutral, 4 speakers.
SAVEE_COUNTS = {'a': 60, 'd': 60, 'f': 60, 'h': 60, 'n': 120, 'sa': 60,
                'su': 60}
# IEMOCAP's four classes as DIFL counts them (5531; happy + excited 1636),
# plus categories DIFL leaves out.
IEMOCAP_COUNTS = {'neu': 1708, 'hap': 595, 'exc': 1041, 'sad': 1084,
                  'ang': 1103, 'fru': 30, 'sur': 7, 'fea': 4, 'dis': 2,
                  'oth': 3, 'xxx': 5}
# MSP-IMPROV consensus categories (scaled down) and its no-agreement ones.
IMPROV_COUNTS = {'A': 8, 'H': 26, 'S': 9, 'N': 35, 'O': 2, 'X': 4}


def _touch(root, rel, text=None):
  path = os.path.join(root, rel)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(text or '')


def _emodb(root):
  for letter, n in EMODB_COUNTS.items():
    for i in range(n):
      spk = ('03', '08', '09', '10', '11', '12', '13', '14', '15', '16')[i % 10]
      _touch(root, f'wav/{spk}{"ab"[i // 50 % 2]}{i % 50:02d}{letter}'
             f'{chr(97 + i // 100)}.wav')


def _savee(root):
  for code, n in SAVEE_COUNTS.items():
    for i in range(n):
      _touch(root, f'AudioData/{("DC", "JE", "JK", "KL")[i % 4]}/'
             f'{code}{i // 4 + 1:02d}.wav')


def _iemocap(root):
  lines = []
  k = 0
  for code, n in IEMOCAP_COUNTS.items():
    for _ in range(n):
      utt = f'Ses01F_impro01_{"FM"[k % 2]}{k:03d}' if k < 1000 else (
          f'Ses0{k // 1000 + 1}F_impro01_{"FM"[k % 2]}{k % 1000:03d}')
      # Ratings that disagree with the category, so that label_from shows.
      lines.append(f'[0.0 - 1.0]\t{utt}\t{code}\t[4.5, 1.5, 3.0]')
      session = utt[3:5]
      _touch(root, f'Session{int(session)}/sentences/wav/{utt[:14]}/{utt}.wav')
      k += 1
  _touch(root, 'Session1/dialog/EmoEvaluation/all.txt', '\n'.join(lines))


def _improv(root):
  lines, k = [], 0
  for code, n in IMPROV_COUNTS.items():
    for _ in range(n):
      key = f'S{k % 20 + 1:02d}{"AHSN"[k % 4]}-F01-P-FM{k:02d}'
      lines.append(f'UTD-IMPROV-{key}.avi; {code}; A:1.5; V:4.5; D:3.0; N:5')
      _touch(root, f'Audio/session1/{key[:4]}/P/MSP-IMPROV-{key}.wav')
      k += 1
  _touch(root, 'Evaluation.txt', '\n'.join(lines) + '\n')


def _counts(corpus, task, opts):
  c = collections.Counter(labels.label(task, u, corpus.dim_scale, **opts)
                          for u in corpus.utterances)
  return ({name: c[i] for i, name in enumerate(labels.TASK_CLASSES[task])},
          c[None])


@pytest.fixture(scope='module')
def difl_options():
  return labels.options(config_lib.load(
      os.path.join(CONFIGS, 'difl.py')).data)


def test_each_paper_config_labels_as_its_paper(difl_options):
  assert difl_options == {'label_from': 'categories', 'category_map': 'difl'}
  base = config_lib.base_config().data
  assert labels.options(base) == {'label_from': 'ratings',
                                  'category_map': 'emodna'}
  so = config_lib.load(os.path.join(CONFIGS, 'difl_source_only.py'))
  assert labels.options(so.data) == difl_options  # Its baseline likewise.
  # MMD-SER and CAEmoCyGAN classify IEMOCAP / VAM / MSP-Podcast ratings.
  for name in ('mmd_ser.py', 'caemocygan.py'):
    c = config_lib.load(os.path.join(CONFIGS, name))
    assert labels.options(c.data)['label_from'] == 'ratings'


def test_bad_options_name_the_field():
  data = config_lib.base_config().data
  data.label_from = 'both'
  with pytest.raises(ValueError, match='config.data.label_from'):
    labels.options(data)
  data.label_from = 'ratings'
  data.category_map = 'schuller'
  with pytest.raises(ValueError, match='config.data.category_map'):
    labels.options(data)


def test_difl_table_1_emodb(tmp_path, difl_options):
  _emodb(str(tmp_path))
  corpus = corpus_lib.load('emodb', str(tmp_path))
  assert len(corpus.utterances) == 535 and not corpus.unrecognised
  # DIFL Table 1: low B,D,N,SA 268 / high A,F,H 267; negative A,B,D,F,SA
  # 385 / positive H,N 150.
  assert _counts(corpus, 'arousal', difl_options) == (
      {'low': 268, 'high': 267}, 0)
  assert _counts(corpus, 'valence', difl_options) == (
      {'negative': 385, 'positive': 150}, 0)
  # Emo-DNA's table puts disgust (46) on the high side.
  assert _counts(corpus, 'arousal', {})[0] == {'low': 222, 'high': 313}


def test_difl_table_1_savee(tmp_path, difl_options):
  _savee(str(tmp_path))
  corpus = corpus_lib.load('savee', str(tmp_path))
  assert len(corpus.utterances) == 480
  # Low D,N,SA / high A,F,J,SU; negative A,D,F,SA / positive J,N,SU: 240
  # each.
  assert _counts(corpus, 'arousal', difl_options) == (
      {'low': 240, 'high': 240}, 0)
  assert _counts(corpus, 'valence', difl_options) == (
      {'negative': 240, 'positive': 240}, 0)


def test_difl_table_1_iemocap_four_categories(tmp_path, difl_options):
  _iemocap(str(tmp_path))
  corpus = corpus_lib.load('iemocap', str(tmp_path))
  assert len(corpus.utterances) == sum(IEMOCAP_COUNTS.values())
  left_out = sum(IEMOCAP_COUNTS.values()) - 5531
  # Low N,SA 2792 / high A,H 2739 as printed; valence A,SA 2187 / H,N 3344
  # (the paper prints these two swapped).
  assert _counts(corpus, 'arousal', difl_options) == (
      {'low': 2792, 'high': 2739}, left_out)
  assert _counts(corpus, 'valence', difl_options) == (
      {'negative': 2187, 'positive': 3344}, left_out)
  # label_from=ratings (the default) classes every rated utterance by its
  # ratings instead: valence 4.5 positive, arousal 1.5 low, for all.
  n = len(corpus.utterances)
  assert _counts(corpus, 'arousal', {}) == ({'low': n, 'high': 0}, 0)
  assert _counts(corpus, 'valence', {}) == ({'negative': 0, 'positive': n}, 0)
  # Categories with Emo-DNA's table keep surprise, fear and disgust.
  cats = {'label_from': 'categories'}
  assert _counts(corpus, 'arousal', cats)[1] == left_out - 7 - 4 - 2


def test_difl_table_1_msp_improv(tmp_path, difl_options):
  _improv(str(tmp_path))
  corpus = corpus_lib.load('msp_improv', str(tmp_path))
  c = IMPROV_COUNTS
  assert _counts(corpus, 'arousal', difl_options) == (
      {'low': c['N'] + c['S'], 'high': c['A'] + c['H']}, c['O'] + c['X'])
  assert _counts(corpus, 'valence', difl_options) == (
      {'negative': c['A'] + c['S'], 'positive': c['H'] + c['N']},
      c['O'] + c['X'])


def test_label_from_and_category_map_on_single_utterances():
  disgust = Utterance('d', 'emodb', emotion='disgust')
  assert labels.label('arousal', disgust) == 1  # Emo-DNA: high.
  assert labels.label('arousal', disgust, category_map='difl') == 0
  assert labels.label('valence', disgust, category_map='difl') == 0
  # DIFL's per-corpus subsets apply to IEMOCAP alone.
  fear_iemocap = Utterance('f', 'iemocap', emotion='fear',
                           dims={'arousal': 4.5})
  fear_emodb = Utterance('f', 'emodb', emotion='fear')
  assert labels.label('arousal', fear_iemocap, 'iemocap',
                      label_from='categories', category_map='difl') is None
  assert labels.label('arousal', fear_emodb, category_map='difl') == 1
  assert labels.label('arousal', fear_iemocap, 'iemocap') == 1  # Rating.
  neutral = Utterance('n', 'iemocap', emotion='neutral',
                      dims={'arousal': 4.5})
  assert labels.label('arousal', neutral, 'iemocap') == 1
  assert labels.label('arousal', neutral, 'iemocap',
                      label_from='categories') == 0
  # A corpus without categories has nothing to class from them.
  vam = Utterance('v', 'vam', dims={'arousal': 0.5})
  assert labels.label('arousal', vam, 'vam') == 1
  assert labels.label('arousal', vam, 'vam', label_from='categories') is None
  with pytest.raises(ValueError, match='label_from'):
    labels.label('arousal', vam, 'vam', label_from='both')
