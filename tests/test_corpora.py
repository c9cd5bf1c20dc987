"""Corpus loaders on fixture trees with the real naming; label mappings."""

import io
import os

import numpy as np
import pytest
import soundfile as sf

from jaxser.data import corpus as corpus_lib
from jaxser.data import labels
from jaxser.data.corpora import folder as folder_lib
from jaxser.data.corpus import Utterance


def _wav_bytes() -> bytes:
  buf = io.BytesIO()
  rng = np.random.default_rng(0)
  sf.write(buf, (0.1 * rng.standard_normal(4800)).astype(np.float32), 16000,
           format='WAV')
  return buf.getvalue()


_WAV = _wav_bytes()


def write_tree(root, files: dict) -> None:
  """Writes `files` (relative path -> text, or None for a tiny wav)."""
  for rel, text in files.items():
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(_WAV if text is None else text.encode())


IEMOCAP_EVAL_1 = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
A-E3:\tval 3; act 2; dom  2;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M013\texc\t[4.0000, 3.5000, 3.0000]
"""
IEMOCAP_EVAL_2 = '[1.0 - 2.0]\tSes02M_script01_1_F002\txxx\t[1.5, 4.5, 3.0]\n'
PODCAST_CSV = """FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
MSP-Podcast_0001_0008.wav,A,5.2,2.0,5.0,127,Male,Train
MSP-Podcast_0002_0001.wav,X,3.0,4.4,4.0,Unknown,Unknown,Test1
MSP-Podcast_0003_0001.wav,C,4.0,3.0,4.6,310,Female,Development
"""
IMPROV_EVAL = (
    'UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:2.600000; V:1.800000; '
    'D:3.000000 ; N:3.200000;\n'
    'rater1; Angry; Frustrated; A:3.000000; V:2.000000; D:3.000000; '
    'N:3.000000;\n'
    'rater2; Angry; ; A:2.000000; V:2.000000; D:3.000000; N:4.000000;\n'
    '\n'
    'UTD-IMPROV-S03H-M02-R-MF03.avi; H; A:3.500000; V:4.200000; D:NaN ; '
    'N:2.000000;\n')
VAM_TABLE = """file;valence;activation;dominance;speaker
Satz01.wav;-0.5;0.4;0.1;spk01
Satz02.wav;0.2;-0.6;-0.3;spk02
"""
CREMAD_CSV = """ActorID,Age,Sex,Race,Ethnicity
1001,51,Male,Caucasian,Not Hispanic
1002,21,Female,Caucasian,Not Hispanic
"""

# name -> (language, dim_scale, files: rel -> None (wav) or annotation text,
# expected: rel -> (speaker, gender, emotion, dims or None),
# unrecognised: rel paths).
SPECS = {
    'casia': ('zh', None, {
        'liuchanhg/angry/201.wav': None,
        'ZhaoZuoxiang/surprise/250.wav': None,
        'wangzhe/neutral/203.wav': None,
        'wangzhe/bored/201.wav': None,
        'wangzhe/angry/take1.wav': None,
        'readme.txt': 'not audio',
    }, {
        'liuchanhg/angry/201.wav': ('liuchanhg', 'f', 'angry', None),
        'ZhaoZuoxiang/surprise/250.wav': ('ZhaoZuoxiang', 'm', 'surprise',
                                          None),
        'wangzhe/neutral/203.wav': ('wangzhe', 'm', 'neutral', None),
    }, ['wangzhe/bored/201.wav', 'wangzhe/angry/take1.wav']),
    'emovo': ('it', None, {
        'f1/rab-f1-b1.wav': None,
        'm3/gio-m3-n5.wav': None,
        'pau-f2-d1.wav': None,
        'f1/xyz-f1-b1.wav': None,
        'f1/rab_f1_b1.wav': None,
    }, {
        'f1/rab-f1-b1.wav': ('f1', 'f', 'angry', None),
        'm3/gio-m3-n5.wav': ('m3', 'm', 'happy', None),
        'pau-f2-d1.wav': ('f2', 'f', 'fear', None),
    }, ['f1/xyz-f1-b1.wav', 'f1/rab_f1_b1.wav']),
    'urdu': ('ur', None, {
        'Angry/SM1_F19_A019.wav': None,
        'Sad/SF6_F2_S004.wav': None,
        'Happy/SM1_F19_A020.wav': None,
        'Neutral/foo.wav': None,
    }, {
        'Angry/SM1_F19_A019.wav': ('SM1', 'm', 'angry', None),
        'Sad/SF6_F2_S004.wav': ('SF6', 'f', 'sad', None),
    }, ['Happy/SM1_F19_A020.wav', 'Neutral/foo.wav']),
    'emodb': ('de', None, {
        'wav/03a01Fa.wav': None,
        'wav/09b02Lb.wav': None,
        'wav/16a05Ec.wav': None,
        'wav/03a01Xa.wav': None,
    }, {
        'wav/03a01Fa.wav': ('03', 'm', 'happy', None),
        'wav/09b02Lb.wav': ('09', 'f', 'boredom', None),
        'wav/16a05Ec.wav': ('16', 'f', 'disgust', None),
    }, ['wav/03a01Xa.wav']),
    'ravdess': ('en', None, {
        'Actor_01/03-01-05-01-02-01-01.wav': None,
        'Actor_24/03-01-02-02-01-02-24.wav': None,
        'Actor_03/03-01-08-01-01-01-03.wav': None,
        'Actor_01/01-01-05-01-02-01-01.wav': None,
        'Actor_01/03-02-05-01-02-01-01.wav': None,
        'Actor_01/03-01-09-01-02-01-01.wav': None,
    }, {
        'Actor_01/03-01-05-01-02-01-01.wav': ('01', 'm', 'angry', None),
        'Actor_24/03-01-02-02-01-02-24.wav': ('24', 'f', 'calm', None),
        'Actor_03/03-01-08-01-01-01-03.wav': ('03', 'm', 'surprise', None),
    }, ['Actor_01/01-01-05-01-02-01-01.wav',
        'Actor_01/03-02-05-01-02-01-01.wav',
        'Actor_01/03-01-09-01-02-01-01.wav']),
    'tess': ('en', None, {
        'OAF_angry/OAF_back_angry.wav': None,
        'YAF_pleasant_surprised/YAF_bath_ps.wav': None,
        'oaf_Fear/OAF_neat_fear.wav': None,
        'YAF_sad/YAF_back_bored.wav': None,
        'XAF_angry/XAF_back_angry.wav': None,
    }, {
        'OAF_angry/OAF_back_angry.wav': ('OAF', 'f', 'angry', None),
        'YAF_pleasant_surprised/YAF_bath_ps.wav': ('YAF', 'f',
                                                   'pleasant_surprise', None),
        'oaf_Fear/OAF_neat_fear.wav': ('OAF', 'f', 'fear', None),
    }, ['YAF_sad/YAF_back_bored.wav', 'XAF_angry/XAF_back_angry.wav']),
    'cremad': ('en', None, {
        'AudioWAV/1001_DFA_ANG_XX.wav': None,
        'AudioWAV/1002_IEO_HAP_HI.wav': None,
        'AudioWAV/1003_TIE_SAD_LO.wav': None,
        'AudioWAV/1001_DFA_CAL_XX.wav': None,
        'VideoDemographics.csv': CREMAD_CSV,
    }, {
        'AudioWAV/1001_DFA_ANG_XX.wav': ('1001', 'm', 'angry', None),
        'AudioWAV/1002_IEO_HAP_HI.wav': ('1002', 'f', 'happy', None),
        'AudioWAV/1003_TIE_SAD_LO.wav': ('1003', '', 'sad', None),
    }, ['AudioWAV/1001_DFA_CAL_XX.wav']),
    'savee': ('en', None, {
        'AudioData/DC/a01.wav': None,
        'AudioData/KL/sa15.wav': None,
        'JE_su03.wav': None,
        'AudioData/XX/a01.wav': None,
        'AudioData/DC/b01.wav': None,
    }, {
        'AudioData/DC/a01.wav': ('DC', 'm', 'angry', None),
        'AudioData/KL/sa15.wav': ('KL', 'm', 'sad', None),
        'JE_su03.wav': ('JE', 'm', 'surprise', None),
    }, ['AudioData/XX/a01.wav', 'AudioData/DC/b01.wav']),
    'turev': ('tr', None, {
        'Sound Source/Angry/1157_kz_beste.wav': None,
        'Sound Source/Calm/1234_sk_eger.wav': None,
        'Sound Source/Sad/6783_hl_dil.wav': None,
        'Sound Source/Happy/1157_mt_sepet.wav': None,
        'Sound Source/Happy/1157_kz_dil.wav': None,
        'Sound Source/Happy/readme.wav': None,
    }, {
        'Sound Source/Angry/1157_kz_beste.wav': ('1157', '', 'angry', None),
        'Sound Source/Calm/1234_sk_eger.wav': ('1234', '', 'calm', None),
        'Sound Source/Sad/6783_hl_dil.wav': ('6783', '', 'sad', None),
        'Sound Source/Happy/1157_mt_sepet.wav': ('1157', '', 'happy', None),
    }, ['Sound Source/Happy/1157_kz_dil.wav', 'Sound Source/Happy/readme.wav']),
    'iemocap': ('en', 'iemocap', {
        'Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav': None,
        'Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M013.wav': None,
        'Session2/sentences/wav/Ses02M_script01_1/Ses02M_script01_1_F002.wav':
            None,
        'Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F099.wav': None,
        'Session1/dialog/wav/Ses01F_impro01.wav': None,
        'Session1/dialog/EmoEvaluation/Ses01F_impro01.txt': IEMOCAP_EVAL_1,
        'Session2/dialog/EmoEvaluation/Ses02M_script01_1.txt': IEMOCAP_EVAL_2,
    }, {
        'Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav': (
            'Ses01_F', 'f', 'neutral',
            {'valence': 2.5, 'arousal': 2.5, 'dominance': 2.5}),
        'Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M013.wav': (
            'Ses01_M', 'm', 'excited',
            {'valence': 4.0, 'arousal': 3.5, 'dominance': 3.0}),
        'Session2/sentences/wav/Ses02M_script01_1/Ses02M_script01_1_F002.wav':
            ('Ses02_F', 'f', None,
             {'valence': 1.5, 'arousal': 4.5, 'dominance': 3.0}),
    }, ['Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F099.wav',
        'Session1/dialog/wav/Ses01F_impro01.wav']),
    'msp_podcast': ('en', 'msp_podcast', {
        'Audios/MSP-Podcast_0001_0008.wav': None,
        'Audios/MSP-Podcast_0002_0001.wav': None,
        'Audios/MSP-Podcast_0003_0001.wav': None,
        'Audios/MSP-Podcast_9999_0001.wav': None,
        'Labels/labels_consensus.csv': PODCAST_CSV,
    }, {
        'Audios/MSP-Podcast_0001_0008.wav': (
            '127', 'm', 'angry',
            {'arousal': 5.2, 'valence': 2.0, 'dominance': 5.0}),
        'Audios/MSP-Podcast_0002_0001.wav': (
            '', '', None, {'arousal': 3.0, 'valence': 4.4, 'dominance': 4.0}),
        'Audios/MSP-Podcast_0003_0001.wav': (
            '310', 'f', 'other',
            {'arousal': 4.0, 'valence': 3.0, 'dominance': 4.6}),
    }, ['Audios/MSP-Podcast_9999_0001.wav']),
    'msp_improv': ('en', 'msp_improv', {
        'Audio/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav': None,
        'Audio/session2/S03H/R/MSP-IMPROV-S03H-M02-R-MF03.wav': None,
        'Audio/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM02.wav': None,
        'Audio/session1/other.wav': None,
        'Evaluation.txt': IMPROV_EVAL,
    }, {
        'Audio/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav': (
            'F01', 'f', 'angry',
            {'arousal': 2.6, 'valence': 1.8, 'dominance': 3.0}),
        'Audio/session2/S03H/R/MSP-IMPROV-S03H-M02-R-MF03.wav': (
            'M02', 'm', 'happy', {'arousal': 3.5, 'valence': 4.2}),
    }, ['Audio/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM02.wav',
        'Audio/session1/other.wav']),
    'vam': ('de', 'vam', {
        'VAM-Audio/Audio/VAM-I/Satz01.wav': None,
        'VAM-Audio/Audio/VAM-II/Satz02.wav': None,
        'VAM-Audio/Audio/VAM-II/Satz99.wav': None,
        'VAM-Audio/Annotation/ratings.csv': VAM_TABLE,
        'VAM-Audio/README.txt': 'Vera am Mittag\nnot a table\n',
    }, {
        'VAM-Audio/Audio/VAM-I/Satz01.wav': (
            'spk01', '', None,
            {'valence': -0.5, 'arousal': 0.4, 'dominance': 0.1}),
        'VAM-Audio/Audio/VAM-II/Satz02.wav': (
            'spk02', '', None,
            {'valence': 0.2, 'arousal': -0.6, 'dominance': -0.3}),
    }, ['VAM-Audio/Audio/VAM-II/Satz99.wav']),
}


@pytest.mark.parametrize('parent', ['', 'unpacked/archive'])
@pytest.mark.parametrize('name', sorted(SPECS))
def test_loader(name, parent, tmp_path):
  language, dim_scale, files, expected, unrecognised = SPECS[name]
  write_tree(tmp_path / parent if parent else tmp_path, files)
  corpus = corpus_lib.load(name, str(tmp_path))
  prefix = f'{parent}/' if parent else ''
  got = {u.utt_id: u for u in corpus.utterances}
  assert sorted(got) == sorted(prefix + rel for rel in expected)
  assert [u.utt_id for u in corpus.utterances] == sorted(got)
  for rel, (speaker, gender, emotion, dims) in expected.items():
    u = got[prefix + rel]
    assert (u.corpus, u.speaker, u.gender, u.emotion, u.language) == (
        name, speaker, gender, emotion, language), rel
    assert dict(u.dims) == pytest.approx(dims or {}), rel
    assert u.path == os.path.join(str(tmp_path), prefix + rel)
    assert u.emotion is None or u.emotion in corpus_lib.EMOTIONS
  assert sorted(p for p, _ in corpus.unrecognised) == sorted(
      prefix + rel for rel in unrecognised)
  assert all(reason for _, reason in corpus.unrecognised)
  assert corpus.dim_scale == dim_scale
  assert corpus.root == str(tmp_path)


def test_every_real_loader_is_tested():
  real = {n for n in corpus_lib.available() if not corpus_lib.is_synthetic(n)}
  # ljspeech (a TTS corpus) is tested in test_tts.py.
  assert real == set(SPECS) | {'folder', 'ljspeech'}


def test_partition_from_msp_podcast(tmp_path):
  write_tree(tmp_path, SPECS['msp_podcast'][2])
  parts = {u.utt_id: u.partition
           for u in corpus_lib.load('msp_podcast', str(tmp_path)).utterances}
  assert parts == {'Audios/MSP-Podcast_0001_0008.wav': 'train',
                   'Audios/MSP-Podcast_0002_0001.wav': 'test1',
                   'Audios/MSP-Podcast_0003_0001.wav': 'development'}


def test_cremad_without_demographics_has_no_gender(tmp_path):
  write_tree(tmp_path, {'AudioWAV/1001_DFA_ANG_XX.wav': None})
  (u,) = corpus_lib.load('cremad', str(tmp_path)).utterances
  assert (u.speaker, u.gender) == ('1001', '')


def test_missing_annotation_file_is_a_clear_error(tmp_path):
  write_tree(tmp_path, {'Audios/MSP-Podcast_0001_0008.wav': None})
  with pytest.raises(corpus_lib.CorpusError, match='labels_consensus.csv'):
    corpus_lib.load('msp_podcast', str(tmp_path))


def test_nothing_recognised_names_the_folder(tmp_path):
  write_tree(tmp_path, {'a/b.wav': None})
  with pytest.raises(corpus_lib.CorpusError, match=str(tmp_path)):
    corpus_lib.load('emodb', str(tmp_path))


def test_macos_resource_forks_are_ignored(tmp_path):
  write_tree(tmp_path, {'wav/03a01Fa.wav': None, 'wav/._03a01Fa.wav': None})
  corpus = corpus_lib.load('emodb', str(tmp_path))
  assert len(corpus.utterances) == 1 and not corpus.unrecognised


def test_folder_unlabelled(tmp_path):
  write_tree(tmp_path, {'a.wav': None, 'sub/b.flac': None, 'notes.txt': 'x'})
  corpus = corpus_lib.load('folder', str(tmp_path))
  assert [(u.utt_id, u.emotion, u.speaker) for u in corpus.utterances] == [
      ('a.wav', None, ''), ('sub/b.flac', None, '')]
  assert not corpus.unrecognised


def test_folder_labels_csv(tmp_path):
  write_tree(tmp_path, {
      'x/a.wav': None, 'x/b.wav': None, 'x/c.wav': None, 'x/d.wav': None,
      'x/e.wav': None,
      'labels.csv': ('path,label,speaker,gender\n'
                     'x/a.wav,Anger,s1,female\n'
                     'x/b.wav,happiness,s1,female\n'
                     'x/c.wav,pleasant surprise,s2,m\n'
                     'x/d.wav,sarcasm,s2,m\n'
                     'x/gone.wav,sad,s2,m\n'),
  })
  corpus = corpus_lib.load('folder', str(tmp_path))
  got = {u.utt_id: (u.emotion, u.speaker, u.gender)
         for u in corpus.utterances}
  assert got == {'x/a.wav': ('angry', 's1', 'f'),
                 'x/b.wav': ('happy', 's1', 'f'),
                 'x/c.wav': ('pleasant_surprise', 's2', 'm'),
                 'x/e.wav': (None, '', '')}
  reasons = dict(corpus.unrecognised)
  assert 'not an emotion' in reasons['x/d.wav']
  assert 'missing' in reasons['x/gone.wav']


def test_folder_labels_from_env(tmp_path, monkeypatch):
  write_tree(tmp_path / 'audio', {'a.wav': None, 'b.wav': None})
  write_tree(tmp_path, {'meta/my.tsv': 'file\temotion\n../audio/a.wav\tsad\n'})
  monkeypatch.setenv(folder_lib.LABELS_ENV, str(tmp_path / 'meta' / 'my.tsv'))
  corpus = corpus_lib.load('folder', str(tmp_path / 'audio'))
  assert [(u.utt_id, u.emotion) for u in corpus.utterances] == [
      ('a.wav', 'sad'), ('b.wav', None)]
  monkeypatch.setenv(folder_lib.LABELS_ENV, str(tmp_path / 'nope.csv'))
  with pytest.raises(corpus_lib.CorpusError, match='nope.csv'):
    corpus_lib.load('folder', str(tmp_path / 'audio'))


@pytest.mark.parametrize('label,expected', [
    ('Anger', 'angry'), ('JOY', 'happy'), ('sadness', 'sad'),
    ('fearful', 'fear'), ('Surprised', 'surprise'), ('neutral', 'neutral'),
    ('bored', 'boredom'), ('pleasant-surprise', 'pleasant_surprise'),
    ('sarcasm', None)])
def test_folder_synonyms(label, expected):
  assert folder_lib.canonical(label) == expected


def _utt(emotion=None, **dims):
  return Utterance(utt_id='u', corpus='c', emotion=emotion, dims=dims)


def _name(task, utt, scale=None):
  k = labels.label(task, utt, scale)
  return None if k is None else labels.TASK_CLASSES[task][k]


@pytest.mark.parametrize('scale,values,expected', [
    ('iemocap', (1.0, 2.0, 2.01, 3.99, 4.0, 5.0),
     ('low', 'low', 'mid', 'mid', 'high', 'high')),
    ('msp_improv', (2.0, 3.0, 4.0), ('low', 'mid', 'high')),
    ('vam', (-1.0, -0.33, -0.32, 0.32, 0.33, 1.0),
     ('low', 'low', 'mid', 'mid', 'high', 'high')),
    ('msp_podcast', (1.0, 3.0, 3.01, 4.99, 5.0, 7.0),
     ('low', 'low', 'mid', 'mid', 'high', 'high')),
])
def test_three_classes_from_ratings(scale, values, expected):
  got = tuple(_name('arousal3', _utt(arousal=v), scale) for v in values)
  assert got == expected
  valence = {'low': 'negative', 'mid': 'neutral', 'high': 'positive'}
  got = tuple(_name('valence3', _utt(valence=v), scale) for v in values)
  assert got == tuple(valence[e] for e in expected)


@pytest.mark.parametrize('scale,low,high', [
    ('iemocap', 2.5, 2.51), ('msp_improv', 2.5, 3.0), ('vam', 0.0, 0.01),
    ('msp_podcast', 4.0, 4.01)])
def test_binary_from_ratings(scale, low, high):
  assert _name('arousal', _utt(arousal=low), scale) == 'low'
  assert _name('arousal', _utt(arousal=high), scale) == 'high'
  assert _name('valence', _utt(valence=low), scale) == 'negative'
  assert _name('valence', _utt(valence=high), scale) == 'positive'


def test_ratings_take_precedence_over_categories():
  sad_but_aroused = _utt('sad', arousal=4.5, valence=4.5)
  assert _name('arousal', sad_but_aroused, 'iemocap') == 'high'
  assert _name('arousal3', sad_but_aroused, 'iemocap') == 'high'
  assert _name('valence', sad_but_aroused, 'iemocap') == 'positive'
  assert _name('emotion4', sad_but_aroused, 'iemocap') == 'sad'
  # Without a rating of the task's dimension, or a scale, the category counts.
  assert _name('valence3', _utt('sad', arousal=4.5), 'iemocap') == 'negative'
  assert _name('arousal', sad_but_aroused) == 'low'


def test_categories_three_classes():
  assert [_name('arousal3', _utt(e)) for e in (
      'boredom', 'disgust', 'neutral', 'angry', 'pleasant_surprise',
      'frustrated')] == ['low', 'low', 'mid', 'high', 'high', None]
  assert [_name('valence3', _utt(e)) for e in (
      'fear', 'neutral', 'calm', 'excited', 'other', None)] == [
          'negative', 'neutral', 'positive', 'positive', None, None]


def test_unknown_scale_is_an_error():
  with pytest.raises(ValueError, match='rating scale'):
    labels.label('arousal', _utt(arousal=1.0), 'nope')


def test_every_task_maps_every_category_to_a_class_or_none():
  for task, classes in labels.TASK_CLASSES.items():
    for e in corpus_lib.EMOTIONS:
      k = labels.label(task, _utt(e))
      assert k is None or 0 <= k < len(classes)
