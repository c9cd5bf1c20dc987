"""The pretrained transformers as registered networks (`ast`, `bert`): the
`fbank128` front end against the cached feature set, every single-objective
method on a tiny AST, checkpoints loaded into a method's parameters
(`registry.load_pretrained`), and the config errors.

Sizes are tiny (1 layer, 32 units, 48 frames) so that each method's step
compiles in a few seconds; the checkpoint is tests/golden/ast_tiny.
"""

import json
import os
import shutil

import jax
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections
from ml_collections import config_flags
from absl import flags
import numpy as np
import optax
import pytest

from jaxser import config as config_lib
from jaxser import grid
from jaxser import methods as methods_lib
from jaxser import train
from jaxser.data import features as features_lib
from jaxser.models import ast
from jaxser.models import bert
from jaxser.models import frontend
from jaxser.models import registry

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
AST_DIR = os.path.join(GOLDEN, 'ast_tiny')
BERT_DIR = os.path.join(GOLDEN, 'bert_tiny')
NUM_CLASSES = 4
BATCH = 2  # Per domain.
FRAMES = 48
TINY_AST = dict(layers=1, hidden=32, heads=2, mlp_dim=64, max_length=FRAMES)
# The golden checkpoint: 2 x 32, 4 heads, time_stride 12, max_length 64.
GOLDEN_FRAMES = 64

# Every single-objective method but DIFL (it needs segments).
METHODS = ('source_only', 'dann', 'dan', 'jan', 'cdan', 'cdan_e', 'bsp',
           'mmd_ser', 'emodna')


def _one_line(excinfo):
  message = str(excinfo.value)
  assert '\n' not in message, message
  return message


def _config(method='source_only', checkpoint=''):
  """configs/<method>.py on a tiny AST over cached fbank128."""
  c = grid.load_config(method, grid.default_configs_dir())
  c.model.name = 'ast'
  c.model.frontend = ''
  c.data.features = 'fbank128'
  if checkpoint:
    c.model.ast.checkpoint = checkpoint
    c.data.frames = GOLDEN_FRAMES
  else:
    c.model.ast.update(TINY_AST)
    c.data.frames = FRAMES
  if 'lstm_hidden' in c.model:  # Emo-DNA's corpus encoder: half of E.
    c.model.projection_dim = 8
  for block in ('dann', 'cdan', 'cdan_e', 'bsp'):
    if block in c:
      c[block].discriminator_hidden = 16
  return c


def _batch(frames, dims=128, seed=0, ints=None):
  rng = np.random.default_rng(seed)

  def domain(with_label, d):
    if ints:
      x = rng.integers(0, ints, (BATCH, frames)).astype(np.int32)
    elif not dims:  # Waveforms.
      x = 0.1 * rng.standard_normal((BATCH, frames)).astype(np.float32)
    else:
      x = rng.standard_normal((BATCH, frames, dims)).astype(np.float32)
    b = {'features': x,
         'length': rng.integers(frames // 2, frames + 1, BATCH).astype(
             np.int32),
         'domain': np.full(BATCH, d, np.int32),
         'gender': rng.integers(-1, 2, BATCH).astype(np.int32),
         'language': np.full(BATCH, d, np.int32)}
    if with_label:
      b['label'] = rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32)
    return b
  return {'source': domain(True, 0), 'target': domain(False, 1)}


def _step(method, batch, params=None):
  """One jitted train step of the loop; (state, new state, metrics)."""
  tx = optax.sgd(1e-2)

  @jax.jit
  def run(params):
    state = train.create_train_state(method, tx, 0, batch)
    if params is not None:
      state = state.replace(params=params)
    new, metrics = train.make_train_step(method, tx)(state, batch)
    return state, new, metrics
  if params is None:
    return jax.device_get(run(None))
  return jax.device_get(run(params))


def _init_params(method, batch):
  tx = optax.sgd(1e-2)
  return jax.jit(lambda: train.create_train_state(method, tx, 0,
                                                  batch).params)()


# --- the fbank128 front end --------------------------------------------------


def test_fbank_frontend_matches_the_feature_set():
  fs = features_lib.get('fbank128')
  fbank = registry.FRONTENDS['fbank128'](fs.defaults)
  assert isinstance(fbank, frontend.FBank)
  rng = np.random.default_rng(0)
  t = np.arange(6000) / 16000
  clips = [
      0.3 * np.sin(2 * np.pi * 220 * t[:5000]) + 0.01 * rng.standard_normal(
          5000),
      0.1 * rng.standard_normal(6000),
      np.concatenate([np.zeros(800), 0.5 * np.sin(2 * np.pi * 1000 * t[:1500])
                      * np.exp(-10 * t[:1500]), 1e-4 * rng.standard_normal(
                          900)]),
      0.05 * rng.standard_normal(450),  # One frame.
  ]
  wave = np.zeros((len(clips), 6000), np.float32)
  for i, c in enumerate(clips):
    wave[i, :len(c)] = c
  lengths = np.array([len(c) for c in clips], np.int32)
  x, frames = jax.jit(fbank)(wave, lengths)
  x, frames = np.asarray(x), np.asarray(frames)
  assert x.shape == (4, (6000 - 400) // 160 + 1, 128)
  for i, c in enumerate(clips):
    want = fs.fn(c.astype(np.float32), **fs.defaults)
    n = want.shape[0]
    assert frames[i] == n == fbank.num_frames(len(c))
    np.testing.assert_allclose(x[i, :n], want, atol=1e-4)
    assert not x[i, n:].any()
  # Shorter than a window: one frame, of the zero-padded clip.
  x, frames = fbank(wave[:1, :100], np.array([100], np.int32))
  assert x.shape == (1, 1, 128) and int(frames[0]) == 1
  # The multitask AST config's waveform length gives AST's 1024 frames.
  assert fbank.num_frames(164080) == 1024 == fbank.num_frames(
      fbank.samples_for(1024))


# --- the options blocks ------------------------------------------------------


def test_options_blocks_in_the_base_config_take_command_line_overrides():
  c = config_lib.base_config()
  assert c.model.ast.to_dict() == dict(registry.get('ast').defaults)
  assert c.model.ast.layers == 12 and c.model.ast.hidden == 768
  assert c.model.bert.vocab_size == 30522 and c.model.bert.checkpoint == ''
  argv = ['prog', '--config.model.name=ast', '--config.model.ast.layers=2',
          '--config.model.ast.hidden=64', '--config.model.ast.checkpoint=/x',
          '--config.model.ast.remat=true', '--config.model.ast.dropout=0.1',
          '--config.model.ast.pos_resize=bilinear',
          '--config.model.bert.dtype=bfloat16',
          '--config.model.bert.max_position_embeddings=128']
  values = flags.FlagValues()
  flag = config_flags.DEFINE_config_dict('config', c, flag_values=values,
                                         lock_config=True, sys_argv=argv)
  values(argv)
  c = flag.value
  assert (c.model.ast.layers, c.model.ast.hidden) == (2, 64)
  assert c.model.ast.checkpoint == '/x' and c.model.ast.remat
  assert c.model.bert.dtype == 'bfloat16'
  assert c.model.bert.max_position_embeddings == 128


def test_sizes_default_to_the_base_model_or_the_checkpoint():
  c = _config()
  c.model.ast.update(dict(mlp_dim=3072, hidden=64))  # mlp_dim: 4 x hidden.
  net = registry.build_network(c)
  assert (net.encoder.hidden, net.encoder.mlp_dim) == (64, 256)
  assert registry.embedding_dim(c) == 64
  c = _config(checkpoint=AST_DIR)  # Sizes left at the defaults.
  net = registry.build_network(c).encoder
  assert (net.layers, net.hidden, net.heads, net.time_stride,
          net.max_length) == (2, 32, 4, 12, 64)
  assert registry.embedding_dim(c) == 32
  c.model.ast.hidden = 32  # Agreeing is fine.
  assert registry.build_network(c).encoder.hidden == 32


# --- every method on the AST ------------------------------------------------

# A step compiles in 10-30 s on a 2-core CPU: DANN (an adversarial method) runs
# by default, the others under the `slow` marker (source_only also runs with
# the checkpoint loaded, below).
FAST = ('dann',)


@pytest.mark.parametrize('method_name', [
    m if m in FAST else pytest.param(m, marks=pytest.mark.slow)
    for m in METHODS])
def test_every_method_trains_a_step_on_the_ast(method_name):
  config = _config(method_name)
  method = methods_lib.create(config, NUM_CLASSES, (3, 4, 5, 6))
  batch = _batch(FRAMES)
  state, new, metrics = _step(method, batch)
  assert np.isfinite(metrics['loss']) and metrics['grad_norm'] > 0
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                       state.params, new.params)
  assert max(jax.tree.leaves(moved)) > 0


# --- checkpoints into a method's parameters --------------------------------


def _assert_loaded(tree, want):
  got = jax.tree_util.tree_leaves_with_path(tree)
  flat = {jax.tree_util.keystr(p): a for p, a
          in jax.tree_util.tree_leaves_with_path(want)}
  assert len(got) == len(flat)
  for p, a in got:
    np.testing.assert_array_equal(np.asarray(a), flat[jax.tree_util.keystr(p)])


def _zero_params_of(module, *args):
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes['params'])


def _zero_params(method, batch):
  """The method's parameter tree as numpy zeros (no compile)."""
  shapes = jax.eval_shape(
      lambda: method.init_variables(jax.random.PRNGKey(0), batch))['params']
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def test_load_pretrained_then_train(tmp_path):
  """source_only on the golden AST: the loop's replicated state, loaded,
  then one train step."""
  want = ast.load_params(AST_DIR)
  config = _config('source_only', checkpoint=AST_DIR)
  method = methods_lib.create(config, NUM_CLASSES)
  batch = _batch(GOLDEN_FRAMES)
  params = _init_params(method, batch)
  # The loop's state is replicated over a mesh: loading keeps placement.
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  params = jax.device_put(params, NamedSharding(mesh, P()))
  loaded = registry.load_pretrained(config, params)
  # EmotionModel shares the network's scope: 'encoder' beside the head.
  _assert_loaded(loaded['encoder'], want)
  for key in set(params) - {'encoder'}:
    jax.tree.map(np.testing.assert_array_equal, loaded[key], params[key])
  for old, new in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
    assert isinstance(new, jax.Array) and new.dtype == old.dtype
    assert new.sharding == old.sharding
  _, new, metrics = _step(method, batch, jax.device_get(loaded))
  assert np.isfinite(metrics['loss']) and metrics['grad_norm'] > 0
  # No checkpoint: the same tree back.
  config.model.ast.checkpoint = ''
  assert registry.load_pretrained(config, params) is params


def test_load_pretrained_finds_the_network_however_methods_nest_it():
  want = ast.load_params(AST_DIR)
  batch = _batch(GOLDEN_FRAMES)
  for name, path in (('dann', ('emotion_net', 'encoder')),
                     ('emodna', ('encoder',))):
    config = _config(name, checkpoint=AST_DIR)
    params = _zero_params(methods_lib.create(config, NUM_CLASSES), batch)
    loaded = registry.load_pretrained(config, params)
    node = loaded
    for key in path:
      node = node[key]
    _assert_loaded(node, want)
    assert isinstance(jax.tree.leaves(loaded)[0], np.ndarray)
  # Two copies of the network: both loaded.
  twice = {'a': {'encoder': params['encoder']}, 'b': params}
  loaded = registry.load_pretrained(config, twice)
  _assert_loaded(loaded['a']['encoder'], want)
  _assert_loaded(loaded['b']['encoder'], want)
  # The multitask method holds the network under 'encoder', on waveforms
  # through the fbank128 front end.
  config = grid.load_config('multitask', grid.default_configs_dir())
  config.model.name = 'ast'
  config.model.frontend = 'fbank128'
  config.model.ast.checkpoint = AST_DIR
  samples = frontend.FBank().samples_for(GOLDEN_FRAMES)
  config.data.feature_params.waveform.samples = samples
  method = methods_lib.create(config, NUM_CLASSES)
  batch = _batch(samples, dims=0)
  loaded = registry.load_pretrained(config, _zero_params(method, batch))
  _assert_loaded(loaded['encoder']['encoder'], want)


# --- errors -------------------------------------------------------------------


def _copy(src, dst, skip=()):
  os.makedirs(dst, exist_ok=True)
  for name in os.listdir(src):
    if name not in skip:
      shutil.copy(os.path.join(src, name), dst)
  return str(dst)


def _check_error(config, method='source_only'):
  with pytest.raises(ValueError) as e:
    methods_lib.get(method).check_config(config)
  return _one_line(e)


def test_checkpoint_errors(tmp_path):
  # No weights file: named at the check, before any data is read.
  d = _copy(AST_DIR, tmp_path / 'no_weights', skip=('model.safetensors',))
  message = _check_error(_config(checkpoint=d))
  assert message.startswith(f'config.model.ast.checkpoint: checkpoint {d}: '
                            'no weights file')
  assert 'as model.safetensors' in message
  with pytest.raises(ValueError, match='no weights file') as e:
    registry.load_pretrained(_config(checkpoint=d), {})
  _one_line(e)
  # No such directory.
  assert f'{tmp_path}/none: no such directory' in _check_error(
      _config(checkpoint=str(tmp_path / 'none')))
  # A size that disagrees with the checkpoint.
  c = _config(checkpoint=AST_DIR)
  c.model.ast.layers = 3
  assert _check_error(c).startswith(
      f'config.model.ast.layers=3 disagrees with the checkpoint: '
      f'{AST_DIR}/config.json has num_hidden_layers=2')
  # Weights whose shapes disagree with the checkpoint's config.json.
  d = _copy(AST_DIR, tmp_path / 'bad_shapes')
  with open(os.path.join(d, 'config.json')) as f:
    hf_config = json.load(f)
  hf_config['intermediate_size'] = 48
  with open(os.path.join(d, 'config.json'), 'w') as f:
    json.dump(hf_config, f)
  with pytest.raises(ValueError) as e:
    registry.load_pretrained(_config(checkpoint=d), {})
  assert _one_line(e).startswith(
      f'{d}/model.safetensors: 6 weights disagree with {d}/config.json')
  assert 'intermediate_size=48' in str(e.value)
  # A method whose parameters hold no network of the checkpoint's shape.
  c = _config(checkpoint=AST_DIR)
  other = {'encoder': {'kernel': np.zeros((3, 3), np.float32)}}
  with pytest.raises(ValueError) as e:
    registry.load_pretrained(c, other)
  assert _one_line(e).startswith(
      f"config.model.ast.checkpoint={AST_DIR}: no parameters of method "
      "'source_only' have the network's shape")


def test_config_errors_name_the_field():
  c = _config()
  c.model.ast.dtype = 'bf16'
  assert _check_error(c).startswith("config.model.ast.dtype='bf16': not one "
                                    'of')
  c = _config()
  c.data.features = 'logmel128'
  assert _check_error(c) == (
      "config.data.features: network 'ast' (config.model.name) takes "
      "fbank128, got 'logmel128'")
  c.data.features = 'waveform'
  c.model.frontend = 'mfcc40'
  assert _check_error(c).startswith(
      "config.model.frontend: network 'ast' (config.model.name) takes "
      "fbank128, got 'mfcc40'")
  c.model.frontend = 'fbank128'
  c.data.feature_params.waveform.samples = 400 + 14 * 160  # 15 frames.
  assert _check_error(c).startswith(
      'config.data.feature_params.waveform.samples=2640: 15 fbank frames, '
      'fewer than one AST patch')
  c = _config()
  c.data.frames = 8
  assert _check_error(c).startswith('config.data.frames=8: 8 fbank frames')
  c = _config()
  c.data.feature_params.fbank128.n_mels = 80
  assert _check_error(c).startswith(
      'config.data.feature_params.fbank128.n_mels=80: the AST takes '
      'num_mel_bins=128')
  c = _config()
  c.model.name = 'bert'
  assert _check_error(c).startswith(
      "config.data.features: network 'bert' (config.model.name) takes token "
      "ids, got 'fbank128' (frame-level features)")


# --- BERT --------------------------------------------------------------------


def _bert_options(**kw):
  c = config_lib.base_config()
  c.model.bert.update({**dict(layers=1, hidden=32, heads=2, mlp_dim=64,
                              vocab_size=200, max_position_embeddings=64),
                        **kw})
  return c.model.bert


def test_bert_network_on_token_ids():
  net = registry.get('bert').build(_bert_options())
  assert registry.get('bert').embedding_dim(_bert_options()) == 32
  ids = np.random.default_rng(0).integers(0, 200, (2, 10)).astype(np.int32)
  lengths = np.array([10, 4], np.int32)
  params = jax.jit(net.init)(jax.random.PRNGKey(0), ids, lengths)['params']
  apply = jax.jit(lambda ids: net.apply({'params': params}, ids, lengths))
  out = apply(ids)
  assert out['embedding'].shape == (2, 32)
  assert out['frames'].shape == (2, 10, 32)
  # Padded tokens do not change the embedding.
  ids2 = ids.copy()
  ids2[1, 4:] = 7
  np.testing.assert_allclose(apply(ids2)['embedding'][1],
                             out['embedding'][1], atol=1e-5)
  # The golden checkpoint's weights load into a method's tree.
  options = config_lib.base_config().model.bert
  options.checkpoint = BERT_DIR
  want = bert.load_params(BERT_DIR)
  net = registry.get('bert').build(options)
  params = _zero_params_of(net, ids % 105, lengths)
  config = ml_collections.ConfigDict({'method': 'x', 'model': {
      'name': 'bert', 'bert': options.to_dict()}})
  _assert_loaded(registry.load_pretrained(config, params)['encoder'], want)


def test_bert_check_of_the_token_config():
  check = registry.get('bert').check

  def data(**tokens):
    return ml_collections.ConfigDict({
        'features': 'tokens', 'frames': 32,
        'feature_params': {'tokens': dict(
            {'tokenizer': '', 'max_length': 32, 'vocab_size': 200},
            **tokens)}})
  check(_bert_options(), data())
  with pytest.raises(ValueError) as e:
    check(_bert_options(), data(vocab_size=30522))
  assert _one_line(e).startswith(
      'config.data.feature_params.tokens.vocab_size=30522: more token ids '
      "than the model's vocab_size=200 (config.model.bert.vocab_size")
  with pytest.raises(ValueError) as e:
    check(_bert_options(), data(max_length=128))
  assert _one_line(e).startswith(
      'config.data.feature_params.tokens.max_length=128: longer than the '
      "model's max_position_embeddings=64 "
      '(config.model.bert.max_position_embeddings')
  # A checkpoint's tokenizer: its vocabulary must fit (105 ids).
  check(_bert_options(), data(tokenizer=BERT_DIR, vocab_size=30522))
  with pytest.raises(ValueError) as e:
    check(_bert_options(vocab_size=100), data(tokenizer=BERT_DIR))
  assert _one_line(e).startswith(
      f'config.data.feature_params.tokens.tokenizer={BERT_DIR}: 105 token '
      "ids, more than the model's vocab_size=100")
  with pytest.raises(ValueError) as e:
    check(_bert_options(dtype='half'), data())
  assert _one_line(e).startswith("config.model.bert.dtype='half'")


@pytest.mark.skipif('tokens' not in features_lib.available(),
                    reason="the 'tokens' feature set (jaxser/data/features.py)"
                    ' is not there yet')
def test_a_method_trains_a_step_on_bert():
  config = grid.load_config('source_only', grid.default_configs_dir())
  config.model.name = 'bert'
  config.data.features = 'tokens'
  config.model.bert.update(dict(layers=1, hidden=32, heads=2, mlp_dim=64))
  method = methods_lib.create(config, NUM_CLASSES)
  batch = _batch(12, ints=1000)
  _, _, metrics = _step(method, batch)
  assert np.isfinite(metrics['loss'])
