"""The multitask paper on its transformers: the text system (BERT on
transcripts, token cutoff), the audio system's config (AST on the fbank
front end), the Table 11 switches, and their errors."""

import json
import os
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import render_tiny
from conftest import TINY_EMOTIONS
from conftest import tiny_config
from jaxser import config as config_lib
from jaxser import methods as methods_lib
from jaxser import train
from jaxser.data import corpus as corpus_lib

CONFIGS = os.path.join(os.path.dirname(__file__), '..', 'configs')
WORDS = {'neutral': 'fine okay', 'happy': 'great lovely', 'sad': 'sorry lost',
         'angry': 'stop hate'}


def _tiny_text(name):
  def load(root):
    del root
    utts = []
    for s in ('a', 'b', 'c'):
      for e in TINY_EMOTIONS:
        for i in range(4):
          rng = np.random.default_rng(zlib.crc32(f'{name}{s}{e}{i}'.encode()))
          words = ['the', 'day', name[-3:]] + WORDS[e].split()[:1 + i % 2]
          rng.shuffle(words)
          utts.append(corpus_lib.Utterance(
              utt_id=f'{s}/{e}/{i}', corpus=name, speaker=s, language='en',
              emotion=e, text=' '.join(words)))
    return corpus_lib.Corpus(name, utts, render=render_tiny)
  return load


corpus_lib.register('tiny_text_src', synthetic=True)(_tiny_text('tiny_text_src'))
corpus_lib.register('tiny_text_tgt', synthetic=True)(_tiny_text('tiny_text_tgt'))


def _load(name):
  return config_lib.load(os.path.join(CONFIGS, f'{name}.py'))


def _tiny_text_config(cache_dir, steps=4):
  c = tiny_config('multitask_text', cache_dir, steps=steps)
  c.data.source, c.data.target = 'tiny_text_src', 'tiny_text_tgt'
  c.data.feature_params.tokens.max_length = 12
  c.model.bert.update(dict(layers=1, hidden=32, heads=2, mlp_dim=64))
  c.train.validation.every = 2
  return c


def test_paper_settings_of_the_two_configs():
  a = _load('multitask_ast')
  assert (a.model.name, a.model.frontend, a.data.features) == (
      'ast', 'fbank128', 'waveform')
  # 1024 frames of 25 ms every 10 ms.
  assert (a.data.feature_params.waveform.samples - 400) // 160 + 1 == 1024
  assert (a.multitask.lambda_cl, a.multitask.lambda_im,
          a.multitask.lambda_aug) == (0.5, 0.5, 0.1)
  assert (a.train.learning_rate, a.train.batch_size) == (1e-4, 64)
  assert (a.train.validation.every, a.train.validation.plateau_factor,
          a.train.validation.plateau_patience) == (30, 0.1, 5)
  assert (a.data.protocol, a.data.target_train_fraction,
          a.data.source_val_fraction) == ('split', 0.3, 0.1)
  assert (a.model.ast.layers, a.model.ast.hidden, a.model.ast.heads) == (
      12, 768, 12)
  t = _load('multitask_text')
  assert (t.model.name, t.data.features) == ('bert', 'tokens')
  assert t.multitask.lambda_aug == 0.0 and t.multitask.cutoff_p == 0.15
  assert (t.train.batch_size, t.train.validation.every) == (512, 5)
  assert (t.model.bert.layers, t.model.bert.hidden) == (12, 768)
  methods_lib.get('multitask').check_config(a)
  methods_lib.get('multitask').check_config(t)


def test_text_errors_name_the_field(cache_dir):
  c = _tiny_text_config(cache_dir)
  c.multitask.lambda_aug = 0.1
  with pytest.raises(ValueError, match='config.multitask.lambda_aug'):
    methods_lib.get('multitask').check_config(c)
  c = _tiny_text_config(cache_dir)
  c.multitask.cutoff_p = 1.5
  with pytest.raises(ValueError, match='config.multitask.cutoff_p'):
    methods_lib.create(c, 4)
  # An audio network on token ids.
  c = _tiny_text_config(cache_dir)
  c.model.name = 'cnn_tcn'
  with pytest.raises(ValueError, match='config.data.features'):
    methods_lib.get('multitask').check_config(c)


def test_text_method_on_a_corpus_without_transcripts(tmp_path, cache_dir):
  c = _tiny_text_config(cache_dir)
  c.data.source = 'tiny_src'  # conftest's tiny corpora have no text.
  with pytest.raises(ValueError, match="needs transcripts, corpus 'tiny_src'"):
    train.train_and_evaluate(c, str(tmp_path))
  assert not os.path.exists(tmp_path / 'results.json')


def test_text_views_cut_tokens_and_keep_the_rest(cache_dir):
  c = _tiny_text_config(cache_dir)
  c.multitask.cutoff_p = 0.5
  m = methods_lib.create(c, 4)
  assert m.modality == 'text' and m.num_views == 2
  ids = jnp.asarray(np.random.default_rng(0).integers(1000, 9000, (64, 12)),
                    jnp.int32)
  lengths = jnp.full((64,), 10)
  views, labels = m.views(jax.random.PRNGKey(0), ids, lengths)
  assert labels is None and views.shape == (2, 64, 12)
  assert views.dtype == jnp.int32
  v = np.asarray(views)
  cut = v == 0
  assert 0.4 < cut[:, :, 1:9].mean() < 0.6
  assert not cut[:, :, 0].any() and not cut[:, :, 9:].any()
  assert (v[0] != v[1]).any()  # Two different views.


def test_text_system_end_to_end_with_validation(tmp_path, cache_dir):
  c = _tiny_text_config(cache_dir, steps=4)
  result = train.train_and_evaluate(c, str(tmp_path))
  assert result['features'] == 'tokens' and result['steps'] == 4
  assert result['validation']['arrays'] == 'source_val'
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  losses = [r for r in rows if 'train/loss_cl' in r]
  assert losses and all(np.isfinite(r['train/loss_cl']) and
                        np.isfinite(r['train/loss_im']) for r in losses)
  assert not any('train/loss_aug' in r for r in rows)
  assert os.path.exists(tmp_path / 'predictions.csv')


def test_without_target_data_reads_no_target_batch(cache_dir):
  """Table 11's "without target data": the loss is the same whatever the
  target batch holds."""
  c = _tiny_text_config(cache_dir)
  c.multitask.use_target = False
  m = methods_lib.create(c, 4)
  assert not m.use_target
  rng = np.random.default_rng(0)

  def domain(labelled):
    b = {'features': jnp.asarray(rng.integers(1000, 9000, (8, 12)),
                                 jnp.int32),
         'length': jnp.full((8,), 12, jnp.int32)}
    if labelled:
      b['label'] = jnp.asarray(rng.integers(0, 4, 8), jnp.int32)
    return b
  batch = {'source': domain(True), 'target': domain(False)}
  variables = m.init_variables(jax.random.PRNGKey(0), batch)
  args = (variables['params'], variables.get('batch_stats', {}),
          m.init_state())
  loss = jax.jit(lambda b: m.loss(*args, b, jax.random.PRNGKey(1), 0)[0])
  loss_a = loss(batch)
  other = dict(batch, target=domain(False))
  loss_b = loss(other)
  assert float(loss_a) == float(loss_b)
  c.multitask.use_target = True
  m2 = methods_lib.create(c, 4)
  loss2 = jax.jit(lambda b: m2.loss(*args, b, jax.random.PRNGKey(1), 0)[0])
  loss_c, loss_d = loss2(batch), loss2(other)
  assert float(loss_c) != float(loss_d)
