"""Transcripts: the Utterance field, the loaders that read them, the `tokens`
feature set (built-in and checkpoint tokenizers) and its cache."""

import io
import os
from pathlib import Path
import shutil
import zlib

import numpy as np
import pytest
import soundfile as sf

from jaxser.data import cache as cache_lib
from jaxser.data import corpus as corpus_lib
from jaxser.data import features as features_lib
from jaxser.data import pipeline
from jaxser.data import synthetic
from jaxser.data.corpora import emodb
from jaxser.data.corpus import Utterance
from jaxser.data.features import FeatureConfig

GOLDEN = Path(__file__).resolve().parent / 'golden'
BERT_DIR = str(GOLDEN / 'bert_tiny')
SHARED = Path(os.environ.get('JAXSER_SHARED_CORPORA')
              or Path(__file__).resolve().parents[2] / 'shared' / 'corpora')


def _wav_bytes() -> bytes:
  buf = io.BytesIO()
  sf.write(buf, np.zeros(1600, np.float32), 16000, format='WAV')
  return buf.getvalue()


_WAV = _wav_bytes()


def write_tree(root, files: dict) -> None:
  """Writes `files` (relative path -> text, or None for a tiny wav)."""
  for rel, text in files.items():
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(_WAV if text is None else text.encode())


def _one_line(excinfo) -> str:
  message = str(excinfo.value)
  assert '\n' not in message
  return message


# The Utterance field and fingerprints.


def test_empty_text_leaves_json_and_fingerprint_as_before():
  utts = [Utterance(utt_id=f'a/{i}', corpus='legacy', speaker='a', gender='f',
                    language='xx', emotion='sad', dims={'arousal': 1.5},
                    partition='train') for i in range(3)]
  assert 'text' not in utts[0].to_json()
  assert Utterance.from_json(utts[0].to_json()) == utts[0]
  corpus = corpus_lib.Corpus('legacy', utts)
  # The fingerprint this corpus had before Utterance had a text field.
  assert corpus.fingerprint() == '40c351e73345243c'
  assert corpus.fingerprint(text=False) == '40c351e73345243c'
  assert not corpus.has_text and corpus.untranscribed() == 3


def test_text_enters_json_and_only_the_text_fingerprint():
  u = Utterance(utt_id='u', corpus='c', emotion='happy', text='Hello there.')
  assert u.to_json()['text'] == 'Hello there.'
  assert Utterance.from_json(u.to_json()) == u
  plain = corpus_lib.Corpus('c', [Utterance(utt_id='u', corpus='c',
                                            emotion='happy')])
  texted = corpus_lib.Corpus('c', [u])
  assert texted.fingerprint(text=False) == plain.fingerprint()
  assert texted.fingerprint() != plain.fingerprint()
  assert texted.has_text and texted.untranscribed() == 0


# Loaders.


def test_folder_text_column(tmp_path):
  write_tree(tmp_path, {
      'a.wav': None, 'b.wav': None, 'c.wav': None,
      'labels.csv': ('path,label,text\n'
                     'a.wav,angry,"Well,   no.  Never!"\n'
                     'b.wav,sad,\n'),
  })
  got = {u.utt_id: (u.emotion, u.text)
         for u in corpus_lib.load('folder', str(tmp_path)).utterances}
  assert got == {'a.wav': ('angry', 'Well, no. Never!'), 'b.wav': ('sad', ''),
                 'c.wav': (None, '')}


def test_folder_transcripts_without_labels(tmp_path):
  write_tree(tmp_path, {'a.wav': None, 'b.wav': None,
                        'labels.csv': 'file\ttranscript\na.wav\tHi there\n'})
  got = {u.utt_id: (u.emotion, u.text)
         for u in corpus_lib.load('folder', str(tmp_path)).utterances}
  assert got == {'a.wav': (None, 'Hi there'), 'b.wav': (None, '')}


def test_folder_table_without_label_or_text_is_an_error(tmp_path):
  write_tree(tmp_path, {'a.wav': None, 'labels.csv': 'path,speaker\na.wav,s\n'})
  with pytest.raises(corpus_lib.CorpusError, match='text column'):
    corpus_lib.load('folder', str(tmp_path))


IEMOCAP_EVAL = (
    '[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n'
    '[10.0100 - 11.3925]\tSes01F_impro01_M013\texc\t[4.0, 3.5, 3.0]\n'
    '[12.0 - 13.0]\tSes01F_impro01_F001\tsad\t[2.0, 2.0, 2.0]\n')
IEMOCAP_TRANSCRIPT = (
    'Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\n'
    'Ses01F_impro01_M000 [007.5712-010.4750]: Do you have your forms?\n'
    'Ses01F_impro01_M013 [010.0100-011.3925]: Yeah,  [LAUGHTER] sure.\n'
    'M: not an utterance line\n')


def test_iemocap_transcriptions(tmp_path):
  wav = 'IEMOCAP_full_release/Session1/sentences/wav/Ses01F_impro01/'
  dialog = 'IEMOCAP_full_release/Session1/dialog/'
  write_tree(tmp_path, {
      wav + 'Ses01F_impro01_F000.wav': None,
      wav + 'Ses01F_impro01_M013.wav': None,
      wav + 'Ses01F_impro01_F001.wav': None,
      dialog + 'EmoEvaluation/Ses01F_impro01.txt': IEMOCAP_EVAL,
      dialog + 'transcriptions/Ses01F_impro01.txt': IEMOCAP_TRANSCRIPT,
      dialog + 'transcriptions/._Ses01F_impro01.txt': 'Ses01F_impro01_F001 '
                                                       '[1-2]: fork',
  })
  corpus = corpus_lib.load('iemocap', str(tmp_path))
  got = {os.path.basename(u.utt_id): u.text for u in corpus.utterances}
  assert got == {'Ses01F_impro01_F000.wav': 'Excuse me.',
                 'Ses01F_impro01_M013.wav': 'Yeah, [LAUGHTER] sure.',
                 'Ses01F_impro01_F001.wav': ''}
  assert corpus.untranscribed() == 1


def test_msp_podcast_transcripts(tmp_path):
  write_tree(tmp_path, {
      'Audios/MSP-Podcast_0001_0008.wav': None,
      'Audios/MSP-Podcast_0002_0001.wav': None,
      'Labels/labels_consensus.csv': (
          'FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n'
          'MSP-Podcast_0001_0008.wav,A,5.2,2.0,5.0,127,Male,Train\n'
          'MSP-Podcast_0002_0001.wav,H,3.0,4.4,4.0,12,Female,Train\n'),
      'Transcripts/MSP-PODCAST_0001_0008.txt': '\ufeffI told you\nalready.\n',
  })
  got = {u.utt_id: u.text
         for u in corpus_lib.load('msp_podcast', str(tmp_path)).utterances}
  assert got == {'Audios/MSP-Podcast_0001_0008.wav': 'I told you already.',
                 'Audios/MSP-Podcast_0002_0001.wav': ''}


def test_emodb_sentences_by_text_code(tmp_path):
  write_tree(tmp_path, {'wav/03a01Fa.wav': None, 'wav/09b10Lb.wav': None,
                        'wav/10a03Wa.wav': None})
  got = {u.utt_id: u.text
         for u in corpus_lib.load('emodb', str(tmp_path)).utterances}
  assert got == {
      'wav/03a01Fa.wav': 'Der Lappen liegt auf dem Eisschrank.',
      'wav/09b10Lb.wav': 'Die wird auf dem Platz sein, wo wir sie immer '
                         'hinlegen.',
      'wav/10a03Wa.wav': ''}  # Not one of the ten codes.
  assert len(emodb.SENTENCES) == 10


def test_shared_corpora_transcripts():
  """EmoDB's sentences are known; CASIA and EMOVO have none, and their
  fingerprints are what they were before transcripts existed."""
  for name in ('emodb', 'casia', 'emovo'):
    if not (SHARED / name).is_dir():
      pytest.skip(f'{SHARED / name} is absent')
    corpus = corpus_lib.load(name, str(SHARED / name))
    if name == 'emodb':
      assert corpus.untranscribed() == 0
      assert {u.text for u in corpus.utterances} <= set(
          emodb.SENTENCES.values())
    else:
      assert not corpus.has_text
      assert corpus.fingerprint() == corpus.fingerprint(text=False)


def test_synthetic_transcripts():
  corpora = {n: synthetic.build(synthetic.SPECS[n])
             for n in synthetic.DEFAULT_CORPORA}
  for name, corpus in corpora.items():
    assert corpus.untranscribed() == 0, name
    again = synthetic.build(synthetic.SPECS[name])
    assert [u.text for u in again.utterances] == [
        u.text for u in corpus.utterances]
    assert all(4 <= len(u.text.split()) <= 14 for u in corpus.utterances)
  # Emotion words are in the text, more of the utterance's own emotion.
  core = synthetic._CORE_WORDS  # pylint: disable=protected-access
  for corpus in corpora.values():
    hits = np.zeros((4, 4))
    for u in corpus.utterances:
      for w in features_lib.builtin_words(u.text):
        for k, e in enumerate(synthetic.EMOTIONS):
          hits[synthetic.EMOTIONS.index(u.emotion), k] += w in core[e]
    assert np.all(np.argmax(hits, axis=1) == np.arange(4))
    assert np.all(hits > 0)  # Noise: other emotions' words too.
  # Each corpus has its own words: the text domain gap.
  vocab = {n: {w for u in c.utterances for w in features_lib.builtin_words(
      u.text)} for n, c in corpora.items()}
  src, tgt = vocab[synthetic.DEFAULT_SOURCE], vocab[synthetic.DEFAULT_TARGET]
  assert len(tgt - src) > 20 and src & tgt
  # Acted corpora: the script sentence is shared across emotions.
  a = {u.utt_id: u.text for u in corpora[synthetic.ACTED_A.name].utterances}
  assert a['spk00/angry/0000'].split()[0] == a['spk00/happy/0000'].split()[0]


# The built-in tokenizer.


def test_builtin_tokenizer_ids():
  ids = features_lib.builtin_tokenize('Hello, Café!', 16, 30522)
  assert ids.dtype == np.int32
  span = 30522 - 1000
  want = [101] + [1000 + zlib.crc32(w.encode()) % span
                  for w in ('hello', ',', 'cafe', '!')] + [102]
  assert ids.tolist() == want
  # Stable across processes and versions: crc32, not hash().
  assert ids[1] == 1000 + 907060870 % span
  assert features_lib.builtin_words('Tüten,  ÉCOLE') == ['tuten', ',', 'ecole']
  ids = features_lib.builtin_tokenize('the ' * 200, 512, 1200)
  assert np.all((ids[1:-1] >= 1000) & (ids[1:-1] < 1200))


def test_tokens_feature_pads_truncates_and_keeps_sep():
  fc = FeatureConfig.create('tokens', frames=999, max_length=8)
  assert fc.frames == 8  # max_length, not data.frames.
  assert fc.dtype == np.int32 and fc.reads_text
  x, n = fc.compute_text('One two three')
  assert x.dtype == np.int32 and x.shape == (8,) and n == 5
  assert x[0] == features_lib.CLS_ID and x[n - 1] == features_lib.SEP_ID
  assert np.all(x[n:] == features_lib.PAD_ID)
  x, n = fc.compute_text('a b c d e f g h i j k')
  assert n == 8 and x[0] == 101 and x[-1] == 102
  assert x[1:-1].tolist() == features_lib.builtin_tokenize(
      'a b c d e f', 8, 30522)[1:-1].tolist()
  x, n = fc.compute_text('')
  assert n == 2 and x[:2].tolist() == [101, 102]
  with pytest.raises(ValueError, match='transcripts'):
    fc.compute(np.zeros(16000, np.float32))


def test_tokens_kind_and_params():
  from jaxser import models  # pylint: disable=g-import-not-at-top
  assert models.feature_kind('tokens') == 'tokens'
  with pytest.raises(ValueError, match='max_length') as e:
    FeatureConfig.create('tokens', max_length=1)
  _one_line(e)
  with pytest.raises(ValueError, match='vocab_size') as e:
    FeatureConfig.create('tokens', vocab_size=1000)
  _one_line(e)
  with pytest.raises(ValueError, match=r'tokens\.tokenizer') as e:
    FeatureConfig.create('tokens', tokenizer='/no/such/checkpoint')
  _one_line(e)


def test_tokens_refuse_normalisation():
  from jaxser import config as config_lib  # pylint: disable=g-import-not-at-top
  data = config_lib.base_config().data
  data.features = 'tokens'
  assert FeatureConfig.from_data_config(data).frames == 128
  data.normalize = 'corpus_zscore'
  with pytest.raises(ValueError, match='config.data.normalize') as e:
    FeatureConfig.from_data_config(data)
  _one_line(e)


# A checkpoint's tokenizer.


def test_checkpoint_tokenizer_matches_bert_encode():
  from jaxser.models import bert  # pylint: disable=g-import-not-at-top
  tok = bert.load_tokenizer(BERT_DIR)
  fc = FeatureConfig.create('tokens', tokenizer=BERT_DIR, max_length=12)
  for text in ('I am very happy today!', 'hello',
               'they were playing good music and it was so very calm'):
    x, n = fc.compute_text(text)
    ids, mask = bert.encode(tok, [text], 12, pad_to=12)
    assert x.dtype == np.int32 and x.tolist() == ids[0].tolist()
    assert n == mask[0].sum()
  x, n = fc.compute_text('they were playing good music and it was so very '
                         'calm, how happy we were')
  assert n == 12 and x[-1] == tok.token_to_id('[SEP]')
  assert x[0] == tok.token_to_id('[CLS]')


def test_cache_key_names_the_tokenizer(tmp_path):
  builtin = FeatureConfig.create('tokens').key()
  ckpt = FeatureConfig.create('tokens', tokenizer=BERT_DIR).key()
  assert builtin != ckpt
  assert builtin == FeatureConfig.create('tokens').key()
  # Same path, other contents: another key.
  copy = tmp_path / 'ckpt'
  shutil.copytree(BERT_DIR, copy)
  first = FeatureConfig.create('tokens', tokenizer=str(copy)).key()
  x0, _ = FeatureConfig.create('tokens', tokenizer=str(copy)).compute_text(
      'hello')
  (copy / 'tokenizer.json').write_text(
      (copy / 'tokenizer.json').read_text().replace('"hello"', '"hellx"'))
  fc = FeatureConfig.create('tokens', tokenizer=str(copy))
  assert fc.key() != first
  x1, _ = fc.compute_text('hello')  # The changed file is read again.
  assert x1.tolist() != x0.tolist()
  # Without tokenizer.json: vocab.txt and the lower-casing configs count.
  (copy / 'tokenizer.json').unlink()
  vocab_key = FeatureConfig.create('tokens', tokenizer=str(copy)).key()
  (copy / 'tokenizer_config.json').write_text('{"do_lower_case": false}')
  assert FeatureConfig.create('tokens', tokenizer=str(copy)).key() != vocab_key


# The cache and the pipeline.


def _no_audio(monkeypatch):
  def boom(*args, **kwargs):
    raise AssertionError('audio read for a text feature set')
  monkeypatch.setattr(corpus_lib.Corpus, 'read_audio', boom)
  monkeypatch.setattr(cache_lib.audio_lib, 'load', boom)


def _data_config(tmp_path, source, target, **tokens):
  from jaxser import config as config_lib  # pylint: disable=g-import-not-at-top
  data = config_lib.base_config().data
  data.source, data.target = source, target
  data.features = 'tokens'
  data.feature_params.tokens.update(tokens)
  data.cache_dir = str(tmp_path)
  data.workers = 0
  return data


def test_tokens_cache_through_load_data(tmp_path, monkeypatch):
  _no_audio(monkeypatch)
  data_cfg = _data_config(tmp_path, synthetic.ACTED_A.name,
                          synthetic.PHONE.name, max_length=16)
  data = pipeline.load_data(data_cfg)
  fc = FeatureConfig.from_data_config(data_cfg)
  for split in (data.source_train, data.target_eval):
    part = split.parts[0]
    assert part.cached.feature_shape == (16,)
    assert part.cached.feature_dtype == np.int32
    assert not part.cached.skipped
    rows = list(split.dataset(with_index=True).as_numpy_iterator())
    assert len(rows) == len(part.cached.corpus.utterances)
    for r in rows[::37]:
      assert r['features'].dtype == np.int32
      want, n = fc.compute_text(part.cached.corpus.utterances[r['index']].text)
      assert r['features'].tolist() == want.tolist() and r['length'] == n
  # A second open reads the cache back (no rebuild) with the same dtype.
  again = pipeline.open_corpus(synthetic.ACTED_A.name, data_cfg)
  assert again.meta_path == data.source_train.parts[0].cached.meta_path
  assert again.feature_dtype == np.int32


def _register_text_corpus(name, texts):
  def load(root):
    del root
    utts = [Utterance(utt_id=f's{i % 2}/{i}', corpus=name, speaker=f's{i % 2}',
                      emotion=('happy', 'sad')[i % 2], text=t)
            for i, t in enumerate(texts)]
    return corpus_lib.Corpus(name, utts, render=lambda u: np.zeros(
        16000, np.float32))
  corpus_lib.register(name, synthetic=True)(load)


def test_untranscribed_utterances_are_skipped(tmp_path, monkeypatch):
  _no_audio(monkeypatch)
  _register_text_corpus('text_partial', ['Good day.', '', 'Bad day.', '  ',
                                         'So so.', 'Fine.'])
  corpus = corpus_lib.load('text_partial')
  cached = cache_lib.build(corpus, FeatureConfig.create('tokens'),
                           str(tmp_path))
  assert cached.usable.tolist() == [0, 2, 4, 5]
  assert cached.skipped == [('s1/1', cache_lib.NO_TEXT),
                            ('s1/3', cache_lib.NO_TEXT)]


def test_corpus_without_text_is_a_one_line_error(tmp_path, monkeypatch):
  _no_audio(monkeypatch)
  data_cfg = _data_config(tmp_path, synthetic.ACTED_A.name, 'tiny_src')
  with pytest.raises(corpus_lib.CorpusError) as e:
    pipeline.load_data(data_cfg)
  assert _one_line(e) == (
      "config.data.features='tokens' needs transcripts, corpus 'tiny_src' "
      'has none (48 of 48 utterances without text)')
  assert not os.path.exists(os.path.join(tmp_path, 'tiny_src'))
