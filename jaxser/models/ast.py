"""Audio Spectrogram Transformer (Gong, Chung and Glass, Interspeech 2021), a
Flax port of Hugging Face's `ASTModel` that loads its checkpoints offline
(the family of `MIT/ast-finetuned-audioset-10-10-0.4593`).

Input: (batch, frames, 128) Kaldi log-mel fbank normalised as AST's feature
extractor does, x = (fbank - (-4.2677393)) / (2 * 4.5689974): jaxser's
`fbank128` feature set (jaxser/data/features.py) is exactly this, and AST's
checkpoints take 1024 frames (10.24 s; `config.data.frames = 1024`).

  patches   P = Conv2d_{16x16, stride (10, 10)}(x^T)  on (freq, time), flattened
            frequency-major: token f * T' + t, F' = (128 - 16) // 10 + 1 = 12,
            T' = (frames - 16) // 10 + 1 (101 for 1024 frames)
  tokens    z_0 = [cls; dist; P] + E_pos                 (F' T' + 2 tokens)
  block l   z' = z + MSA(LN_before(z)),  z_l = z' + MLP(LN_after(z'))
            (pre-norm ViT/DeiT; MLP = Linear -> GELU (erf) -> Linear)
  output    last_hidden_state = LN(z_L); hidden_states = (z_0, ..., z_L)

LayerNorm eps 1e-12 and attention scale 1/sqrt(d_head), as HF. When the
input has another frame count than the checkpoint's `max_length`, the
position embeddings of the patch grid are resized the way the AST code adapts
them: an axis that shrinks keeps its centre (`pos_resize='ast'`), one that
grows is bilinearly interpolated; `pos_resize='bilinear'` interpolates both
ways. The cls and distillation embeddings are kept.

Padding: AST's feature extractor pads the fbank with zeros *before*
normalising, so its padded frames hold (0 - mean) / (2 std) = 0.467, while
jaxser pads after (zeros). Given `lengths`, the model writes AST's pad value
into the frames past each length, so a padded jaxser batch reaches the
network as it would from HF's extractor; the same lengths give the token
mask for pooling. The attention itself sees every token, as in HF and the
AST recipe (no key padding mask unless `attention_mask` is passed).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxser.models import hf_checkpoint as hf
from jaxser.models import layers
from jaxser.models import transformer_blocks as tb

MODEL_TYPE = 'audio-spectrogram-transformer'
# AST's AudioSet normalisation; (0 - mean) / (2 std) is its padding value.
FBANK_MEAN = -4.2677393
FBANK_STD = 4.5689974
PAD_VALUE = (0.0 - FBANK_MEAN) / (2 * FBANK_STD)

# (jaxser config.model field, HF config.json key, default = AST base).
SIZE_FIELDS = (
    ('layers', 'num_hidden_layers', 12),
    ('hidden', 'hidden_size', 768),
    ('heads', 'num_attention_heads', 12),
    ('mlp_dim', 'intermediate_size', 3072),
    ('patch_size', 'patch_size', 16),
    ('frequency_stride', 'frequency_stride', 10),
    ('time_stride', 'time_stride', 10),
    ('num_mel_bins', 'num_mel_bins', 128),
    ('max_length', 'max_length', 1024),
)


def patch_grid(n: int, patch: int, stride: int) -> int:
  """Patches along an axis of n bins: (n - patch) // stride + 1."""
  return (n - patch) // stride + 1


def _resize_axis(grid: jnp.ndarray, axis: int, new: int, mode: str):
  """Centre crop (mode 'ast', shrinking) or bilinear resize of one axis."""
  old = grid.shape[axis]
  if new == old:
    return grid
  if mode == 'ast' and new < old:
    # The AST code: pos_embed[..., old // 2 - new // 2 :][:new].
    start = old // 2 - new // 2
    return jax.lax.slice_in_dim(grid, start, start + new, axis=axis)
  shape = list(grid.shape)
  shape[axis] = new
  # Half-pixel linear without antialiasing = torch's bilinear interpolate
  # with align_corners=False, which the AST code calls.
  return jax.image.resize(grid, shape, 'linear', antialias=False)


class ASTLayer(nn.Module):
  """Pre-norm ViT block with HF's parameter names."""
  hidden: int
  heads: int
  mlp_dim: int
  qkv_bias: bool
  layer_norm_eps: float
  hidden_act: str
  dropout: float
  attention_dropout: float
  dtype: Any
  deterministic: bool

  @nn.compact
  def __call__(self, x, mask):
    drop = lambda y: layers.Dropout(
        self.dropout, deterministic=self.deterministic)(y)
    h = tb.layer_norm(self.layer_norm_eps, 'layernorm_before', self.dtype)(x)
    h = tb.SelfAttention(self.hidden, self.heads, self.qkv_bias,
                         self.attention_dropout, self.dtype,
                         self.deterministic, name='attention')(h, mask)
    x = x + drop(h)
    h = tb.layer_norm(self.layer_norm_eps, 'layernorm_after', self.dtype)(x)
    h = tb.dense(self.mlp_dim, 'intermediate', self.dtype)(h)
    h = tb.activation(self.hidden_act, 'ASTLayer')(h)
    h = tb.dense(self.hidden, 'output', self.dtype)(h)
    return x + drop(h)


class AST(nn.Module):
  """AST encoder; sizes default to the base model (12 x 768, 12 heads).

  __call__(input_values (batch, frames, num_mel_bins), lengths (batch,) or
  None, attention_mask (batch, tokens) or None, *, train) ->
  `TransformerOutput`; `hidden_states` only with `output_hidden_states`.
  Parameters are float32; `dtype` is the compute dtype (bfloat16 for
  accelerators); `remat` recomputes each block in the backward pass.
  """
  hidden: int = 768
  layers: int = 12
  heads: int = 12
  mlp_dim: int = 3072
  patch_size: int = 16
  frequency_stride: int = 10
  time_stride: int = 10
  num_mel_bins: int = 128
  max_length: int = 1024
  qkv_bias: bool = True
  layer_norm_eps: float = 1e-12
  hidden_act: str = 'gelu'
  dropout: float = 0.0
  attention_dropout: float = 0.0
  pos_resize: str = 'ast'
  pad_value: float = PAD_VALUE
  dtype: Any = jnp.float32
  remat: bool = False
  output_hidden_states: bool = False

  def grid(self, frames: int) -> tuple[int, int]:
    """(frequency, time) patch counts for an input of `frames` frames."""
    return (patch_grid(self.num_mel_bins, self.patch_size,
                       self.frequency_stride),
            patch_grid(frames, self.patch_size, self.time_stride))

  def num_tokens(self, frames: int) -> int:
    f, t = self.grid(frames)
    return f * t + 2

  def token_mask(self, lengths: jnp.ndarray, frames: int) -> jnp.ndarray:
    """(batch, tokens) float: the cls and distillation tokens, and every
    patch whose first frame lies inside the utterance (t * stride < length;
    the first column always counts)."""
    f, t = self.grid(frames)
    start = jnp.arange(t) * self.time_stride
    cols = (start[None, :] < jnp.maximum(lengths, 1)[:, None])
    patches = jnp.tile(cols, (1, f))  # Frequency-major, as the tokens.
    ones = jnp.ones((lengths.shape[0], 2), bool)
    return jnp.concatenate([ones, patches], axis=1).astype(jnp.float32)

  def check_input(self, shape, source: str = 'input_values') -> None:
    """One-line errors for inputs the model cannot take."""
    if len(shape) != 3:
      raise ValueError(f'{source}: expected (batch, frames, '
                       f'{self.num_mel_bins}), got shape {tuple(shape)}')
    if shape[2] != self.num_mel_bins:
      raise ValueError(f'{source}: {shape[2]} mel bins per frame, the model '
                       f'takes num_mel_bins={self.num_mel_bins} (shape '
                       f'{tuple(shape)})')
    if shape[1] < self.patch_size:
      raise ValueError(f'{source}: {shape[1]} frames, fewer than one patch '
                       f'({self.patch_size})')

  @nn.compact
  def __call__(self, input_values: jnp.ndarray,
               lengths: Optional[jnp.ndarray] = None,
               attention_mask: Optional[jnp.ndarray] = None, *,
               train: bool = False) -> tb.TransformerOutput:
    self.check_input(input_values.shape)
    batch, frames, _ = input_values.shape
    x = input_values.astype(jnp.float32)
    if lengths is not None:
      valid = jnp.arange(frames)[None, :] < lengths[:, None]
      x = jnp.where(valid[..., None], x, self.pad_value)
      mask = self.token_mask(lengths, frames)
    else:
      mask = jnp.ones((batch, self.num_tokens(frames)), jnp.float32)
    if attention_mask is not None and attention_mask.shape != mask.shape:
      raise ValueError(f'attention_mask: shape {attention_mask.shape}, the '
                       f'model makes {mask.shape[1]} tokens of {frames} '
                       'frames: expected (batch, tokens)')

    # Patch embedding: HF feeds (batch, 1, freq, time) to Conv2d; flax's
    # NHWC twin is (batch, freq, time, 1), which flattens in the same
    # frequency-major token order.
    x = jnp.swapaxes(x, 1, 2)[..., None].astype(self.dtype)
    init = nn.initializers.normal(0.02)
    patches = nn.Conv(self.hidden, (self.patch_size, self.patch_size),
                      strides=(self.frequency_stride, self.time_stride),
                      padding='VALID', dtype=self.dtype,
                      param_dtype=jnp.float32,
                      name='embeddings_patch')(x)
    f, t = patches.shape[1:3]
    patches = patches.reshape(batch, f * t, self.hidden)
    # HF initialises these three with zeros and loads them; a zero position
    # embedding would leave a model trained from scratch without positions.
    cls = self.param('cls_token', init, (1, 1, self.hidden), jnp.float32)
    dist = self.param('distillation_token', init, (1, 1, self.hidden),
                      jnp.float32)
    f0, t0 = self.grid(self.max_length)
    pos = self.param('position_embeddings', init,
                     (1, f0 * t0 + 2, self.hidden), jnp.float32)
    if (f, t) != (f0, t0):
      if self.pos_resize not in ('ast', 'bilinear'):
        raise ValueError(f"pos_resize={self.pos_resize!r}: 'ast' or "
                         "'bilinear'")
      grid = pos[:, 2:].reshape(1, f0, t0, self.hidden)
      grid = _resize_axis(grid, 1, f, self.pos_resize)
      grid = _resize_axis(grid, 2, t, self.pos_resize)
      pos = jnp.concatenate(
          [pos[:, :2], grid.reshape(1, f * t, self.hidden)], axis=1)
    tokens = jnp.concatenate(
        [jnp.broadcast_to(cls, (batch, 1, self.hidden)).astype(self.dtype),
         jnp.broadcast_to(dist, (batch, 1, self.hidden)).astype(self.dtype),
         patches], axis=1)
    h = (tokens + pos.astype(self.dtype)).astype(self.dtype)
    h = layers.Dropout(self.dropout, deterministic=not train)(h)

    block = nn.remat(ASTLayer) if self.remat else ASTLayer
    hidden_states = [h]
    for i in range(self.layers):
      h = block(self.hidden, self.heads, self.mlp_dim, self.qkv_bias,
                self.layer_norm_eps, self.hidden_act, self.dropout,
                self.attention_dropout, self.dtype, not train,
                name=f'layer_{i}')(h, attention_mask)
      hidden_states.append(h)
    last = tb.layer_norm(self.layer_norm_eps, 'layernorm', self.dtype)(h)
    return tb.TransformerOutput(
        last_hidden_state=last,
        hidden_states=(jnp.stack(hidden_states)
                       if self.output_hidden_states else None),
        mask=mask)


def from_hf_config(hf_config: dict, config_source: str = 'config.json',
                   **options) -> AST:
  """An `AST` with the sizes of a checkpoint's config.json."""
  sizes = hf.resolve_sizes(None, hf_config, SIZE_FIELDS, config_source)
  return AST(**sizes, **_hf_options(hf_config, config_source), **options)


def _hf_options(hf_config: dict, config_source: str) -> dict:
  """The non-size settings of an HF AST config."""
  hf.check_model_type(hf_config, MODEL_TYPE, config_source)
  act = hf_config.get('hidden_act', 'gelu')
  tb.activation(act, config_source)
  return dict(qkv_bias=bool(hf_config.get('qkv_bias', True)),
              layer_norm_eps=float(hf_config.get('layer_norm_eps', 1e-12)),
              hidden_act=act,
              dropout=float(hf_config.get('hidden_dropout_prob', 0.0)),
              attention_dropout=float(
                  hf_config.get('attention_probs_dropout_prob', 0.0)))


def from_config(model_cfg, field_prefix: str = 'config.model.') -> AST:
  """An `AST` from jaxser's `config.model` (a ConfigDict or dict).

  Sizes: `layers`, `hidden`, `heads`, `mlp_dim` (default 4 x hidden),
  `patch_size`, `frequency_stride`, `time_stride`, `num_mel_bins`,
  `max_length` (the frame count the position embeddings are learnt for).
  With `checkpoint` (a directory) the sizes come from its config.json, and a
  size set here that disagrees is an error naming `config.model.<field>`
  (`field_prefix` + field: the registry passes `config.model.ast.`).
  Options: `dtype` ('float32' | 'bfloat16'), `remat`, `dropout`,
  `attention_dropout` (default: the checkpoint's, else 0),
  `output_hidden_states` (default True: the layer-sum pooling needs them),
  `pos_resize` ('ast' | 'bilinear').
  """
  get = lambda k: hf.cfg_get(model_cfg, k)
  checkpoint = get('checkpoint')
  fields, options, hf_config, source = SIZE_FIELDS, {}, None, None
  if checkpoint:
    source = os.path.join(checkpoint, hf.CONFIG)
    hf_config = hf.read_config(checkpoint)
    options = _hf_options(hf_config, source)
  elif get('mlp_dim') is None and get('hidden') is not None:
    # Tiny models keep the base model's MLP ratio.
    fields = tuple((f, k, 4 * get('hidden') if f == 'mlp_dim' else d)
                   for f, k, d in SIZE_FIELDS)
  sizes = hf.resolve_sizes(model_cfg, hf_config, fields, source,
                           field_prefix)
  for name in ('dropout', 'attention_dropout', 'pos_resize', 'remat',
               'output_hidden_states'):
    if get(name) is not None:
      options[name] = get(name)
  options.setdefault('output_hidden_states', True)
  dtype = tb.compute_dtype(get('dtype') or 'float32', f'{field_prefix}dtype')
  return AST(**sizes, **options, dtype=dtype)


def hf_weights(model: AST) -> list[hf.Weight]:
  """The HF names, shapes and flax paths of an AST's weights."""
  H = (model.hidden, 'hidden_size')
  M = (model.mlp_dim, 'intermediate_size')
  P = (model.patch_size, 'patch_size')
  f0, t0 = model.grid(model.max_length)
  tokens = (f0 * t0 + 2, 'patches + 2 (num_mel_bins, max_length, '
            'patch_size, frequency_stride, time_stride)')
  one = (1, '1')
  w = [
      hf.Weight('embeddings.cls_token', ('cls_token',), (one, one, H)),
      hf.Weight('embeddings.distillation_token', ('distillation_token',),
                (one, one, H)),
      hf.Weight('embeddings.position_embeddings', ('position_embeddings',),
                (one, tokens, H)),
      # torch (out, in, freq, time) -> flax (freq, time, in, out).
      hf.Weight('embeddings.patch_embeddings.projection.weight',
                ('embeddings_patch', 'kernel'), (H, one, P, P),
                lambda a: a.transpose(2, 3, 1, 0)),
      hf.Weight('embeddings.patch_embeddings.projection.bias',
                ('embeddings_patch', 'bias'), (H,)),
  ]
  for i in range(model.layers):
    hp, fp = f'encoder.layer.{i}', (f'layer_{i}',)
    w += hf.layer_norm(f'{hp}.layernorm_before', fp + ('layernorm_before',), H)
    for name in ('query', 'key', 'value'):
      w += hf.linear(f'{hp}.attention.attention.{name}',
                     fp + ('attention', name), H, H, bias=model.qkv_bias)
    w += hf.linear(f'{hp}.attention.output.dense',
                   fp + ('attention', 'output'), H, H)
    w += hf.layer_norm(f'{hp}.layernorm_after', fp + ('layernorm_after',), H)
    w += hf.linear(f'{hp}.intermediate.dense', fp + ('intermediate',), H, M)
    w += hf.linear(f'{hp}.output.dense', fp + ('output',), M, H)
  w += hf.layer_norm('layernorm', ('layernorm',), H)
  return w


# transformers 5's in-memory names (its save_pretrained writes the names
# above, which the Hub's checkpoints use) -> the checkpoint names.
HF5_RENAMES = (
    (r'^((?:audio_spectrogram_transformer\.)?)layers\.(\d+)\.',
     r'\1encoder.layer.\2.'),
    (r'\.attention\.([qkv])_proj\.',
     lambda m: '.attention.attention.' + {'q': 'query', 'k': 'key',
                                          'v': 'value'}[m.group(1)] + '.'),
    (r'\.attention\.o_proj\.', '.attention.output.dense.'),
    (r'\.mlp\.fc1\.', '.intermediate.dense.'),
    (r'\.mlp\.fc2\.', '.output.dense.'),
)


def load_params(checkpoint: str, model: Optional[AST] = None) -> dict:
  """The checkpoint's weights as the `params` of `model` (float32 numpy).

  `model` defaults to the checkpoint's own sizes; a model of other sizes is
  an error naming the field. `ASTForAudioClassification` checkpoints load
  too (their classifier head is left out).
  """
  return hf.load_params(
      checkpoint, model, from_hf_config=from_hf_config,
      size_fields=SIZE_FIELDS, weights=hf_weights,
      example=lambda m: jax.ShapeDtypeStruct(
          (1, m.max_length, m.num_mel_bins), jnp.float32),
      prefixes=('audio_spectrogram_transformer.',), renames=HF5_RENAMES,
      ignore=(r'^classifier\.',))


def init_params(model: AST, rng: jax.Array, frames: Optional[int] = None):
  """Random parameters (float32) of `model` for inputs of `frames` frames."""
  x = jnp.zeros((1, frames or model.max_length, model.num_mel_bins))
  return model.init(rng, x)['params']


class ASTNetwork(nn.Module):
  """AST + learned layer sum + masked mean pooling, called as jaxser's
  network registry calls a network:

    (x (batch, frames, num_mel_bins), lengths (batch,) valid frames, *,
     train) -> {'embedding': (batch, hidden),
                'frames': (batch, T', hidden), 'frame_lengths': (batch,)}

  'embedding' is the multitask paper's utterance embedding (softmax-weighted
  sum of the embedding output and every layer, mean over the valid tokens,
  cls and distillation included). 'frames' is a time sequence: the layer sum
  of the patch tokens averaged over their frequency rows, one vector per
  patch column (every `time_stride` frames), the valid ones those that start
  inside the utterance. Parameters: {'encoder': AST's, 'pool': the layer
  weights}; `load_network_params` puts a checkpoint into 'encoder'.
  """
  encoder: AST
  # A frozen upstream (config.model.<name>.freeze): no gradient flows into
  # the encoder, so its backward pass is not computed; the layer weights of
  # the pooling still train.
  freeze: bool = False

  @nn.compact
  def __call__(self, x, lengths, *, train: bool = False):
    if not self.encoder.output_hidden_states:
      raise ValueError('ASTNetwork needs AST(output_hidden_states=True)')
    out = self.encoder(x, lengths, train=train)
    if self.freeze:
      out = jax.lax.stop_gradient(out)
    embedding, sequence = tb.LayerSumPooling(name='pool')(out)
    f, t = self.encoder.grid(x.shape[1])
    patches = sequence[:, 2:].reshape(x.shape[0], f, t, -1)
    stride = self.encoder.time_stride
    return {'embedding': embedding, 'frames': patches.mean(axis=1),
            'frame_lengths': jnp.clip((lengths + stride - 1) // stride, 1, t)}


def network_from_config(model_cfg,
                        field_prefix: str = 'config.model.') -> ASTNetwork:
  """`ASTNetwork` around `from_config(model_cfg)` (the registry's build)."""
  encoder = from_config(model_cfg, field_prefix)
  if not encoder.output_hidden_states:
    raise ValueError('config.model.output_hidden_states=False: the layer-sum '
                     'pooling needs all hidden states')
  return ASTNetwork(encoder)


def load_network_params(params, checkpoint: str):
  """An `ASTNetwork`'s initialised `params` with the checkpoint's weights in
  its encoder."""
  return tb.with_encoder_params(params, load_params(checkpoint), checkpoint)


__all__ = ['AST', 'ASTLayer', 'ASTNetwork', 'from_config',
           'network_from_config', 'load_network_params', 'from_hf_config',
           'hf_weights', 'load_params', 'init_params', 'PAD_VALUE']
