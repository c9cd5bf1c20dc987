"""wav2vec 2.0 (Baevski et al. 2020) and HuBERT (Hsu et al. 2021), Flax ports
of Hugging Face's `Wav2Vec2Model` and `HubertModel` that load their
checkpoints offline (wav2vec2-base / large-lv60 / XLS-R, hubert-base /
large). `jaxser.models.wavlm` builds WavLM from the same pieces.

Input: waveforms (batch, samples) at 16 kHz, as Hugging Face's model takes
`input_values`; `lengths` (batch,) counts each one's valid samples (the rest
is padding).

  normalise  x <- (x - mean(x)) / sqrt(var(x) + 1e-7) over the valid samples,
             padding 0 (Wav2Vec2FeatureExtractor with do_normalize; only
             with `normalize`, see below)
  features   z = conv stack: for layer i, Conv1d(conv_dim[i], conv_kernel[i],
             stride conv_stride[i], bias conv_bias) -> norm -> GELU; norm is
             GroupNorm(groups = channels) on layer 0 only
             (feat_extract_norm='group': the base models) or LayerNorm over
             channels after every layer ('layer': large-lv60, XLS-R,
             HuBERT-large); one frame per prod(conv_stride) samples (20 ms)
  project    h = Linear(LN(z)) to `hidden` (HuBERT may leave out the LN:
             feat_proj_layer_norm)
  positions  h <- h + GELU(WNConv1d_{K, groups G}(h)), padding K // 2, the
             last frame dropped for even K; WN = weight norm
             w[:, :, k] = g_k v[:, :, k] / ||v[:, :, k]||
  post-norm  (do_stable_layer_norm=False, base models)
             h_0 = LN(h);  block: a = LN(x + MSA(x)), x' = LN(a + FF(a))
             hidden_states = (h_0, x_1, ..., x_L); last = x_L
  pre-norm   (do_stable_layer_norm=True, large models)
             h_0 = h;  block: a = x + MSA(LN(x)), x' = a + FF(LN(a))
             hidden_states = (h_0, x_1, ..., x_L); last = LN(x_L)

FF = Linear -> GELU (erf) -> Linear; MSA as BERT's (scores and softmax in
float32). hidden_states are in the order of `output_hidden_states` of the
transformers release the goldens were made with (5.x): for the pre-norm
variant the last entry is x_L *before* the final LayerNorm, which only
`last_hidden_state` has (transformers 4.x put LN(x_L) there instead).

Padding never reaches a statistic. A frame is valid when it lies within the
conv output length of the valid samples (HF's
`_get_feat_extract_output_lengths`; clipped to at least one frame); valid
frames of a conv layer see valid frames of the layer below only. Given
`lengths`:
  - the first layer's GroupNorm takes its mean and variance over the valid
    frames only (HF takes them over the whole padded row, which is why its
    base models are run without attention_mask; on an unpadded input both
    agree, and a padded utterance gives what it gives alone),
  - padded frames are set to 0 before the positional convolution and are
    masked out of every attention's keys (HF with `attention_mask`).
So a padded batch gives, on each utterance's valid frames, its hidden
states run alone and unpadded. Padded frames still get (meaningless)
outputs; the network's pooling leaves them out. Without `lengths` nothing is
masked (HF without attention_mask).

`normalize`: the models were pre-trained on normalised audio when their
checkpoint's preprocessor_config.json says `do_normalize: true`; without
that file, by the fairseq convention, the 'layer' models were (large-lv60,
XLS-R, HuBERT-large, WavLM-large) and the 'group' base models were not.
`from_config` sets it so (config.model.<name>.normalize overrides); the
encoder then normalises its raw input itself, inside the jitted step.
`from_hf_config` (and `jaxser.embed`) leave it off: they take `input_values`
already prepared as Hugging Face's model does.

Not ported: SpecAugment-style time/feature masking (`mask_time_prob`, the
`masked_spec_embed` weight) and LayerDrop, both training-time
regularisers; adapters (`add_adapter`, `adapter_attn_dim`) and HuBERT's
`conv_pos_batch_norm` are refused with an error.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxser.models import hf_checkpoint as hf
from jaxser.models import layers
from jaxser.models import transformer_blocks as tb

PREPROCESSOR_CONFIG = 'preprocessor_config.json'
# Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm's epsilon on the variance.
NORMALIZE_EPS = 1e-7
# torch's GroupNorm / LayerNorm default epsilon (the conv stack's norms).
CONV_NORM_EPS = 1e-5

# (jaxser config.model field, HF config.json key, default = the base model).
SIZE_FIELDS = (
    ('layers', 'num_hidden_layers', 12),
    ('hidden', 'hidden_size', 768),
    ('heads', 'num_attention_heads', 12),
    ('mlp_dim', 'intermediate_size', 3072),
    ('conv_dim', 'conv_dim', (512,) * 7),
    ('conv_kernel', 'conv_kernel', (10, 3, 3, 3, 3, 2, 2)),
    ('conv_stride', 'conv_stride', (5, 2, 2, 2, 2, 2, 2)),
    ('conv_bias', 'conv_bias', False),
    ('feat_extract_norm', 'feat_extract_norm', 'group'),
    ('do_stable_layer_norm', 'do_stable_layer_norm', False),
    ('num_conv_pos_embeddings', 'num_conv_pos_embeddings', 128),
    ('num_conv_pos_embedding_groups', 'num_conv_pos_embedding_groups', 16),
)
HUBERT_SIZE_FIELDS = SIZE_FIELDS + (
    ('feat_proj_layer_norm', 'feat_proj_layer_norm', True),)

# Options from_config reads besides the sizes (None: the checkpoint's, else
# the module default).
OPTION_FIELDS = ('dropout', 'attention_dropout', 'activation_dropout',
                 'feat_proj_dropout', 'remat', 'output_hidden_states',
                 'normalize', 'freeze_feature_encoder')


def conv_output_length(n, kernels: Sequence[int], strides: Sequence[int]):
  """Frames of the conv stack for n samples (int or integer array):
  n <- floor((n - k) / s) + 1 per layer (HF's
  `_get_feat_extract_output_lengths`); <= 0 when n is too short."""
  for k, s in zip(kernels, strides):
    n = (n - k) // s + 1
  return n


def normalize_waveform(x: jnp.ndarray, lengths: Optional[jnp.ndarray] = None,
                       eps: float = NORMALIZE_EPS) -> jnp.ndarray:
  """Zero mean, unit variance per utterance over its valid samples, padding
  set to 0, as Wav2Vec2FeatureExtractor(do_normalize=True) with an
  attention mask does:

    y_bt = (x_bt - mu_b) / sqrt(var_b + eps),  mu_b, var_b over t < lengths_b

  x: (batch, samples); lengths (batch,) or None (all valid). float32 out;
  usable inside jit (no data-dependent shapes).
  """
  x = x.astype(jnp.float32)
  if lengths is None:
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps)
  valid = jnp.arange(x.shape[1])[None, :] < lengths[:, None]
  n = jnp.maximum(lengths, 1).astype(jnp.float32)[:, None]
  mean = jnp.where(valid, x, 0.0).sum(axis=1, keepdims=True) / n
  var = (jnp.where(valid, x - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / n
  return jnp.where(valid, (x - mean) / jnp.sqrt(var + eps), 0.0)


def preprocessor_normalize(checkpoint: str) -> Optional[bool]:
  """`do_normalize` of the checkpoint's preprocessor_config.json, or None
  without that file (or without the key)."""
  path = os.path.join(checkpoint, PREPROCESSOR_CONFIG)
  if not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      config = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f'{path}: not readable JSON ({e})'.replace('\n', ' ')
                     ) from None
  if not isinstance(config, dict):
    raise ValueError(f'{path}: not a JSON object')
  value = config.get('do_normalize')
  if value is not None and not isinstance(value, bool):
    raise ValueError(f'{path}: do_normalize={value!r}, expected true or '
                     'false')
  return value


def _activation(name: str, field: str, source: str):
  if name not in tb.ACTIVATIONS:
    raise ValueError(f'{source}: {field}={name!r} is not supported (one of '
                     f'{sorted(tb.ACTIVATIONS)})')
  return tb.ACTIVATIONS[name]


class MaskedInstanceNorm(nn.Module):
  """torch's GroupNorm(num_groups = channels) over (batch, frames, channels)
  (each channel normalised over time, then scaled and shifted), with the
  mean and (biased) variance taken over the frames where `valid` is true.
  Statistics in float32."""
  eps: float = CONV_NORM_EPS
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, valid: Optional[jnp.ndarray]):
    c = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    xf = x.astype(jnp.float32)
    if valid is None:
      mean = xf.mean(axis=1, keepdims=True)
      var = ((xf - mean) ** 2).mean(axis=1, keepdims=True)
    else:
      m = valid[..., None].astype(jnp.float32)
      n = jnp.maximum(m.sum(axis=1, keepdims=True), 1.0)
      mean = (xf * m).sum(axis=1, keepdims=True) / n
      var = (((xf - mean) * m) ** 2).sum(axis=1, keepdims=True) / n
    y = (xf - mean) * jax.lax.rsqrt(var + self.eps) * scale + bias
    return y.astype(self.dtype)


class ConvLayer(nn.Module):
  """One layer of the feature encoder: Conv1d -> norm ('group', 'layer' or
  'none') -> activation."""
  features: int
  kernel: int
  stride: int
  use_bias: bool
  norm: str
  activation: str
  dtype: Any

  @nn.compact
  def __call__(self, x, valid: Optional[jnp.ndarray]):
    x = nn.Conv(self.features, (self.kernel,), strides=(self.stride,),
                padding='VALID', use_bias=self.use_bias, dtype=self.dtype,
                param_dtype=jnp.float32,
                kernel_init=nn.initializers.he_normal(), name='conv')(x)
    if self.norm == 'group':
      x = MaskedInstanceNorm(dtype=self.dtype, name='layer_norm')(x, valid)
    elif self.norm == 'layer':
      x = tb.layer_norm(CONV_NORM_EPS, 'layer_norm', self.dtype)(x)
    return tb.ACTIVATIONS[self.activation](x)


class FeatureEncoder(nn.Module):
  """The conv stack on raw audio: (batch, samples) -> (batch, frames,
  conv_dim[-1]). `lengths` (valid samples) restrict the first layer's
  GroupNorm statistics to the valid frames."""
  conv_dim: tuple
  conv_kernel: tuple
  conv_stride: tuple
  conv_bias: bool
  feat_extract_norm: str
  activation: str
  dtype: Any

  @nn.compact
  def __call__(self, x, lengths: Optional[jnp.ndarray]):
    h = x[..., None].astype(self.dtype)
    for i, (c, k, s) in enumerate(zip(self.conv_dim, self.conv_kernel,
                                      self.conv_stride)):
      norm = ('layer' if self.feat_extract_norm == 'layer' else
              'group' if i == 0 else 'none')
      valid = None
      if norm == 'group' and lengths is not None:
        frames = (h.shape[1] - k) // s + 1
        n = jnp.clip(conv_output_length(lengths, (k,), (s,)), 1, frames)
        valid = jnp.arange(frames)[None, :] < n[:, None]
      h = ConvLayer(c, k, s, self.conv_bias, norm, self.activation,
                    self.dtype, name=f'conv_layers_{i}')(h, valid)
    return h


class FeatureProjection(nn.Module):
  """(LayerNorm ->) Linear to the model width -> dropout."""
  hidden: int
  layer_norm: bool
  eps: float
  dropout: float
  dtype: Any
  deterministic: bool

  @nn.compact
  def __call__(self, x):
    if self.layer_norm:
      x = tb.layer_norm(self.eps, 'layer_norm', self.dtype)(x)
    x = tb.dense(self.hidden, 'projection', self.dtype)(x)
    return layers.Dropout(self.dropout, deterministic=self.deterministic)(x)


class PositionalConvEmbedding(nn.Module):
  """The convolutional relative position embedding: GELU(WNConv1d(x)), a
  grouped convolution with `kernel` taps, padding kernel // 2 on both sides
  and, for an even kernel, the last output frame dropped (HF's
  SamePadLayer), so frames in = frames out.

  Weight norm as torch's `weight_norm(conv, dim=2)`: the kernel is
  g_k v_k / ||v_k|| for each tap k, v_k the (in / groups, out) slice; g
  ('weight_g', (kernel,)) and v ('weight_v', (kernel, in / groups, out),
  flax layout) are the parameters, so fine-tuning keeps the
  reparametrisation.
  """
  hidden: int
  kernel: int
  groups: int
  activation: str
  dtype: Any

  @nn.compact
  def __call__(self, x):
    k, h, g = self.kernel, self.hidden, self.groups
    std = 2 * math.sqrt(1 / (k * h))  # HF's initialisation of the kernel.
    v = self.param('weight_v', nn.initializers.normal(std),
                   (k, h // g, h), jnp.float32)
    # torch's weight_norm starts with g = ||v_k||; its expected value here.
    g0 = std * math.sqrt(h * h // g)
    gain = self.param('weight_g', nn.initializers.constant(g0), (k,),
                      jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (h,), jnp.float32)
    norm = jnp.sqrt((v ** 2).sum(axis=(1, 2)))
    kernel = (v * (gain / norm)[:, None, None]).astype(self.dtype)
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), kernel, window_strides=(1,),
        padding=[(k // 2, k // 2)], dimension_numbers=('NWC', 'WIO', 'NWC'),
        feature_group_count=g)
    y = y + bias.astype(self.dtype)
    if k % 2 == 0:
      y = y[:, :-1]
    return tb.ACTIVATIONS[self.activation](y)


class FeedForward(nn.Module):
  mlp_dim: int
  hidden: int
  hidden_act: str
  activation_dropout: float
  dropout: float
  dtype: Any
  deterministic: bool

  @nn.compact
  def __call__(self, x):
    x = tb.dense(self.mlp_dim, 'intermediate_dense', self.dtype)(x)
    x = tb.ACTIVATIONS[self.hidden_act](x)
    x = layers.Dropout(self.activation_dropout,
                       deterministic=self.deterministic)(x)
    x = tb.dense(self.hidden, 'output_dense', self.dtype)(x)
    return layers.Dropout(self.dropout, deterministic=self.deterministic)(x)


class Wav2Vec2Layer(nn.Module):
  """Encoder block with HF's parameter names: post-norm, or pre-norm with
  `stable` (do_stable_layer_norm). Returns (x, position bias), the bias
  passed through (WavLM's layers compute and use one)."""
  hidden: int
  heads: int
  mlp_dim: int
  stable: bool
  layer_norm_eps: float
  hidden_act: str
  dropout: float
  attention_dropout: float
  activation_dropout: float
  dtype: Any
  deterministic: bool

  def attend(self, x, mask, bias):
    """(attention output, position bias)."""
    out = tb.SelfAttention(self.hidden, self.heads, True,
                           self.attention_dropout, self.dtype,
                           self.deterministic, name='attention')(x, mask)
    return out, bias

  @nn.compact
  def __call__(self, x, mask, bias=None):
    drop = lambda y: layers.Dropout(
        self.dropout, deterministic=self.deterministic)(y)
    ln = lambda name: tb.layer_norm(self.layer_norm_eps, name, self.dtype)
    ff = FeedForward(self.mlp_dim, self.hidden, self.hidden_act,
                     self.activation_dropout, self.dropout, self.dtype,
                     self.deterministic, name='feed_forward')
    if self.stable:
      h, bias = self.attend(ln('layer_norm')(x), mask, bias)
      x = x + drop(h)
      return x + ff(ln('final_layer_norm')(x)), bias
    h, bias = self.attend(x, mask, bias)
    x = ln('layer_norm')(x + drop(h))
    return ln('final_layer_norm')(x + ff(x)), bias


class Wav2Vec2(nn.Module):
  """wav2vec 2.0 / HuBERT encoder; sizes default to the base model (7 conv
  layers of 512, 12 x 768, 12 heads, positional conv 128 taps / 16 groups).

  __call__(input_values (batch, samples), lengths (batch,) valid samples or
  None, *, train) -> `TransformerOutput` with mask = the valid frames;
  `hidden_states` only with `output_hidden_states`. Parameters are float32;
  `dtype` is the compute dtype; `remat` recomputes each block in the
  backward pass; `normalize` normalises the input per utterance first;
  `freeze_feature_encoder` stops the gradient at the conv stack's output.
  """
  hidden: int = 768
  layers: int = 12
  heads: int = 12
  mlp_dim: int = 3072
  conv_dim: tuple = (512,) * 7
  conv_kernel: tuple = (10, 3, 3, 3, 3, 2, 2)
  conv_stride: tuple = (5, 2, 2, 2, 2, 2, 2)
  conv_bias: bool = False
  feat_extract_norm: str = 'group'
  do_stable_layer_norm: bool = False
  num_conv_pos_embeddings: int = 128
  num_conv_pos_embedding_groups: int = 16
  feat_proj_layer_norm: bool = True
  layer_norm_eps: float = 1e-5
  hidden_act: str = 'gelu'
  feat_extract_activation: str = 'gelu'
  dropout: float = 0.1
  attention_dropout: float = 0.1
  activation_dropout: float = 0.1
  feat_proj_dropout: float = 0.0
  normalize: bool = False
  freeze_feature_encoder: bool = False
  dtype: Any = jnp.float32
  remat: bool = False
  output_hidden_states: bool = False

  def num_frames(self, samples):
    """Frames of the conv stack for `samples` samples (int or array)."""
    return conv_output_length(samples, self.conv_kernel, self.conv_stride)

  def min_samples(self, frames: int = 1) -> int:
    """The fewest samples that give `frames` frames (the receptive field for
    one)."""
    n = frames
    for k, s in reversed(list(zip(self.conv_kernel, self.conv_stride))):
      n = (n - 1) * s + k
    return n

  def frame_lengths(self, lengths: jnp.ndarray, frames: int) -> jnp.ndarray:
    """Valid frames of utterances of `lengths` valid samples, in [1,
    frames]."""
    return jnp.clip(self.num_frames(lengths), 1, frames).astype(jnp.int32)

  def check_input(self, shape, source: str = 'input_values') -> None:
    """One-line errors for inputs the model cannot take."""
    if len(shape) != 2:
      raise ValueError(f'{source}: expected (batch, samples) waveforms, got '
                       f'shape {tuple(shape)}')
    if shape[1] < self.min_samples():
      raise ValueError(f'{source}: {shape[1]} samples, fewer than one frame '
                       f'of the conv feature encoder ({self.min_samples()} '
                       'samples)')

  def encoder_norm_name(self) -> str:
    """The flax name of HF's `encoder.layer_norm`: 'encoder_layer_norm'
    below the first block (post-norm), 'encoder_final_layer_norm' above the
    last one (pre-norm), so that layer-wise learning-rate decay can tell an
    embedding norm from a final one."""
    return ('encoder_final_layer_norm' if self.do_stable_layer_norm else
            'encoder_layer_norm')

  def _layer(self, i: int, train: bool):
    block = nn.remat(Wav2Vec2Layer) if self.remat else Wav2Vec2Layer
    return block(self.hidden, self.heads, self.mlp_dim,
                 self.do_stable_layer_norm, self.layer_norm_eps,
                 self.hidden_act, self.dropout, self.attention_dropout,
                 self.activation_dropout, self.dtype, not train,
                 name=f'layer_{i}')

  @nn.compact
  def __call__(self, input_values: jnp.ndarray,
               lengths: Optional[jnp.ndarray] = None, *,
               train: bool = False) -> tb.TransformerOutput:
    self.check_input(input_values.shape)
    batch, samples = input_values.shape
    x = input_values.astype(jnp.float32)
    if lengths is not None:
      lengths = jnp.asarray(lengths).astype(jnp.int32)
      x = jnp.where(jnp.arange(samples)[None, :] < lengths[:, None], x, 0.0)
    if self.normalize:
      x = normalize_waveform(x, lengths)
    feats = FeatureEncoder(self.conv_dim, self.conv_kernel, self.conv_stride,
                           self.conv_bias, self.feat_extract_norm,
                           self.feat_extract_activation, self.dtype,
                           name='feature_extractor')(x, lengths)
    if self.freeze_feature_encoder:
      # HF's freeze_feature_encoder: no gradient into the conv stack (and
      # no backward pass through it).
      feats = jax.lax.stop_gradient(feats)
    frames = feats.shape[1]
    h = FeatureProjection(self.hidden, self.feat_proj_layer_norm,
                          self.layer_norm_eps, self.feat_proj_dropout,
                          self.dtype, not train,
                          name='feature_projection')(feats)
    if lengths is None:
      mask = jnp.ones((batch, frames), jnp.float32)
      attention_mask = None
    else:
      mask = (jnp.arange(frames)[None, :] < self.frame_lengths(
          lengths, frames)[:, None]).astype(jnp.float32)
      attention_mask = mask
      h = jnp.where(mask[..., None] > 0, h, jnp.zeros((), h.dtype))
    h = h + PositionalConvEmbedding(
        self.hidden, self.num_conv_pos_embeddings,
        self.num_conv_pos_embedding_groups, self.feat_extract_activation,
        self.dtype, name='pos_conv_embed')(h)
    if not self.do_stable_layer_norm:
      h = tb.layer_norm(self.layer_norm_eps, self.encoder_norm_name(),
                        self.dtype)(h)
    h = layers.Dropout(self.dropout, deterministic=not train)(h)

    hidden_states, bias = [h], None
    for i in range(self.layers):
      h, bias = self._layer(i, train)(h, attention_mask, bias)
      hidden_states.append(h)
    last = h
    if self.do_stable_layer_norm:
      last = tb.layer_norm(self.layer_norm_eps, self.encoder_norm_name(),
                           self.dtype)(h)
    return tb.TransformerOutput(
        last_hidden_state=last,
        hidden_states=(jnp.stack(hidden_states)
                       if self.output_hidden_states else None),
        mask=mask)


class Wav2Vec2Network(nn.Module):
  """The encoder + learned layer sum + masked mean pooling, called as
  jaxser's network registry calls a network:

    (x (batch, samples) waveforms, lengths (batch,) valid samples, *, train)
      -> {'embedding': (batch, hidden), 'frames': (batch, T, hidden),
          'frame_lengths': (batch,) valid frames}

  'embedding' is the multitask paper's utterance embedding (softmax-weighted
  sum of the projected features and every layer's output, SUPERB-style,
  then the mean over the valid frames); 'frames' the layer sum per frame
  (one per prod(conv_stride) samples). Parameters: {'encoder': the
  encoder's, 'pool': the layer weights}; `load_network_params` puts a
  checkpoint into 'encoder'. Works for every encoder of this family
  (wav2vec 2.0, HuBERT, WavLM).
  """
  encoder: Wav2Vec2
  # A frozen upstream (config.model.<name>.freeze): no gradient flows into
  # the encoder, so its backward pass is not computed; the layer weights of
  # the pooling still train.
  freeze: bool = False

  @nn.compact
  def __call__(self, x, lengths, *, train: bool = False):
    if not self.encoder.output_hidden_states:
      raise ValueError(f'{type(self).__name__} needs the encoder with '
                       'output_hidden_states=True')
    out = self.encoder(x, lengths, train=train)
    if self.freeze:
      out = jax.lax.stop_gradient(out)
    embedding, frames = tb.LayerSumPooling(name='pool')(out)
    return {'embedding': embedding, 'frames': frames,
            'frame_lengths': out.mask.sum(axis=1).astype(jnp.int32)}


class HubertNetwork(Wav2Vec2Network):
  """`Wav2Vec2Network` around a HuBERT encoder."""


# --- checkpoint weights -------------------------------------------------------


def hf_weights(model: Wav2Vec2) -> list[hf.Weight]:
  """The HF names, shapes and flax paths of a wav2vec 2.0 / HuBERT
  encoder's weights (WavLM adds its own, `jaxser.models.wavlm`)."""
  H = (model.hidden, 'hidden_size')
  M = (model.mlp_dim, 'intermediate_size')
  one = (1, '1')
  conv = lambda i: (model.conv_dim[i], f'conv_dim[{i}]')
  n = len(model.conv_dim)
  w = []
  for i in range(n):
    hp, fp = (f'feature_extractor.conv_layers.{i}',
              ('feature_extractor', f'conv_layers_{i}'))
    # torch Conv1d (out, in, kernel) -> flax (kernel, in, out).
    w.append(hf.Weight(f'{hp}.conv.weight', fp + ('conv', 'kernel'),
                       (conv(i), one if i == 0 else conv(i - 1),
                        (model.conv_kernel[i], f'conv_kernel[{i}]')),
                       lambda a: a.transpose(2, 1, 0)))
    if model.conv_bias:
      w.append(hf.Weight(f'{hp}.conv.bias', fp + ('conv', 'bias'),
                         (conv(i),)))
    if model.feat_extract_norm == 'layer' or i == 0:
      w += hf.layer_norm(f'{hp}.layer_norm', fp + ('layer_norm',), conv(i))
  if model.feat_proj_layer_norm:
    w += hf.layer_norm('feature_projection.layer_norm',
                       ('feature_projection', 'layer_norm'), conv(n - 1))
  w += hf.linear('feature_projection.projection',
                 ('feature_projection', 'projection'), conv(n - 1), H)
  K = (model.num_conv_pos_embeddings, 'num_conv_pos_embeddings')
  G = (model.hidden // model.num_conv_pos_embedding_groups,
       'hidden_size / num_conv_pos_embedding_groups')
  w += [
      hf.Weight('encoder.pos_conv_embed.conv.weight_g',
                ('pos_conv_embed', 'weight_g'), (one, one, K),
                lambda a: a.reshape(-1)),
      hf.Weight('encoder.pos_conv_embed.conv.weight_v',
                ('pos_conv_embed', 'weight_v'), (H, G, K),
                lambda a: a.transpose(2, 1, 0)),
      hf.Weight('encoder.pos_conv_embed.conv.bias',
                ('pos_conv_embed', 'bias'), (H,)),
  ]
  w += hf.layer_norm('encoder.layer_norm', (model.encoder_norm_name(),), H)
  for i in range(model.layers):
    hp, fp = f'encoder.layers.{i}', (f'layer_{i}',)
    for hf_name, name in (('q_proj', 'query'), ('k_proj', 'key'),
                          ('v_proj', 'value'), ('out_proj', 'output')):
      w += hf.linear(f'{hp}.attention.{hf_name}', fp + ('attention', name),
                     H, H)
    w += hf.layer_norm(f'{hp}.layer_norm', fp + ('layer_norm',), H)
    w += hf.linear(f'{hp}.feed_forward.intermediate_dense',
                   fp + ('feed_forward', 'intermediate_dense'), H, M)
    w += hf.linear(f'{hp}.feed_forward.output_dense',
                   fp + ('feed_forward', 'output_dense'), M, H)
    w += hf.layer_norm(f'{hp}.final_layer_norm', fp + ('final_layer_norm',),
                       H)
  return w


# torch's newer weight-norm parametrisation names -> the classic ones (what
# the Hub's checkpoints mostly hold).
RENAMES = (
    (r'\.conv\.parametrizations\.weight\.original0$', '.conv.weight_g'),
    (r'\.conv\.parametrizations\.weight\.original1$', '.conv.weight_v'),
)
# Not part of the encoder: the pre-training quantiser and projections, the
# SpecAugment embedding, and the task models' heads.
IGNORE = (r'^masked_spec_embed$', r'^quantizer\.', r'^project_hid\.',
          r'^project_q\.', r'^lm_head\.', r'^projector\.', r'^classifier\.',
          r'^layer_weights$', r'^tdnn\.', r'^feature_extractor_head\.',
          r'^objective\.', r'^label_embeddings_concat$', r'^final_proj\.')


def _split_weight_norm(state: dict) -> dict:
  """A positional conv saved without weight norm (a plain `conv.weight`,
  e.g. after torch's remove_weight_norm) as the equivalent g = ||w_k||,
  v = w."""
  out = dict(state)
  for name in list(state):
    if name.endswith('pos_conv_embed.conv.weight'):
      stem = name[:-len('weight')]
      if not any(k.startswith(stem + 'weight_') or
                 k.startswith(stem + 'parametrizations.') for k in state):
        w = np.asarray(state[name], np.float32)
        out[stem + 'weight_g'] = np.sqrt((w ** 2).sum(axis=(0, 1),
                                                      keepdims=True))
        out[stem + 'weight_v'] = w
        del out[name]
  return out


# --- building from configs ----------------------------------------------------


def _tuples(d: Optional[dict], fields) -> Optional[dict]:
  """A copy of `d` with the list-valued fields (conv_dim, ...) as tuples, so
  that a JSON list and a config tuple compare equal."""
  if d is None:
    return None
  out = dict(d)
  for key in fields:
    if isinstance(out.get(key), list):
      out[key] = tuple(out[key])
  return out


def _resolve_sizes(model_cfg, hf_config, fields, source, prefix) -> dict:
  tuple_fields = [f for f, _, d in fields if isinstance(d, tuple)]
  cfg = None
  if model_cfg is not None:
    cfg = {f: hf.cfg_get(model_cfg, f) for f, _, _ in fields}
    cfg = _tuples(cfg, tuple_fields)
  hf_cfg = _tuples(hf_config, [k for f, k, d in fields
                               if isinstance(d, tuple)])
  return hf.resolve_sizes(cfg, hf_cfg, fields, source, prefix)


def validate(model: Wav2Vec2, where: Callable[[str], str]) -> None:
  """One-line errors for sizes the model cannot be built with; `where(field)`
  names the field (`config.model.wav2vec2.conv_kernel`, or config.json's
  key)."""
  convs = ('conv_dim', 'conv_kernel', 'conv_stride')
  for field in convs:
    value = getattr(model, field)
    if (not isinstance(value, tuple) or not value or
        not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                for v in value)):
      raise ValueError(f'{where(field)}={value!r}: expected a non-empty '
                       'list of positive integers')
  if len({len(getattr(model, f)) for f in convs}) != 1:
    raise ValueError(
        f'{where("conv_dim")}, {where("conv_kernel")}, '
        f'{where("conv_stride")}: lengths {len(model.conv_dim)}, '
        f'{len(model.conv_kernel)}, {len(model.conv_stride)} differ (one '
        'entry per conv layer)')
  if model.feat_extract_norm not in ('group', 'layer'):
    raise ValueError(f'{where("feat_extract_norm")}='
                     f'{model.feat_extract_norm!r}: expected \'group\' or '
                     '\'layer\'')
  for field in ('hidden', 'heads', 'layers', 'mlp_dim',
                'num_conv_pos_embeddings', 'num_conv_pos_embedding_groups'):
    if getattr(model, field) < 1:
      raise ValueError(f'{where(field)}={getattr(model, field)}: must be '
                       'positive')
  if model.hidden % model.heads:
    raise ValueError(f'{where("hidden")}={model.hidden} is not a multiple of '
                     f'{where("heads")}={model.heads}')
  if model.hidden % model.num_conv_pos_embedding_groups:
    raise ValueError(
        f'{where("hidden")}={model.hidden} is not a multiple of '
        f'{where("num_conv_pos_embedding_groups")}='
        f'{model.num_conv_pos_embedding_groups}')


def _hf_options(hf_config: dict, source: str, model_type: str) -> dict:
  """The non-size settings of an HF wav2vec2 / HuBERT / WavLM config."""
  hf.check_model_type(hf_config, model_type, source)
  if hf_config.get('add_adapter'):
    raise ValueError(f'{source}: add_adapter=true; the adapter layers are '
                     'not supported')
  if hf_config.get('adapter_attn_dim') is not None:
    raise ValueError(f'{source}: adapter_attn_dim='
                     f'{hf_config["adapter_attn_dim"]!r}; attention adapters '
                     'are not supported')
  if hf_config.get('conv_pos_batch_norm'):
    raise ValueError(f'{source}: conv_pos_batch_norm=true; only the weight-'
                     'normalised positional convolution is supported')
  act = hf_config.get('hidden_act', 'gelu')
  feat_act = hf_config.get('feat_extract_activation', 'gelu')
  _activation(act, 'hidden_act', source)
  _activation(feat_act, 'feat_extract_activation', source)
  return dict(layer_norm_eps=float(hf_config.get('layer_norm_eps', 1e-5)),
              hidden_act=act, feat_extract_activation=feat_act,
              dropout=float(hf_config.get('hidden_dropout', 0.1)),
              attention_dropout=float(hf_config.get('attention_dropout',
                                                    0.1)),
              activation_dropout=float(hf_config.get('activation_dropout',
                                                     0.1)),
              feat_proj_dropout=float(hf_config.get('feat_proj_dropout',
                                                    0.0)))


class Family:
  """The functions of one model type (what `jaxser.models.ast` has at module
  level): wav2vec2.WAV2VEC2, wav2vec2.HUBERT, wavlm.WAVLM.

  model_type: config.json's; module: the encoder class; network: the
  network class; size_fields: (field, HF key, default) triples;
  weights: model -> list of `hf_checkpoint.Weight`; prefix: the task
  models' prefix of the encoder's weights (`wav2vec2.`).
  """

  def __init__(self, model_type: str, module, network, size_fields,
               weights, prefix: str):
    self.model_type = model_type
    self.module = module
    self.network = network
    self.SIZE_FIELDS = size_fields  # pylint: disable=invalid-name
    self.weights = weights
    self.prefix = prefix

  def _fixed(self) -> dict:
    """Architecture settings a family without the field has fixed."""
    names = {f for f, _, _ in self.SIZE_FIELDS}
    return {} if 'feat_proj_layer_norm' in names else {
        'feat_proj_layer_norm': True}

  def from_hf_config(self, hf_config: dict,
                     config_source: str = 'config.json', **options):
    """The encoder with the sizes and settings of a checkpoint's config.json
    (normalize off: it takes input_values as HF's model does)."""
    settings = _hf_options(hf_config, config_source, self.model_type)
    sizes = _resolve_sizes(None, hf_config, self.SIZE_FIELDS, config_source,
                           'config.model.')
    model = self.module(**sizes, **self._fixed(),
                        **{**settings, **options})
    hf_keys = {f: k for f, k, _ in self.SIZE_FIELDS}
    validate(model, lambda f: f'{config_source}: {hf_keys.get(f, f)}')
    return model

  def from_config(self, model_cfg, field_prefix: str = 'config.model.'):
    """The encoder from jaxser's `config.model` (a ConfigDict or dict).

    Sizes (the base model's by default): `layers`, `hidden`, `heads`,
    `mlp_dim` (default 4 x hidden), `conv_dim`, `conv_kernel`,
    `conv_stride`, `conv_bias`, `feat_extract_norm` ('group' | 'layer'),
    `do_stable_layer_norm`, `num_conv_pos_embeddings`,
    `num_conv_pos_embedding_groups` (+ HuBERT's `feat_proj_layer_norm`,
    WavLM's `num_buckets`, `max_bucket_distance`). With `checkpoint` (a
    directory) they come from its config.json, and one set here that
    disagrees is an error naming `config.model.<field>` (`field_prefix` +
    field). Options: `dtype` ('float32' | 'bfloat16'), `remat`, `dropout`,
    `attention_dropout`, `activation_dropout`, `feat_proj_dropout` (default:
    the checkpoint's, else HF's 0.1, 0.1, 0.1, 0), `output_hidden_states`
    (default True), `normalize` (default: the checkpoint's
    preprocessor_config.json do_normalize, else feat_extract_norm ==
    'layer'), `freeze_feature_encoder` (default False: no gradient into
    the conv stack).
    """
    get = lambda k: hf.cfg_get(model_cfg, k)
    checkpoint = get('checkpoint')
    fields, options, hf_config, source = self.SIZE_FIELDS, {}, None, None
    if checkpoint:
      source = os.path.join(checkpoint, hf.CONFIG)
      hf_config = hf.read_config(checkpoint)
      options = _hf_options(hf_config, source, self.model_type)
    elif get('mlp_dim') is None and get('hidden') is not None:
      # Tiny models keep the base model's MLP ratio.
      fields = tuple((f, k, 4 * get('hidden') if f == 'mlp_dim' else d)
                     for f, k, d in fields)
    sizes = _resolve_sizes(model_cfg, hf_config, fields, source,
                           field_prefix)
    for name in OPTION_FIELDS:
      if get(name) is not None:
        options[name] = get(name)
    options.setdefault('output_hidden_states', True)
    if 'normalize' not in options:
      do = preprocessor_normalize(checkpoint) if checkpoint else None
      options['normalize'] = (sizes['feat_extract_norm'] == 'layer'
                              if do is None else do)
    dtype = tb.compute_dtype(get('dtype') or 'float32',
                             f'{field_prefix}dtype')
    model = self.module(**sizes, **self._fixed(), **options, dtype=dtype)
    hf_keys = {f: k for f, k, _ in self.SIZE_FIELDS}
    if hf_config is None:
      validate(model, lambda f: f'{field_prefix}{f}')
    else:
      validate(model, lambda f: f'{source}: {hf_keys.get(f, f)}')
    return model

  def hf_weights(self, model) -> list[hf.Weight]:
    return self.weights(model)

  def load_params(self, checkpoint: str, model=None) -> dict:
    """The checkpoint's weights as the `params` of `model` (float32 numpy).

    `model` defaults to the checkpoint's own sizes; a model of other sizes
    is an error naming the field. Pre-training (quantiser) and task-model
    checkpoints (CTC, sequence classification, ...) load too: their heads
    are left out.
    """
    return hf.load_params(
        checkpoint, model, from_hf_config=self.from_hf_config,
        size_fields=self.SIZE_FIELDS, weights=self.weights,
        example=lambda m: jax.ShapeDtypeStruct((1, m.min_samples(2)),
                                               jnp.float32),
        prefixes=(self.prefix,), renames=RENAMES, ignore=IGNORE,
        transform=_split_weight_norm)

  def init_params(self, model, rng: jax.Array,
                  samples: Optional[int] = None):
    """Random parameters (float32) of `model` (they do not depend on the
    input length; `samples` defaults to two frames' worth)."""
    x = jnp.zeros((1, samples or model.min_samples(2)), jnp.float32)
    return model.init(rng, x)['params']

  def network_from_config(self, model_cfg,
                          field_prefix: str = 'config.model.'):
    """The network around `from_config(model_cfg)` (the registry's
    build)."""
    encoder = self.from_config(model_cfg, field_prefix)
    if not encoder.output_hidden_states:
      raise ValueError(f'{field_prefix}output_hidden_states=False: the '
                       'layer-sum pooling needs all hidden states')
    return self.network(encoder)

  def load_network_params(self, params, checkpoint: str):
    """A network's initialised `params` with the checkpoint's weights in
    its encoder."""
    return tb.with_encoder_params(params, self.load_params(checkpoint),
                                  checkpoint)


WAV2VEC2 = Family('wav2vec2', Wav2Vec2, Wav2Vec2Network, SIZE_FIELDS,
                  hf_weights, 'wav2vec2.')
HUBERT = Family('hubert', Wav2Vec2, HubertNetwork, HUBERT_SIZE_FIELDS,
                hf_weights, 'hubert.')

# wav2vec 2.0 at module level, as jaxser.models.ast has its functions.
MODEL_TYPE = WAV2VEC2.model_type
from_hf_config = WAV2VEC2.from_hf_config
from_config = WAV2VEC2.from_config
load_params = WAV2VEC2.load_params
init_params = WAV2VEC2.init_params
network_from_config = WAV2VEC2.network_from_config
load_network_params = WAV2VEC2.load_network_params


def family(model_type: str) -> Family:
  """The family of a config.json model_type ('wav2vec2', 'hubert',
  'wavlm')."""
  from jaxser.models import wavlm  # pylint: disable=g-import-not-at-top
  families = {f.model_type: f for f in (WAV2VEC2, HUBERT, wavlm.WAVLM)}
  if model_type not in families:
    raise ValueError(f'model_type={model_type!r}: not one of '
                     f'{sorted(families)}')
  return families[model_type]


__all__ = ['Wav2Vec2', 'Wav2Vec2Layer', 'Wav2Vec2Network', 'HubertNetwork',
           'FeatureEncoder', 'FeatureProjection', 'PositionalConvEmbedding',
           'MaskedInstanceNorm', 'Family', 'WAV2VEC2', 'HUBERT', 'family',
           'from_config', 'network_from_config', 'load_network_params',
           'from_hf_config', 'hf_weights', 'load_params', 'init_params',
           'normalize_waveform', 'conv_output_length',
           'preprocessor_normalize', 'SIZE_FIELDS', 'HUBERT_SIZE_FIELDS']
