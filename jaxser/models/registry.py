"""Networks by name, apart from the methods (objectives) that train them.

`config.model.name` selects a registered network and `config.model.<name>`
holds its options (every registered network has its block in the base
config, with the defaults it was registered with, as `data.feature_params`
has one per feature set). A method builds its emotion model with
`build(config, num_classes)` (front end -> network -> head,
`jaxser.models.classifier.EmotionModel`) and adds its own heads, so every
method runs on every network whose outputs it needs:

  python -m jaxser.main --config=configs/dann.py --config.model.name=cnn_gru

A network is a linen module called as `net(x, lengths, train=...)` on a
batch of its input kind, returning a dict with
  'embedding'                (B, d) the utterance embedding, always;
  'frames', 'frame_lengths'  (B, T, d_f), (B,) its frame sequence, where it
                             has one (`frame_sequence=True`).

Input kinds (`INPUT_KINDS`; `feature_kind` gives a feature set's):
  frames       (B, T, dims) frame-level features, lengths = valid frames
               (mfcc40, logmel80, logmel128, fbank128);
  segments     (B, S, time, freq) segment spectrograms, lengths = valid
               segments (spec_segments);
  waveform     (B, samples), lengths = valid samples (waveform);
  tokens       (B, T) int token ids, lengths = valid tokens (tokens);
  functionals  (B, D) utterance-level functionals, lengths = 1 (emobase,
               is10, egemaps);
  layers       a pretrained encoder's hidden states: (B, K, H) per-layer
               means (lengths = K, all valid) or (B, T, K, H) frames,
               lengths = valid frames (ssl; jaxser.data.ssl_features).
A network that takes frames can also be fed from waveforms by an on-device
front end, `config.model.frontend` (a feature set computed in the step,
after on-device augmentation; `FRONTENDS`).

`check(config)` is the one place that checks that the data config fits the
network: each mismatch is a one-line ValueError naming the config field.

Pretrained networks (`ast`, `bert`: Flax ports of Hugging Face's AST and
BERT) take `config.model.<name>.checkpoint`, a local Hugging Face checkpoint
directory ('' = random init). Their sizes then come from its config.json (a
size left at its default takes the checkpoint's; one set to another value
must agree with it), and `load_pretrained(config, params)` puts its weights
into every copy of the network in a method's parameters, after the train
state is created:

  python -m jaxser.main --config=configs/dann.py --config.model.name=ast \
      --config.data.features=fbank128 --config.data.frames=1024 \
      --config.model.ast.checkpoint=/ckpt/ast-finetuned-audioset-10-10-0.4593

Registering a network is one entry (see the end of this file):

  register(Network(
      'my_net', inputs='frames', build=my_module.from_config,
      defaults=dict(hidden=256, dropout=0.1),
      embedding_dim=lambda options: options.hidden, frame_sequence=True))

`build` receives the network's options block (`config.model.my_net`, a
ConfigDict with at least the defaults' fields).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping

import flax
import flax.linen as nn
import jax
import ml_collections
import numpy as np

from jaxser.data import features as features_lib
from jaxser.models import ast as ast_lib
from jaxser.models import bert as bert_lib
from jaxser.models import classifier
from jaxser.models import cnn_blstm
from jaxser.models import cnn_gru
from jaxser.models import cnn_tcn
from jaxser.models import frontend as frontend_lib
from jaxser.models import hf_checkpoint
from jaxser.models import mlp
from jaxser.models import wav2vec2 as wav2vec2_lib
from jaxser.models import wavlm as wavlm_lib
from jaxser.models import ssl_head
from jaxser.models import whisper as whisper_lib

INPUT_KINDS = {
    'frames': 'frame-level features',
    'segments': 'segment spectrograms',
    'waveform': 'waveforms',
    'tokens': 'token ids',
    'functionals': 'utterance-level functionals',
    'layers': 'self-supervised layer features',
}
# Kinds of the feature sets whose `frame_level` flag does not tell it (a
# frame-level set is 'frames', an utterance-level one 'functionals'). A
# feature set may also declare its kind itself (a `kind` attribute).
_FEATURE_KINDS = {'waveform': 'waveform', 'spec_segments': 'segments'}

# On-device front ends: the feature set each computes from waveforms, and
# the factory that builds it from that set's parameters.
FRONTENDS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    'mfcc40': frontend_lib.MFCC.from_params,
    'fbank128': frontend_lib.FBank.from_params,
}


@dataclasses.dataclass(frozen=True)
class Network:
  """A registered network.

  Attributes:
    name: the `config.model.name` that selects it.
    inputs: its input kind (a key of `INPUT_KINDS`).
    build: options block (`config.model.<name>`) -> the linen module.
    defaults: the options and their defaults (the base config's block).
    embedding_dim: options -> d, the size of 'embedding' (and of the
      frames of a network that predicts from its frames).
    frame_sequence: whether its outputs hold 'frames' and 'frame_lengths'.
    head: (options, num_classes) -> the emotion head on its embeddings;
      None: one Dense layer (`classifier.DenseHead`).
    predict_from_frames: whether an utterance is predicted from the mean
      posterior of its frames, every valid frame classified and trained on
      (DIFL's segments), rather than from its embedding.
    feature_sets: the feature sets it accepts, when not every set of its
      input kind (e.g. a pretrained model's own features).
    check: optional (options, data config) -> None, for the fits that only
      the network knows (e.g. a longest input); one-line ValueErrors.
    feature_encoder: top-level keys of its encoder's parameters that form a
      CNN feature encoder (frozen with `freeze_feature_encoder`;
      `optimizer_multipliers`).
    final_norms: top-level keys of its encoder's parameters that sit above
      the last layer (learning-rate factor 1 under layer-wise decay).
    load_params: optional options -> the network's pretrained parameters (a
      tree of numpy arrays, the shape of the network's 'encoder' subtree),
      or None when the options name no checkpoint (`load_pretrained`).
    description: one line for listings.
  """
  name: str
  inputs: str
  build: Callable[[ml_collections.ConfigDict], nn.Module]
  defaults: Mapping[str, Any]
  embedding_dim: Callable[[ml_collections.ConfigDict], int]
  frame_sequence: bool = False
  head: Callable[[ml_collections.ConfigDict, int], nn.Module] | None = None
  predict_from_frames: bool = False
  feature_sets: tuple[str, ...] = ()
  check: Callable[[ml_collections.ConfigDict, Any], None] | None = None
  feature_encoder: tuple[str, ...] = ()
  final_norms: tuple[str, ...] = ('layernorm', 'layer_norm')
  load_params: Callable[[ml_collections.ConfigDict], Any] | None = None
  description: str = ''

  def __post_init__(self):
    if self.inputs not in INPUT_KINDS:
      raise ValueError(f'network {self.name!r}: unknown input kind '
                       f'{self.inputs!r}; known: {", ".join(INPUT_KINDS)}')
    if self.predict_from_frames and not self.frame_sequence:
      raise ValueError(f'network {self.name!r}: predict_from_frames needs a '
                       'frame sequence')


_NETWORKS: dict[str, Network] = {}


def register(network: Network) -> Network:
  if network.name in _NETWORKS:
    raise ValueError(f'network {network.name!r} is registered already')
  _NETWORKS[network.name] = network
  return network


def names() -> list[str]:
  return sorted(_NETWORKS)


def get(name: str) -> Network:
  if name not in _NETWORKS:
    raise ValueError(f'config.model.name: unknown network {name!r}; known: '
                     f'{", ".join(names())}')
  return _NETWORKS[name]


def feature_kind(feature_set: str) -> str:
  """The input kind of a feature set (module docstring)."""
  fs = features_lib.get(feature_set)
  kind = getattr(fs, 'kind', None) or _FEATURE_KINDS.get(fs.name)
  if kind:
    return kind
  return 'frames' if fs.frame_level else 'functionals'


def options(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.model.<name>`: the selected network's options."""
  name = config.model.name
  get(name)
  if name not in config.model:
    raise ValueError(f'config.model.{name}: no options block for network '
                     f'{name!r} (jaxser.config.base_config has one per '
                     'network)')
  return config.model[name]


def check(config: ml_collections.ConfigDict) -> Network:
  """The network of `config.model.name`, after checking that the data
  config fits it (module docstring); raises a one-line ValueError naming the
  field otherwise."""
  network = get(config.model.name)
  opts = options(config)
  features = config.data.features
  frontend = config.model.get('frontend', '')
  if frontend:
    if frontend not in FRONTENDS:
      raise ValueError(f'config.model.frontend: unknown front end '
                       f'{frontend!r}; known: {", ".join(FRONTENDS)} (or '
                       "'' for none)")
    if feature_kind(features) != 'waveform':
      raise ValueError(f'config.data.features: the front end '
                       f'config.model.frontend={frontend!r} reads waveforms, '
                       f"got {features!r}; use 'waveform' or no front end")
    field, fed = 'config.model.frontend', frontend
  else:
    field, fed = 'config.data.features', features
  kind = feature_kind(fed)
  if kind != network.inputs:
    hint = ('; a front end (config.model.frontend) computes them from '
            'waveforms' if kind == 'waveform' and network.inputs == 'frames'
            else '')
    raise ValueError(
        f'{field}: network {network.name!r} (config.model.name) takes '
        f'{INPUT_KINDS[network.inputs]}, got {fed!r} '
        f'({INPUT_KINDS[kind]}){hint}')
  if network.feature_sets and fed not in network.feature_sets:
    raise ValueError(
        f'{field}: network {network.name!r} (config.model.name) takes '
        f'{" or ".join(network.feature_sets)}, got {fed!r}')
  if network.check is not None:
    network.check(opts, config.data)
  return network


def build_frontend(config: ml_collections.ConfigDict):
  """The on-device front end of `config.model.frontend`, or None."""
  name = config.model.get('frontend', '')
  if not name:
    return None
  if name not in FRONTENDS:
    raise ValueError(f'config.model.frontend: unknown front end {name!r}; '
                     f'known: {", ".join(FRONTENDS)}')
  params = dict(features_lib.get(name).defaults)
  overrides = config.data.feature_params.get(name)
  params.update(overrides.to_dict() if overrides else {})
  return FRONTENDS[name](params)


def build_network(config: ml_collections.ConfigDict) -> nn.Module:
  """The (checked) network of `config.model`."""
  return check(config).build(options(config))


def build_head(config: ml_collections.ConfigDict,
               num_classes: int) -> nn.Module:
  """The emotion head of `config.model.name`'s network."""
  network = get(config.model.name)
  if network.head is None:
    return classifier.DenseHead(num_classes)
  return network.head(options(config), num_classes)


def embedding_dim(config: ml_collections.ConfigDict) -> int:
  """The size of the selected network's utterance embedding."""
  return int(get(config.model.name).embedding_dim(options(config)))


def build(config: ml_collections.ConfigDict,
          num_classes: int) -> classifier.EmotionModel:
  """Front end -> network -> emotion head of `config.model`, checked
  against `config.data`."""
  network = check(config)
  return classifier.EmotionModel(
      network.build(options(config)), build_head(config, num_classes),
      frontend=build_frontend(config),
      predict_from_frames=network.predict_from_frames)


def _leaf_shapes(tree) -> dict[str, tuple[int, ...]]:
  return {jax.tree_util.keystr(p): tuple(np.shape(a)) for p, a
          in jax.tree_util.tree_leaves_with_path(tree)}


def _like(loaded, current):
  """`loaded`'s arrays in `current`'s tree, dtypes and placement."""
  flat = {jax.tree_util.keystr(p): a for p, a
          in jax.tree_util.tree_leaves_with_path(loaded)}

  def put(path, leaf):
    value = np.asarray(flat[jax.tree_util.keystr(path)]).astype(leaf.dtype)
    if isinstance(leaf, jax.Array):
      # Placed as the leaf was (replicated or sharded, on every host).
      return jax.make_array_from_callback(value.shape, leaf.sharding,
                                          lambda index: value[index])
    return value
  return jax.tree_util.tree_map_with_path(put, current)


def load_pretrained(config: ml_collections.ConfigDict, params):
  """`params` (a method's parameter tree) with the selected network's
  checkpoint (`config.model.<name>.checkpoint`) in every copy of the network.

  Methods nest the network differently (an `EmotionModel` shares its scope,
  so the network's 'encoder' sits beside 'emotion_head'; the multitask
  method holds the network under 'encoder'), so the rule is structural:
  every subtree named 'encoder' whose leaves have the checkpoint's paths and
  shapes is replaced, the arrays cast to its dtypes and placed as its arrays
  were (jax arrays keep their sharding). The checkpoint is read once. Returns
  `params` itself when the network has no checkpoint; no matching subtree is
  a one-line ValueError.
  """
  network = get(config.model.name)
  if network.load_params is None:
    return params
  opts = options(config)
  loaded = network.load_params(opts)
  if loaded is None:
    return params
  want = _leaf_shapes(loaded)
  count = 0

  def visit(node):
    nonlocal count
    if not isinstance(node, Mapping):
      return node
    out = {}
    for key, value in node.items():
      if key == 'encoder' and _leaf_shapes(value) == want:
        out[key] = _like(loaded, value)
        count += 1
      else:
        out[key] = visit(value)
    return type(node)(out) if isinstance(node, flax.core.FrozenDict) else out

  new = visit(params)
  if not count:
    raise ValueError(
        f'config.model.{network.name}.checkpoint='
        f'{hf_checkpoint.cfg_get(opts, "checkpoint")}: no parameters of '
        f'method {config.get("method", "")!r} have the network\'s shape (an '
        f"'encoder' subtree with the checkpoint's {len(want)} weights)")
  return new


_LAYER = re.compile(r'^layer_(\d+)$')


def _is_upstream(node) -> bool:
  """A transformer encoder's parameters: a dict holding layer_0, layer_1..."""
  return isinstance(node, Mapping) and any(_LAYER.match(str(k)) for k in node)


def optimizer_multipliers(config: ml_collections.ConfigDict, params):
  """Per-parameter learning-rate factors of a pretrained upstream, or None.

  For every copy of the selected network's transformer encoder in a
  method's `params` (an 'encoder' subtree holding layer_0, layer_1, ...):
    * `config.model.<name>.freeze`: 0 for all its weights (the network also
      stops the gradient at its hidden states, so no backward pass runs
      through it); the layer-sum weights and the method's heads train.
    * `layer_decay` d < 1 (layer-wise learning-rate decay): layer i (0-based,
      of L) gets d^(L - i), the embeddings (patch / word / feature encoder)
      d^(L + 1), the final norm 1; everything else 1.
    * `freeze_feature_encoder` (networks with a CNN feature encoder,
      `Network.feature_encoder`): 0 for those weights.
  Every optimiser jaxser builds applies its learning rate last, so scaling
  the update scales the rate; Adam's moments of a frozen weight still move,
  its value never does.
  """
  network = get(config.model.name)
  opts = options(config)
  freeze = bool(opts.get('freeze', False))
  decay = float(opts.get('layer_decay', 1.0))
  fe_freeze = bool(opts.get('freeze_feature_encoder', False)) and bool(
      network.feature_encoder)
  if not 0.0 < decay <= 1.0:
    raise ValueError(f'config.model.{network.name}.layer_decay: must be in '
                     f'(0, 1], got {decay}')
  if not (freeze or decay < 1.0 or fe_freeze):
    return None
  found = 0

  def upstream(tree):
    layers = sorted(int(_LAYER.match(str(k)).group(1)) for k in tree
                    if _LAYER.match(str(k)))
    top = len(layers)

    def factor(path, _):
      first = str(getattr(path[0], 'key', path[0]))
      if freeze or (fe_freeze and first in network.feature_encoder):
        return 0.0
      m = _LAYER.match(first)
      if m:
        return decay ** (top - int(m.group(1)))
      if first in network.final_norms:
        return 1.0
      return decay ** (top + 1)
    return jax.tree_util.tree_map_with_path(factor, tree)

  def visit(node):
    nonlocal found
    out = {}
    for key, value in node.items():
      if key == 'encoder' and _is_upstream(value):
        out[key] = upstream(value)
        found += 1
      elif isinstance(value, Mapping):
        out[key] = visit(value)
      else:
        out[key] = jax.tree.map(lambda _: 1.0, value)
    return out

  tree = visit(params)
  if not found:
    raise ValueError(
        f'config.model.{network.name}: freeze / layer_decay need a '
        'transformer encoder in the method\'s parameters, found none')
  return tree


def default_options() -> ml_collections.ConfigDict:
  """One options block per registered network, with its defaults."""
  return ml_collections.ConfigDict(
      {name: dict(_NETWORKS[name].defaults) for name in names()})


################################################################################
# The networks.
################################################################################

register(Network(
    'cnn_tcn', inputs='frames', build=cnn_tcn.from_config,
    defaults=dict(channels=64, dilations=(1, 2, 4, 8, 16), embed_dim=128,
                  dropout=0.1, masked_pooling=True),
    embedding_dim=lambda o: o.embed_dim, frame_sequence=True,
    description="Emo-DNA's CNN backbone + TCN emotion encoder"))

register(Network(
    'cnn_gru', inputs='frames', build=cnn_gru.from_config,
    head=cnn_gru.head_from_config,
    # The authors' released code (jaxser.models.cnn_gru).
    defaults=dict(conv_features=(48, 64, 80, 96),
                  conv_kernel_sizes=(7, 3, 3, 3), conv_strides=(2, 1, 1, 1),
                  conv_pool=(False, True, True, True), gru_hidden=128,
                  fc_hidden=64, dropout=0.5, masked_pooling=True),
    embedding_dim=lambda o: 2 * o.gru_hidden, frame_sequence=True,
    description="MMD-SER's 2D CNN + BiGRU, PReLU classifier"))

register(Network(
    'cnn_blstm', inputs='segments', build=cnn_blstm.from_config,
    # Ours: DIFL points at Satt et al. only (jaxser.models.cnn_blstm).
    defaults=dict(conv_features=(16, 32, 64), kernel_size=3,
                  time_pool=(2, 2, 1), freq_pool=(2, 2, 2), lstm_hidden=128,
                  embed_dim=128, embed_activation='none', dropout=0.1),
    embedding_dim=lambda o: o.embed_dim, frame_sequence=True,
    predict_from_frames=True,
    description="DIFL's segment CNN-BLSTM, utterances from mean segment "
                'posteriors'))

register(Network(
    'mlp', inputs='functionals', build=mlp.from_config,
    defaults=dict(hidden=(256, 128), dropout=0.1),
    embedding_dim=lambda o: o.hidden[-1],
    description='MLP on openSMILE functionals'))


# Pretrained transformers (Hugging Face checkpoints, read offline).


def _hf_options(module, options) -> dict:
  """A transformer's options block as its `from_config` reads it: a size
  left at its registered default (the base model's) is unset, so that it
  takes the checkpoint's with one (and mlp_dim = 4 x hidden without one,
  when only hidden changes); checkpoint '' is none."""
  opts = options.to_dict() if hasattr(options, 'to_dict') else dict(options)
  for field, _, default in module.SIZE_FIELDS:
    if opts.get(field) == default:
      opts[field] = None
  opts['checkpoint'] = opts.get('checkpoint') or None
  if opts.get('normalize') == 'auto':  # The checkpoint's feature extractor.
    del opts['normalize']
  return opts


def _transformer(module, name: str):
  """(build, load_params) of the `jaxser.models.ast`-like `module`."""
  def build(options):
    net = module.network_from_config(_hf_options(module, options),
                                     f'config.model.{name}.')
    return net.clone(freeze=True) if hf_checkpoint.cfg_get(
        options, 'freeze') else net

  def load_params(options):
    checkpoint = hf_checkpoint.cfg_get(options, 'checkpoint')
    if not checkpoint:
      return None
    return module.load_params(checkpoint, build(options).encoder)
  return build, load_params


def _check_weights(name: str, options) -> None:
  """A checkpoint without a weights file fails before any data is read."""
  checkpoint = hf_checkpoint.cfg_get(options, 'checkpoint')
  if checkpoint:
    try:
      hf_checkpoint.weights_path(checkpoint)
    except ValueError as e:
      raise ValueError(f'config.model.{name}.checkpoint: {e}') from None


def _feature_params(data, name: str) -> dict:
  params = dict(features_lib.get(name).defaults)
  overrides = (data.get('feature_params') or {}).get(name)
  params.update(overrides.to_dict() if hasattr(overrides, 'to_dict')
                else overrides or {})
  return params


_build_ast, _load_ast = _transformer(ast_lib, 'ast')
_build_bert, _load_bert = _transformer(bert_lib, 'bert')
_build_whisper, _load_whisper = _transformer(whisper_lib, 'whisper')
_SSL = {'wav2vec2': wav2vec2_lib.WAV2VEC2, 'hubert': wav2vec2_lib.HUBERT,
        'wavlm': wavlm_lib.WAVLM}
_SSL_BUILD = {name: _transformer(family, name)
              for name, family in _SSL.items()}


def _ssl_check(name):
  def check(options, data) -> None:
    del data  # Any waveform of at least one frame (25 ms).
    _SSL_BUILD[name][0](options)  # Sizes against the checkpoint's.
    _check_weights(name, options)
    if options.get('normalize') not in ('auto', True, False):
      raise ValueError(f'config.model.{name}.normalize: auto, True or '
                       f'False, got {options.get("normalize")!r}')
  return check


def _check_whisper(options, data) -> None:
  del data  # Any waveform length: the network pads or cuts to its window.
  _build_whisper(options)  # Sizes against the checkpoint's config.json.
  _check_weights('whisper', options)


def _check_ast(options, data) -> None:
  model = _build_ast(options).encoder
  _check_weights('ast', options)
  fbank = _feature_params(data, 'fbank128')
  if fbank['n_mels'] != model.num_mel_bins:
    raise ValueError(
        f'config.data.feature_params.fbank128.n_mels={fbank["n_mels"]}: the '
        f'AST takes num_mel_bins={model.num_mel_bins} '
        '(config.model.ast.num_mel_bins, or its checkpoint\'s config.json)')
  if data.features == 'waveform':  # Through the fbank128 front end.
    samples = _feature_params(data, 'waveform')['samples']
    frames = frontend_lib.FBank.from_params(fbank).num_frames(samples)
    field = f'config.data.feature_params.waveform.samples={samples}'
  else:
    frames = data.get('frames')
    field = f'config.data.frames={frames}'
  if frames is not None and frames < model.patch_size:
    raise ValueError(f'{field}: {frames} fbank frames, fewer than one AST '
                     f'patch ({model.patch_size} frames)')


def _check_bert(options, data) -> None:
  model = _build_bert(options).encoder
  _check_weights('bert', options)
  # The `tokens` set's parameters (tokenizer, max_length, vocab_size).
  tokens = (_feature_params(data, 'tokens')
            if 'tokens' in features_lib.available() else
            dict((data.get('feature_params') or {}).get('tokens') or {}))
  field = 'config.data.feature_params.tokens'
  tokenizer = tokens.get('tokenizer')
  if tokenizer:
    vocab = bert_lib.load_tokenizer(tokenizer).get_vocab_size()
    if vocab > model.vocab_size:
      raise ValueError(
          f'{field}.tokenizer={tokenizer}: {vocab} token ids, more than the '
          f'model\'s vocab_size={model.vocab_size} '
          '(config.model.bert.vocab_size, or its checkpoint\'s config.json)')
  elif tokens.get('vocab_size') is not None and (
      tokens['vocab_size'] > model.vocab_size):
    raise ValueError(
        f'{field}.vocab_size={tokens["vocab_size"]}: more token ids than the '
        f'model\'s vocab_size={model.vocab_size} '
        '(config.model.bert.vocab_size, or its checkpoint\'s config.json)')
  length = tokens.get('max_length')
  if length is not None and length > model.max_position_embeddings:
    raise ValueError(
        f'{field}.max_length={length}: longer than the model\'s '
        f'max_position_embeddings={model.max_position_embeddings} '
        '(config.model.bert.max_position_embeddings, or its checkpoint\'s '
        'config.json)')


# Sizes: the base models' (a size left at its default takes a checkpoint's);
# dtype: the compute dtype (parameters stay float32); remat: recompute each
# block in the backward pass; dropout: used as set, not the checkpoint's.
register(Network(
    'ast', inputs='frames', build=_build_ast,
    defaults=dict(
        checkpoint='', layers=12, hidden=768, heads=12, mlp_dim=3072,
        patch_size=16, frequency_stride=10, time_stride=10,
        num_mel_bins=128, max_length=1024, dtype='float32', remat=False,
        dropout=0.0, attention_dropout=0.0, pos_resize='ast', freeze=False,
        layer_decay=1.0),
    embedding_dim=lambda o: _build_ast(o).encoder.hidden,
    frame_sequence=True, feature_sets=('fbank128',), check=_check_ast,
    load_params=_load_ast,
    description='Audio Spectrogram Transformer on Kaldi fbank (fbank128, '
                'or its front end), layer-sum + mean pooling'))

register(Network(
    'bert', inputs='tokens', build=_build_bert,
    defaults=dict(
        checkpoint='', layers=12, hidden=768, heads=12, mlp_dim=3072,
        vocab_size=30522, max_position_embeddings=512, type_vocab_size=2,
        dtype='float32', remat=False, dropout=0.1, attention_dropout=0.1,
        freeze=False, layer_decay=1.0),
    embedding_dim=lambda o: _build_bert(o).encoder.hidden,
    frame_sequence=True, feature_sets=('tokens',), check=_check_bert,
    load_params=_load_bert,
    description='BERT on token ids (tokens), layer-sum + mean pooling'))

register(Network(
    'whisper', inputs='waveform', build=_build_whisper,
    defaults=dict(
        checkpoint='', layers=6, hidden=512, heads=8, mlp_dim=2048,
        num_mel_bins=80, max_source_positions=1500, dtype='float32',
        remat=False, dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, pad_to_30s=True, freeze=False,
        layer_decay=1.0),
    embedding_dim=lambda o: _build_whisper(o).encoder.hidden,
    frame_sequence=True, feature_sets=('waveform',), check=_check_whisper,
    load_params=_load_whisper,
    description='Whisper encoder on waveforms (its log-mel on the device, '
                '30 s windows), layer-sum + mean over the valid frames'))

register(Network(
    'ssl_head', inputs='layers', build=ssl_head.from_config,
    defaults=dict(hidden=256, depth=1, dropout=0.1, layer_norm=False),
    embedding_dim=lambda o: o.hidden, frame_sequence=True,
    feature_sets=('ssl',),
    description='Head on cached self-supervised features (ssl): learned '
                'layer weights, mean over valid frames, MLP'))

# wav2vec 2.0, HuBERT, WavLM: base sizes; a checkpoint's config.json sets
# the feature-encoder and norm variant. normalize 'auto': the checkpoint's
# preprocessor_config.json do_normalize (zero mean, unit variance per
# utterance, on the device). freeze_feature_encoder: the CNN feature encoder
# is not trained (the usual fine-tuning recipe).
for _name, _description in (
    ('wav2vec2', 'wav2vec 2.0'), ('hubert', 'HuBERT'), ('wavlm', 'WavLM')):
  _defaults = dict(
      checkpoint='', layers=12, hidden=768, heads=12, mlp_dim=3072,
      feat_extract_norm='group', do_stable_layer_norm=False,
      dtype='float32', remat=False, dropout=0.1, attention_dropout=0.1,
      activation_dropout=0.0, feat_proj_dropout=0.0, normalize='auto',
      freeze=False, freeze_feature_encoder=True, layer_decay=1.0)
  register(Network(
      _name, inputs='waveform', build=_SSL_BUILD[_name][0],
      defaults=_defaults,
      embedding_dim=(lambda n: lambda o: _SSL_BUILD[n][0](o).encoder.hidden)(
          _name),
      frame_sequence=True, feature_sets=('waveform',),
      check=_ssl_check(_name), load_params=_SSL_BUILD[_name][1],
      feature_encoder=('feature_extractor',),
      final_norms=('encoder_final_layer_norm',),
      description=f'{_description} on waveforms, layer-sum + mean over the '
                  'valid frames'))
