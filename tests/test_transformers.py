"""AST and BERT in Flax against Hugging Face: hidden states of the tiny
checkpoints in tests/golden/ (made by tests/make_transformer_goldens.py with
torch and transformers, neither needed here), tokenisation, the weighted
layer sum and pooling, `jaxser.embed`, and the checkpoint errors."""

import json
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import safetensors.numpy

from jaxser import embed as embed_lib
from jaxser.models import ast
from jaxser.models import bert
from jaxser.models import hf_checkpoint as hf
from jaxser.models import transformer_blocks as tb

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
AST_DIR = os.path.join(GOLDEN, 'ast_tiny')
BERT_DIR = os.path.join(GOLDEN, 'bert_tiny')
TOL = 1e-4


def _golden(directory):
  return dict(np.load(os.path.join(directory, 'golden.npz')))


def _copy(src, dst, skip=()):
  os.makedirs(dst, exist_ok=True)
  for name in os.listdir(src):
    if name not in skip:
      shutil.copy(os.path.join(src, name), dst)
  return str(dst)


def _one_line_error(excinfo):
  message = str(excinfo.value)
  assert '\n' not in message, message
  return message


@pytest.fixture(scope='module')
def ast_model():
  return ast.from_config({'checkpoint': AST_DIR}), ast.load_params(AST_DIR)


@pytest.fixture(scope='module')
def bert_model():
  return bert.from_config({'checkpoint': BERT_DIR}), bert.load_params(BERT_DIR)


# --- parity with Hugging Face ------------------------------------------------


def test_ast_hidden_states_match_hf(ast_model):
  model, params = ast_model
  g = _golden(AST_DIR)
  out = model.apply({'params': params}, jnp.asarray(g['input_values']))
  assert out.hidden_states.shape == g['hidden_states'].shape == (3, 2, 62, 32)
  np.testing.assert_allclose(out.hidden_states, g['hidden_states'], atol=TOL)
  np.testing.assert_allclose(out.last_hidden_state, g['last_hidden_state'],
                             atol=TOL)
  assert out.mask.shape == (2, 62) and float(out.mask.min()) == 1.0


@pytest.mark.parametrize('frames', [40, 100])
@pytest.mark.parametrize('mode', ['ast', 'bilinear'])
def test_ast_other_frame_counts_resize_positions(ast_model, frames, mode):
  model, params = ast_model
  model = model.clone(pos_resize=mode)
  x = np.random.default_rng(0).standard_normal((2, frames, 128), np.float32)
  out = model.apply({'params': params}, jnp.asarray(x))
  f, t = model.grid(frames)
  assert out.hidden_states.shape == (3, 2, f * t + 2, 32)
  assert np.isfinite(np.asarray(out.hidden_states)).all()


def test_ast_position_resize_rules():
  # A 3 x 4 grid grown in time is interpolated (the edges keep the end
  # columns' values), shrunk in time keeps its centre columns.
  grid = jnp.arange(12.0).reshape(1, 3, 4, 1)
  grown = ast._resize_axis(grid, 2, 8, 'ast')  # pylint: disable=protected-access
  np.testing.assert_allclose(grown[0, 0, :, 0],
                             [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
  shrunk = ast._resize_axis(grid, 2, 2, 'ast')  # pylint: disable=protected-access
  np.testing.assert_array_equal(shrunk[0, :, :, 0], [[1, 2], [5, 6], [9, 10]])


def test_ast_lengths_pad_like_hf_and_mask_tokens(ast_model):
  model, params = ast_model
  x = np.random.default_rng(1).standard_normal((2, 64, 128), np.float32)
  lengths = np.array([64, 30])
  # jaxser pads with zeros after normalising; AST's extractor before.
  x[1, 30:] = 0.0
  hf_padded = x.copy()
  hf_padded[1, 30:] = ast.PAD_VALUE
  out = model.apply({'params': params}, jnp.asarray(x), jnp.asarray(lengths))
  ref = model.apply({'params': params}, jnp.asarray(hf_padded))
  np.testing.assert_allclose(out.hidden_states, ref.hidden_states, atol=1e-6)
  # Time patches start every 12 frames: 0, 12, 24 lie inside 30 frames.
  f, t = model.grid(64)
  patches = np.asarray(out.mask[1, 2:]).reshape(f, t)
  np.testing.assert_array_equal(patches, np.tile([1, 1, 1, 0, 0], (f, 1)))
  assert float(out.mask[0].min()) == 1.0 and out.mask[1, :2].tolist() == [1, 1]
  np.testing.assert_allclose(ast.PAD_VALUE, 4.2677393 / (2 * 4.5689974))


def test_bert_hidden_states_match_hf(bert_model):
  model, params = bert_model
  g = _golden(BERT_DIR)
  ids, mask = jnp.asarray(g['input_ids']), jnp.asarray(g['attention_mask'])
  assert (g['attention_mask'] == 0).any()  # Padding is exercised.
  out = model.apply({'params': params}, ids, mask)
  np.testing.assert_allclose(out.hidden_states, g['hidden_states'], atol=TOL)
  np.testing.assert_allclose(out.last_hidden_state, g['last_hidden_state'],
                             atol=TOL)
  out = model.apply({'params': params}, ids, mask,
                    jnp.asarray(g['token_type_ids']))
  np.testing.assert_allclose(out.hidden_states,
                             g['hidden_states_token_types'], atol=TOL)
  np.testing.assert_array_equal(out.mask, g['attention_mask'])


# --- tokenisation --------------------------------------------------------------


def _tokens():
  with open(os.path.join(BERT_DIR, 'tokens.json')) as f:
    return json.load(f)


def _check_tokenizer(tokenizer):
  t = _tokens()
  assert [e.ids for e in tokenizer.encode_batch(t['sentences'])] == t['ids']
  ids, mask = bert.encode(tokenizer, t['sentences'], t['max_length'])
  np.testing.assert_array_equal(ids, t['batch_input_ids'])
  np.testing.assert_array_equal(mask, t['batch_attention_mask'])


def test_tokenizer_from_tokenizer_json():
  _check_tokenizer(bert.load_tokenizer(BERT_DIR))


def test_tokenizer_from_vocab_txt(tmp_path):
  d = _copy(BERT_DIR, tmp_path / 'ckpt', skip=('tokenizer.json',))
  _check_tokenizer(bert.load_tokenizer(d))


def test_tokenizer_cased_per_tokenizer_config(tmp_path):
  d = _copy(BERT_DIR, tmp_path / 'ckpt', skip=('tokenizer.json',))
  with open(os.path.join(d, 'tokenizer_config.json'), 'w') as f:
    json.dump({'do_lower_case': False}, f)
  tok = bert.load_tokenizer(d)
  lower = bert.load_tokenizer(BERT_DIR)
  # 'The' is not in the cased vocabulary: it splits into letters / [UNK].
  assert tok.encode('The').ids != lower.encode('The').ids
  assert tok.encode('the').ids == lower.encode('the').ids


def test_tokenizer_without_vocab_is_an_error(tmp_path):
  d = _copy(BERT_DIR, tmp_path / 'ckpt', skip=('tokenizer.json', 'vocab.txt'))
  with pytest.raises(ValueError, match='vocab.txt') as e:
    bert.load_tokenizer(d)
  _one_line_error(e)


# --- weighted layer sum and pooling ---------------------------------------------


def test_weighted_layer_sum_and_masked_mean_against_numpy():
  rng = np.random.default_rng(2)
  hidden = rng.standard_normal((5, 3, 7, 4)).astype(np.float32)
  mask = np.array([[1] * 7, [1, 1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]],
                  np.float32)
  w = rng.standard_normal(5).astype(np.float32)
  output = tb.TransformerOutput(last_hidden_state=jnp.asarray(hidden[-1]),
                                hidden_states=jnp.asarray(hidden),
                                mask=jnp.asarray(mask))
  pool = tb.LayerSumPooling()
  params = pool.init(jax.random.key(0), output)['params']
  # Initialised to the plain average of the layers.
  np.testing.assert_array_equal(params['layer_sum']['layer_weights'],
                                np.zeros(5))
  params = {'layer_sum': {'layer_weights': jnp.asarray(w)}}
  utterance, frames = pool.apply({'params': params}, output)
  a = np.exp(w - w.max()) / np.exp(w - w.max()).sum()
  ref_frames = np.einsum('l,lbth->bth', a, hidden)
  ref = (ref_frames * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
  np.testing.assert_allclose(frames, ref_frames, atol=1e-5)
  np.testing.assert_allclose(utterance, ref, atol=1e-5)
  # Padding does not leak into the mean: changing it changes nothing.
  hidden2 = hidden.copy()
  hidden2[:, 2, 1:] = 1e3
  u2, _ = pool.apply({'params': params},
                     output.replace(hidden_states=jnp.asarray(hidden2)))
  np.testing.assert_allclose(u2[2], utterance[2], atol=1e-4)
  with pytest.raises(ValueError, match='output_hidden_states'):
    pool.apply({'params': params}, output.replace(hidden_states=None))


@pytest.mark.parametrize('name', ['ast', 'bert'])
def test_network_embedding_from_checkpoint_against_numpy(name):
  """The registry-facing network: checkpoint in 'encoder', utterance
  embedding = mean over valid tokens of the (initially uniform) layer
  average of HF's hidden states."""
  lib, directory = {'ast': (ast, AST_DIR), 'bert': (bert, BERT_DIR)}[name]
  g = _golden(directory)
  net = lib.network_from_config({'checkpoint': directory})
  if name == 'ast':
    x = g['input_values']
    lengths = np.full(2, 64)
    mask = np.ones(g['hidden_states'].shape[1:3])
  else:
    x = g['input_ids']
    lengths = g['attention_mask'].sum(1)
    mask = g['attention_mask'].astype(np.float64)
  args = (jnp.asarray(x), jnp.asarray(lengths))
  shapes = jax.eval_shape(net.init, jax.random.key(0), *args)['params']
  params = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype),
                                  shapes)
  params = lib.load_network_params(params, directory)
  out = net.apply({'params': params}, *args)
  frames = g['hidden_states'].mean(0)
  ref = (frames * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
  np.testing.assert_allclose(out['embedding'], ref, atol=TOL)
  if name == 'ast':
    f, t = net.encoder.grid(64)
    np.testing.assert_allclose(
        out['frames'], frames[:, 2:].reshape(2, f, t, 32).mean(1), atol=TOL)
    np.testing.assert_array_equal(out['frame_lengths'], [t, t])
  else:
    np.testing.assert_allclose(out['frames'], frames, atol=TOL)
    np.testing.assert_array_equal(out['frame_lengths'], lengths)
  # A network of other sizes does not take the checkpoint.
  other = lib.network_from_config({'layers': 2, 'hidden': 64, 'heads': 4})
  shapes = jax.eval_shape(other.init, jax.random.key(0), *args)['params']
  with pytest.raises(ValueError, match='do not fit the module') as e:
    lib.load_network_params(shapes, directory)
  _one_line_error(e)


# --- tiny random models, dtype and remat ----------------------------------------


def _random_params(model, args):
  """Random float32 parameters of `model`'s structure, drawn by NumPy: XLA
  takes seconds to compile `init`'s random number generation on CPU."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), *args)['params']
  rng = np.random.default_rng(0)
  return jax.tree_util.tree_map(
      lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape), s.dtype),
      shapes)


@pytest.mark.parametrize('name', ['ast', 'bert'])
def test_tiny_random_models_train_with_remat_and_bf16(name):
  cfg = ml_collections.ConfigDict(
      {'layers': 2, 'hidden': 64, 'heads': 4, 'dropout': 0.1})
  lib = {'ast': ast, 'bert': bert}[name]
  model = lib.from_config(cfg)
  assert (model.layers, model.hidden, model.heads, model.mlp_dim) == (
      2, 64, 4, 256)
  if name == 'ast':
    args = (jnp.asarray(np.random.default_rng(0).standard_normal(
        (2, 48, 128), np.float32)), jnp.array([48, 20]))
  else:
    args = (jnp.array([[2, 7, 9, 3, 0], [2, 5, 3, 0, 0]]),
            jnp.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]))
  params = _random_params(model, args)
  cfg.dtype = 'bfloat16'
  model16 = lib.from_config(cfg)
  shapes16 = jax.eval_shape(model16.init, jax.random.key(0), *args)['params']
  # bf16 compute keeps float32 parameters.
  assert {a.dtype for a in jax.tree_util.tree_leaves(shapes16)} == {
      jnp.dtype(jnp.float32)}

  def grads(m, p):
    def loss(p):
      out = m.apply({'params': p}, *args, train=True,
                    rngs={'dropout': jax.random.key(3)})
      return (out.hidden_states.astype(jnp.float32) ** 2).mean()
    return jax.grad(loss)(p)

  @jax.jit  # One program: eager dispatch and separate compiles are slow.
  def run(p):
    return (model.apply({'params': p}, *args), grads(model, p),
            grads(model.clone(remat=True), p),
            model16.apply({'params': p}, *args))

  out, g, g_remat, out16 = run(params)
  assert out.hidden_states.shape[:2] == (3, 2)
  assert out.hidden_states.shape[-1] == 64
  assert all(np.isfinite(a).all() for a in jax.tree_util.tree_leaves(g))
  # nn.remat recomputes, it does not change values or gradients.
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), g, g_remat)
  # bf16 compute lands near the float32 result.
  assert out16.hidden_states.dtype == jnp.bfloat16
  err = np.abs(np.asarray(out16.last_hidden_state, np.float32)
               - np.asarray(out.last_hidden_state)).max()
  assert err < 0.15, err


def test_from_config_size_against_checkpoint():
  cfg = ml_collections.ConfigDict({'checkpoint': AST_DIR, 'hidden': 64,
                                   'layers': None})
  with pytest.raises(ValueError, match=r'config\.model\.hidden=64 .*'
                     r'hidden_size=32') as e:
    ast.from_config(cfg)
  _one_line_error(e)
  cfg.hidden = 32  # Agreeing sizes are fine.
  assert ast.from_config(cfg).time_stride == 12
  with pytest.raises(ValueError, match=r'config\.model\.vocab_size'):
    bert.from_config({'checkpoint': BERT_DIR, 'vocab_size': 30522})
  with pytest.raises(ValueError, match="model_type='bert'"):
    ast.from_config({'checkpoint': BERT_DIR})
  with pytest.raises(ValueError, match=r'config\.model\.dtype'):
    bert.from_config({'layers': 2, 'hidden': 64, 'heads': 4,
                      'dtype': 'bf16'})


# --- jaxser.embed -----------------------------------------------------------------


def test_embed_cli_writes_hf_hidden_states(tmp_path):
  g = _golden(BERT_DIR)
  np.save(tmp_path / 'ids.npy', g['input_ids'])
  np.save(tmp_path / 'mask.npy', g['attention_mask'])
  out = str(tmp_path / 'bert.npz')
  # Batches of 2 over 3 inputs: the padded last batch is cut back.
  embed_lib.embed_files(BERT_DIR, str(tmp_path / 'ids.npy'), out,
                        str(tmp_path / 'mask.npy'), batch_size=2)
  y = np.load(out)
  assert y['hidden_states'].shape == g['hidden_states'].shape
  np.testing.assert_allclose(y['hidden_states'], g['hidden_states'], atol=TOL)
  np.testing.assert_allclose(y['last_hidden_state'], g['last_hidden_state'],
                             atol=TOL)

  g = _golden(AST_DIR)
  np.save(tmp_path / 'x.npy', g['input_values'])
  out = str(tmp_path / 'ast.npz')
  embed_lib.embed_files(AST_DIR, str(tmp_path / 'x.npy'), out)
  y = np.load(out)
  np.testing.assert_allclose(y['hidden_states'], g['hidden_states'], atol=TOL)
  np.testing.assert_allclose(y['last_hidden_state'], g['last_hidden_state'],
                             atol=TOL)


def _run_main(monkeypatch, argv):
  """`python -m jaxser.embed ARGV` in this process: its own flags, and no
  setup_process (it imports TensorFlow, ~10 s, and would point this test
  process's compilation cache elsewhere)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  fv = flags.FlagValues()
  embed_lib._define_flags(fv)  # pylint: disable=protected-access
  fv(['jaxser.embed'] + argv)
  monkeypatch.setattr(flags, 'FLAGS', fv)
  monkeypatch.setattr(embed_lib.runtime, 'setup_process', lambda: None)
  embed_lib.main([])


def test_embed_main(tmp_path, monkeypatch, capsys):
  g = _golden(BERT_DIR)
  np.save(tmp_path / 'ids.npy', g['input_ids'][:2])
  out = tmp_path / 'y.npz'
  _run_main(monkeypatch, [f'--checkpoint={BERT_DIR}',
                          f'--inputs={tmp_path / "ids.npy"}', f'--out={out}'])
  assert 'hidden_states (3, 2, 24, 32)' in capsys.readouterr().out
  y = np.load(out)
  model, params = bert.from_config({'checkpoint': BERT_DIR}), bert.load_params(
      BERT_DIR)
  ref = model.apply({'params': params}, jnp.asarray(g['input_ids'][:2]))
  np.testing.assert_allclose(y['hidden_states'], ref.hidden_states, atol=TOL)
  # A bad input: one line on stderr, exit status 2, no output file.
  np.save(tmp_path / 'bad.npy', np.zeros((2, 5), np.float32))
  with pytest.raises(SystemExit) as e:
    _run_main(monkeypatch, [f'--checkpoint={BERT_DIR}',
                            f'--inputs={tmp_path / "bad.npy"}',
                            f'--out={tmp_path / "bad.npz"}'])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith('error: --inputs=') and '\n' not in err, err
  assert 'must be integers' in err
  assert not os.path.exists(tmp_path / 'bad.npz')


@pytest.mark.parametrize('which,inputs,extra,match', [
    ('ast', np.zeros((2, 64)), {}, r'expected \(batch, frames, 128\)'),
    ('ast', np.zeros((2, 64, 80)), {}, '80 mel bins'),
    ('ast', np.zeros((2, 8, 128)), {}, 'fewer than one patch'),
    ('ast', np.full((1, 64, 128), np.nan), {}, 'NaN'),
    ('ast', np.zeros((1, 64, 128)), {'token_type_ids': np.zeros((1, 62), int)},
     'only BERT'),
    ('ast', np.zeros((1, 64, 128)), {'attention_mask': np.ones((1, 64))},
     r'expected \(1, 62\)'),
    ('bert', np.zeros((2, 5), np.float32), {}, 'must be integers'),
    ('bert', np.full((2, 5), 500), {}, r'\[0, 105\)'),
    ('bert', np.zeros((2, 40), int), {}, 'max_position_embeddings=32'),
    ('bert', np.zeros((2, 5), int), {'attention_mask': np.ones((2, 4))},
     r'expected \(2, 5\)'),
    ('bert', np.zeros((2, 5), int), {'attention_mask': np.full((2, 5), 2)},
     '0 or 1'),
    ('bert', np.zeros((2, 5), int), {'token_type_ids': np.full((2, 5), 2)},
     r'\[0, 2\)'),
    ('bert', np.zeros((0, 5), int), {}, 'empty'),
])
def test_embed_bad_inputs_are_one_line_errors(tmp_path, which, inputs, extra,
                                              match):
  paths = {}
  for name, array in [('inputs', inputs)] + sorted(extra.items()):
    paths[name] = str(tmp_path / f'{name}.npy')
    np.save(paths[name], array)
  with pytest.raises(ValueError, match=match) as e:
    embed_lib.embed_files({'ast': AST_DIR, 'bert': BERT_DIR}[which],
                          paths['inputs'], str(tmp_path / 'y.npz'),
                          paths.get('attention_mask'),
                          paths.get('token_type_ids'))
  assert '--' in _one_line_error(e)  # Names the flag's file.
  assert not os.path.exists(tmp_path / 'y.npz')


def test_embed_unknown_model_type_and_missing_file(tmp_path):
  d = _copy(BERT_DIR, tmp_path / 'ckpt')
  with open(os.path.join(d, 'config.json')) as f:
    config = json.load(f)
  config['model_type'] = 'gpt2'
  with open(os.path.join(d, 'config.json'), 'w') as f:
    json.dump(config, f)
  np.save(tmp_path / 'ids.npy', np.zeros((1, 4), int))
  with pytest.raises(ValueError, match="model_type='gpt2'") as e:
    embed_lib.embed_files(d, str(tmp_path / 'ids.npy'), str(tmp_path / 'y.npz'))
  _one_line_error(e)
  with pytest.raises(ValueError, match='no such file'):
    embed_lib.embed_files(BERT_DIR, str(tmp_path / 'none.npy'),
                          str(tmp_path / 'y.npz'))


# --- checkpoint errors and formats ----------------------------------------------


def test_directory_without_weights(tmp_path):
  d = _copy(AST_DIR, tmp_path / 'ckpt', skip=('model.safetensors',))
  with pytest.raises(ValueError, match='no weights file.*model.safetensors'
                     ) as e:
    ast.load_params(d)
  _one_line_error(e)


def test_directory_without_config(tmp_path):
  d = _copy(AST_DIR, tmp_path / 'ckpt', skip=('config.json',))
  with pytest.raises(ValueError, match='no config.json') as e:
    ast.load_params(d)
  _one_line_error(e)
  with pytest.raises(ValueError, match='no config.json'):
    ast.from_config({'checkpoint': d})


def test_shapes_that_disagree_with_the_config(tmp_path):
  d = _copy(AST_DIR, tmp_path / 'ckpt')
  with open(os.path.join(d, 'config.json')) as f:
    config = json.load(f)
  config['intermediate_size'] = 48
  with open(os.path.join(d, 'config.json'), 'w') as f:
    json.dump(config, f)
  with pytest.raises(ValueError) as e:
    ast.load_params(d)
  message = _one_line_error(e)
  assert 'model.safetensors' in message and 'config.json' in message
  assert 'intermediate_size=48' in message
  assert 'encoder.layer.0.intermediate.dense.weight is (64, 32)' in message


def test_missing_and_unexpected_weights_are_all_named(tmp_path):
  d = _copy(BERT_DIR, tmp_path / 'ckpt')
  path = os.path.join(d, 'model.safetensors')
  state = safetensors.numpy.load_file(path)
  dropped = ['encoder.layer.0.attention.self.key.weight',
             'encoder.layer.1.output.LayerNorm.bias',
             'embeddings.token_type_embeddings.weight']
  for name in dropped:
    del state[name]
  state['encoder.layer.0.attention.self.rotary.weight'] = np.zeros(3,
                                                                   np.float32)
  state['encoder.layer.7.output.dense.bias'] = np.zeros(32, np.float32)
  # The same weight twice, with and without the task model's prefix.
  state['bert.pooler.dense.bias'] = np.zeros(32, np.float32)
  state['bert.embeddings.LayerNorm.bias'] = np.zeros(32, np.float32)
  safetensors.numpy.save_file(state, path)
  with pytest.raises(ValueError) as e:
    bert.load_params(d)
  message = _one_line_error(e)
  assert '3 missing weights' in message and '3 unexpected weights' in message
  for name in dropped + ['encoder.layer.0.attention.self.rotary.weight',
                         'encoder.layer.7.output.dense.bias',
                         'embeddings.LayerNorm.bias [again, as '
                         'bert.embeddings.LayerNorm.bias]']:
    assert name in message


def test_pytorch_bin_without_torch_says_use_safetensors(tmp_path, monkeypatch):
  d = _copy(BERT_DIR, tmp_path / 'ckpt', skip=('model.safetensors',))
  with open(os.path.join(d, 'pytorch_model.bin'), 'wb') as f:
    f.write(b'not read')
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` fails.
  with pytest.raises(ValueError, match='pytorch_model.bin needs torch.*'
                     'model.safetensors') as e:
    bert.load_params(d)
  _one_line_error(e)


def test_pytorch_bin_with_torch(tmp_path):
  torch = pytest.importorskip('torch')
  d = _copy(BERT_DIR, tmp_path / 'ckpt', skip=('model.safetensors',))
  state = safetensors.numpy.load_file(
      os.path.join(BERT_DIR, 'model.safetensors'))
  torch.save({k: torch.from_numpy(v) for k, v in state.items()},
             os.path.join(d, 'pytorch_model.bin'))
  jax.tree_util.tree_map(np.testing.assert_array_equal, bert.load_params(d),
                         bert.load_params(BERT_DIR))


def test_prefixed_checkpoints_with_heads_and_old_names(tmp_path):
  # BertForPreTraining as on the Hub: `bert.` prefix, gamma / beta
  # LayerNorms, heads and buffers that the encoder skips.
  state = safetensors.numpy.load_file(
      os.path.join(BERT_DIR, 'model.safetensors'))
  renamed = {'bert.' + k.replace('LayerNorm.weight', 'LayerNorm.gamma')
             .replace('LayerNorm.bias', 'LayerNorm.beta'): v
             for k, v in state.items()}
  renamed['cls.predictions.bias'] = np.zeros(105, np.float32)
  renamed['bert.embeddings.position_ids'] = np.arange(32)[None]
  d = _copy(BERT_DIR, tmp_path / 'bert', skip=('model.safetensors',))
  safetensors.numpy.save_file(renamed, os.path.join(d, 'model.safetensors'))
  jax.tree_util.tree_map(np.testing.assert_array_equal, bert.load_params(d),
                         bert.load_params(BERT_DIR))

  # ASTForAudioClassification (prefix + classifier head), and the names
  # transformers 5 uses in memory.
  state = safetensors.numpy.load_file(
      os.path.join(AST_DIR, 'model.safetensors'))
  prefixed = {'audio_spectrogram_transformer.' + k: v for k, v in state.items()}
  prefixed['classifier.dense.weight'] = np.zeros((5, 32), np.float32)
  hf5 = {k.replace('encoder.layer.', 'layers.')
         .replace('attention.attention.query', 'attention.q_proj')
         .replace('attention.attention.key', 'attention.k_proj')
         .replace('attention.attention.value', 'attention.v_proj')
         .replace('attention.output.dense', 'attention.o_proj')
         .replace('intermediate.dense', 'mlp.fc1')
         .replace('output.dense', 'mlp.fc2'): v for k, v in state.items()}
  reference = ast.load_params(AST_DIR)
  for name, weights in [('prefixed', prefixed), ('hf5', hf5)]:
    d = _copy(AST_DIR, tmp_path / name, skip=('model.safetensors',))
    safetensors.numpy.save_file(weights, os.path.join(d, 'model.safetensors'))
    jax.tree_util.tree_map(np.testing.assert_array_equal, ast.load_params(d),
                           reference)


def _save_bf16_safetensors(arrays, path):
  """safetensors' NumPy API cannot write bfloat16: write the format here."""
  import ml_dtypes  # pylint: disable=g-import-not-at-top
  header, blobs, offset = {}, [], 0
  for name, a in sorted(arrays.items()):
    blob = np.ascontiguousarray(a.astype(ml_dtypes.bfloat16)).tobytes()
    header[name] = {'dtype': 'BF16', 'shape': list(a.shape),
                    'data_offsets': [offset, offset + len(blob)]}
    blobs.append(blob)
    offset += len(blob)
  head = json.dumps(header).encode()
  head += b' ' * (-len(head) % 8)
  with open(path, 'wb') as f:
    f.write(len(head).to_bytes(8, 'little') + head + b''.join(blobs))


def test_bf16_checkpoint_loads_as_float32(tmp_path):
  state = safetensors.numpy.load_file(
      os.path.join(AST_DIR, 'model.safetensors'))
  d = _copy(AST_DIR, tmp_path / 'ckpt', skip=('model.safetensors',))
  _save_bf16_safetensors(state, os.path.join(d, 'model.safetensors'))
  params = ast.load_params(d)
  reference = ast.load_params(AST_DIR)
  for a, b in zip(jax.tree_util.tree_leaves(params),
                  jax.tree_util.tree_leaves(reference)):
    assert a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2)


def test_sharded_safetensors_index(tmp_path):
  state = safetensors.numpy.load_file(
      os.path.join(BERT_DIR, 'model.safetensors'))
  d = _copy(BERT_DIR, tmp_path / 'ckpt', skip=('model.safetensors',))
  names = sorted(state)
  shards = {'model-00001-of-00002.safetensors': names[::2],
            'model-00002-of-00002.safetensors': names[1::2]}
  weight_map = {}
  for shard, keys in shards.items():
    safetensors.numpy.save_file({k: state[k] for k in keys},
                                os.path.join(d, shard))
    weight_map.update({k: shard for k in keys})
  with open(os.path.join(d, 'model.safetensors.index.json'), 'w') as f:
    json.dump({'weight_map': weight_map}, f)
  jax.tree_util.tree_map(np.testing.assert_array_equal, bert.load_params(d),
                         bert.load_params(BERT_DIR))
