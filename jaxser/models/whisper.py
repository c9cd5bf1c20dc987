"""Whisper's encoder (Radford et al. 2022), a Flax port of the encoder half of
Hugging Face's `WhisperModel` that loads its checkpoints offline (the
`openai/whisper-*` family, tiny to large-v3), and its log-mel front end in
JAX.

Front end (`LogMel`, the twin of `WhisperFeatureExtractor`): a 16 kHz
waveform, zero-padded or truncated to the window of N = 480000 samples
(30 s), reflect-padded by n_fft / 2 = 200 samples at both ends (torch.stft's
and the extractor's `center=True`), cut into frames of 400 samples every 160,
times a periodic Hann window, power spectrum |rfft|^2 (201 bins), Whisper's
mel filters (Slaney scale and area normalisation, 0-8 kHz, as
`mel_filter_bank` in transformers' audio_utils builds them for the
extractor; computed here in NumPy), then

  L = log10(max(M, 1e-10)),  L = max(L, max(L) - 8),  x = (L + 4) / 4

with max(L) over the whole window of each clip, and the last STFT frame
dropped: N / 160 = 3000 frames of 80 bins (128 for large-v3). As the
extractor, the maximum is taken over the whole padded window, padding
included: zero padding only gives floor values there, so it equals the
maximum over the frames that touch the clip. Given `lengths`, the samples
after each clip's length are zeroed first, so a padded jaxser batch gives
each clip the features the extractor gives it alone. Its valid frames are
ceil(length / 160) (the extractor's `attention_mask`).

Encoder (input (batch, n_mels, 3000), HF's `input_features` layout):

  embed     e = GELU(Conv1d_{k3, s2}(GELU(Conv1d_{k3}(x))))  (padding 1)
            z_0 = e + E_pos[0..1499]                   (1500 frames, 20 ms)
  block l   z' = z + MSA(LN_1(z)),  z_l = z' + W_2 GELU(W_1 LN_2(z'))
            (pre-norm; k_proj has no bias; GELU exact (erf); LN eps 1e-5;
            queries scaled by 1/sqrt(d_head) before the product, as HF)
  output    last_hidden_state = LN(z_L)
            hidden_states = (z_0, ..., z_{L-1}, LN(z_L))

The last of HF's `hidden_states` is the final layer norm's output (HF ties
it to `last_hidden_state`), so it is here. The position table is the
checkpoint's `embed_positions.weight` (sinusoids for the openai models; a
model built without a checkpoint starts from the same sinusoids) and, as in
HF where it is frozen, it gets no gradient (stop_gradient). No key mask: as
in Whisper, every frame attends to the whole 30 s window, padding included
(HF accepts an `attention_mask` and ignores it); true lengths only decide
which frames pooling averages, ceil(valid mel frames / 2).

HF's encoder takes exactly 2 x max_source_positions = 3000 mel frames;
`Whisper(pad_to_30s=True)` (the default) keeps that contract, and so does
`jaxser.embed`. With `pad_to_30s=False` the network takes shorter inputs: a
batch of T samples gives T // 160 mel frames (at most 3000; the maximum of
the floor then runs over that shorter window) and ceil(frames / 2) encoder
frames, with the first position embeddings. That is cheaper but not what
Whisper was trained on, and since there is no key mask, a clip's outputs
then depend on how much padding its batch adds.

Not ported: SpecAugment (`apply_spec_augment`, off in the openai configs)
and LayerDrop (`encoder_layerdrop`, 0 in them); the extractor's dithering
and `do_normalize` (both off by default) are refused.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxser.models import hf_checkpoint as hf
from jaxser.models import layers
from jaxser.models import transformer_blocks as tb

MODEL_TYPE = 'whisper'
PREPROCESSOR_CONFIG = 'preprocessor_config.json'
SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
MEL_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0  # log10 units kept below each clip's maximum.
_HIGHEST = jax.lax.Precision.HIGHEST

# (jaxser config.model field, HF config.json key, default = whisper-base).
SIZE_FIELDS = (
    ('layers', 'encoder_layers', 6),
    ('hidden', 'd_model', 512),
    ('heads', 'encoder_attention_heads', 8),
    ('mlp_dim', 'encoder_ffn_dim', 2048),
    ('num_mel_bins', 'num_mel_bins', 80),
    ('max_source_positions', 'max_source_positions', 1500),
)
# What HF's WhisperConfig assumes for a key that config.json leaves out
# (whisper-tiny's sizes), which differ from the defaults above.
HF_CONFIG_DEFAULTS = {
    'encoder_layers': 4, 'd_model': 384, 'encoder_attention_heads': 6,
    'encoder_ffn_dim': 1536, 'num_mel_bins': 80, 'max_source_positions': 1500,
}


# --- log-mel front end -------------------------------------------------------


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
  """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
  f = np.asarray(f, np.float64)
  mel = 3.0 * f / 200.0
  log = f >= 1000.0
  return np.where(log, 15.0 + np.log(np.maximum(f, 1e-300) / 1000.0)
                  * (27.0 / np.log(6.4)), mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
  m = np.asarray(m, np.float64)
  f = 200.0 * m / 3.0
  return np.where(m >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (m - 15.0)),
                  f)


@functools.lru_cache(maxsize=None)
def mel_filters(n_mels: int = 80, n_fft: int = N_FFT,
                sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
  """(n_fft // 2 + 1, n_mels) float64: the extractor's `mel_filters`
  (transformers' `mel_filter_bank(1 + n_fft // 2, n_mels, 0, 8000,
  sampling_rate, norm='slaney', mel_scale='slaney')`): triangles between
  n_mels + 2 points equally spaced on Slaney's mel scale from 0 to 8 kHz,
  over the FFT bin frequencies, each scaled by 2 / its width in Hz."""
  bins = 1 + n_fft // 2
  mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(8000.0), n_mels + 2)
  edges = _mel_to_hz(mels)
  fft_freqs = np.linspace(0, sampling_rate // 2, bins)
  diff = np.diff(edges)
  slopes = edges[None, :] - fft_freqs[:, None]
  down = -slopes[:, :-2] / diff[:-1]
  up = slopes[:, 2:] / diff[1:]
  filters = np.maximum(0.0, np.minimum(down, up))
  filters *= 2.0 / (edges[2:n_mels + 2] - edges[:n_mels])[None, :]
  filters.flags.writeable = False
  return filters


@functools.lru_cache(maxsize=None)
def _window(n_fft: int) -> np.ndarray:
  """Periodic Hann window (torch.hann_window, the extractor's)."""
  return np.hanning(n_fft + 1)[:-1].astype(np.float32)


@dataclasses.dataclass(frozen=True)
class LogMel:
  """Whisper's log-mel features of a batch of waveforms (module docstring).

  n_samples: the window every clip is padded / truncated to (480000 = 30 s,
  the extractor's `n_samples`); None keeps the batch's own length T (at
  most `max_samples`, when set), giving T // hop_length frames.

  __call__(waveforms (B, T) at 16 kHz, lengths (B,) valid samples or None
  (all T)) -> (features (B, n_mels, frames) float32, mel_lengths (B,) int32
  = min(ceil(length / hop_length), frames)). Jit-able; computed in float32.
  """
  n_mels: int = 80
  n_fft: int = N_FFT
  hop_length: int = HOP_LENGTH
  n_samples: Optional[int] = 30 * SAMPLE_RATE
  max_samples: Optional[int] = None

  def window_samples(self, samples: int) -> int:
    """The samples a batch of `samples` samples is padded / cut to."""
    if self.n_samples is not None:
      return self.n_samples
    if self.max_samples is not None:
      return min(samples, self.max_samples)
    return samples

  def num_frames(self, samples: int) -> int:
    """Frames of a batch of `samples` samples."""
    return self.window_samples(samples) // self.hop_length

  def __call__(self, waveforms: jnp.ndarray,
               lengths: Optional[jnp.ndarray] = None):
    if waveforms.ndim != 2:
      raise ValueError(f'LogMel: expected (batch, samples) waveforms, got '
                       f'shape {tuple(waveforms.shape)}')
    batch, samples = waveforms.shape
    x = waveforms.astype(jnp.float32)
    if lengths is None:
      lengths = jnp.full((batch,), samples, jnp.int32)
    else:
      lengths = jnp.asarray(lengths).astype(jnp.int32)
      x = jnp.where(jnp.arange(samples)[None, :] < lengths[:, None], x, 0.0)
    total = self.window_samples(samples)
    frames = total // self.hop_length
    if frames < 1:
      raise ValueError(f'LogMel: {samples} samples, fewer than one hop '
                       f'({self.hop_length})')
    if total > samples:
      x = jnp.pad(x, ((0, 0), (0, total - samples)))
    x = x[:, :total]
    half = self.n_fft // 2
    # torch.stft(center=True) pads by reflection (it needs total > half).
    mode = 'reflect' if total > half else 'constant'
    x = jnp.pad(x, ((0, 0), (half, half)), mode=mode)
    # Frame t is samples [t hop, t hop + n_fft): `k` hop-sized blocks from
    # block t on, cut to n_fft (no gather). Only the `frames` frames kept
    # are computed: the extractor drops the last of its frames + 1.
    hop = self.hop_length
    k = -(-self.n_fft // hop)
    need = (frames + k - 1) * hop
    if need > x.shape[1]:
      x = jnp.pad(x, ((0, 0), (0, need - x.shape[1])))
    blocks = x[:, :need].reshape(batch, frames + k - 1, hop)
    framed = jnp.concatenate([blocks[:, i:i + frames] for i in range(k)],
                             axis=-1)[..., :self.n_fft]
    spec = jnp.fft.rfft(framed * jnp.asarray(_window(self.n_fft)), axis=-1)
    power = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2     # (B, F, bins)
    filters = jnp.asarray(mel_filters(self.n_mels, self.n_fft).astype(
        np.float32))
    mel = jnp.einsum('btf,fm->bmt', power, filters, precision=_HIGHEST)
    log = jnp.log10(jnp.maximum(mel, MEL_FLOOR))
    peak = jnp.max(log, axis=(1, 2), keepdims=True)
    log = jnp.maximum(log, peak - DYNAMIC_RANGE)
    features = (log + 4.0) / 4.0
    mel_lengths = jnp.clip((lengths + hop - 1) // hop, 0, frames)
    return features, mel_lengths.astype(jnp.int32)


# --- encoder ------------------------------------------------------------------


def sinusoids(length: int, channels: int,
              max_timescale: float = 10000.0) -> np.ndarray:
  """Whisper's position table (length, channels) float32: [sin | cos] of
  t / max_timescale^(i / (channels / 2 - 1)), i < channels / 2."""
  if channels % 2:
    raise ValueError(f'sinusoids: {channels} channels, not even')
  increment = math.log(max_timescale) / (channels // 2 - 1)
  inv = np.exp(-increment * np.arange(channels // 2, dtype=np.float32))
  t = np.arange(length, dtype=np.float32)[:, None] * inv[None, :]
  return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def _sinusoid_init(key, shape, dtype=jnp.float32):
  del key
  return jnp.asarray(sinusoids(*shape), dtype)


class WhisperAttention(nn.Module):
  """Self-attention with HF's q_proj / k_proj (no bias) / v_proj / out_proj;
  no mask (Whisper's encoder attends everywhere)."""
  hidden: int
  heads: int
  dropout: float
  dtype: Any
  deterministic: bool

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if self.hidden % self.heads:
      raise ValueError(f'hidden size {self.hidden} is not a multiple of the '
                       f'number of heads {self.heads}')
    head_dim = self.hidden // self.heads
    split = lambda y: y.reshape(y.shape[:-1] + (self.heads, head_dim))
    # HF scales the projected queries, then takes the product (scaling 1).
    q = tb.dense(self.hidden, 'q_proj', self.dtype)(x) * head_dim ** -0.5
    k = tb.dense(self.hidden, 'k_proj', self.dtype, use_bias=False)(x)
    v = tb.dense(self.hidden, 'v_proj', self.dtype)(x)
    scores = jnp.einsum('bqhd,bkhd->bhqk', split(q), split(k),
                        preferred_element_type=jnp.float32)
    probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    probs = layers.Dropout(self.dropout,
                           deterministic=self.deterministic)(probs)
    y = jnp.einsum('bhqk,bkhd->bqhd', probs, split(v))
    y = y.reshape(y.shape[:-2] + (self.hidden,))
    return tb.dense(self.hidden, 'out_proj', self.dtype)(y)


class WhisperEncoderLayer(nn.Module):
  """Pre-norm block with HF's parameter names."""
  hidden: int
  heads: int
  mlp_dim: int
  layer_norm_eps: float
  activation: str
  dropout: float
  attention_dropout: float
  activation_dropout: float
  dtype: Any
  deterministic: bool

  @nn.compact
  def __call__(self, x):
    drop = lambda rate: layers.Dropout(rate, deterministic=self.deterministic)
    h = tb.layer_norm(self.layer_norm_eps, 'self_attn_layer_norm',
                      self.dtype)(x)
    h = WhisperAttention(self.hidden, self.heads, self.attention_dropout,
                         self.dtype, self.deterministic, name='self_attn')(h)
    x = x + drop(self.dropout)(h)
    h = tb.layer_norm(self.layer_norm_eps, 'final_layer_norm', self.dtype)(x)
    h = tb.activation(self.activation, 'WhisperEncoderLayer')(
        tb.dense(self.mlp_dim, 'fc1', self.dtype)(h))
    h = drop(self.activation_dropout)(h)
    h = tb.dense(self.hidden, 'fc2', self.dtype)(h)
    x = x + drop(self.dropout)(h)
    if jnp.dtype(self.dtype) == jnp.float16:  # As HF, against overflow.
      limit = float(jnp.finfo(jnp.float16).max) - 1000
      x = jnp.clip(x, -limit, limit)
    return x


class Whisper(nn.Module):
  """Whisper encoder; sizes default to whisper-base (6 x 512, 8 heads, MLP
  2048, 80 mel bins, 1500 positions).

  __call__(input_features (batch, num_mel_bins, frames), lengths (batch,)
  valid mel frames or None (all), *, train) -> `TransformerOutput` with
  (batch, ceil(frames / 2), hidden) states; `hidden_states` only with
  `output_hidden_states`; `mask` marks the frames within ceil(lengths / 2).
  frames must be 2 x max_source_positions (3000) with `pad_to_30s`, else at
  most that. Parameters are float32; `dtype` is the compute dtype;
  `remat` recomputes each block in the backward pass. `n_fft`, `hop_length`
  are the front end's (`log_mel()`).
  """
  hidden: int = 512
  layers: int = 6
  heads: int = 8
  mlp_dim: int = 2048
  num_mel_bins: int = 80
  max_source_positions: int = 1500
  layer_norm_eps: float = 1e-5
  activation: str = 'gelu'
  dropout: float = 0.0
  attention_dropout: float = 0.0
  activation_dropout: float = 0.0
  n_fft: int = N_FFT
  hop_length: int = HOP_LENGTH
  pad_to_30s: bool = True
  dtype: Any = jnp.float32
  remat: bool = False
  output_hidden_states: bool = False

  @property
  def num_frames(self) -> int:
    """Mel frames of Whisper's window: 2 x max_source_positions (3000)."""
    return 2 * self.max_source_positions

  @property
  def num_samples(self) -> int:
    """Samples of Whisper's window (480000 = 30 s at 16 kHz)."""
    return self.num_frames * self.hop_length

  def log_mel(self) -> LogMel:
    """The front end: pads to the 30 s window with `pad_to_30s`, else keeps
    the batch's length (up to the window)."""
    if self.pad_to_30s:
      return LogMel(self.num_mel_bins, self.n_fft, self.hop_length,
                    self.num_samples)
    return LogMel(self.num_mel_bins, self.n_fft, self.hop_length, None,
                  self.num_samples)

  @staticmethod
  def output_lengths(mel_lengths: jnp.ndarray) -> jnp.ndarray:
    """Encoder frames of `mel_lengths` mel frames: ceil(n / 2) (the stride-2
    conv; HF's _get_feat_extract_output_lengths)."""
    return (mel_lengths - 1) // 2 + 1

  def check_input(self, shape, source: str = 'input_features') -> None:
    """One-line errors for inputs the model cannot take."""
    want = f'(batch, {self.num_mel_bins}, {self.num_frames})'
    if len(shape) != 3:
      raise ValueError(f'{source}: expected {want}, got shape {tuple(shape)}')
    if shape[1] != self.num_mel_bins:
      raise ValueError(f'{source}: {shape[1]} mel bins, the model takes '
                       f'num_mel_bins={self.num_mel_bins} (expected {want}, '
                       f'got {tuple(shape)})')
    if self.pad_to_30s and shape[2] != self.num_frames:
      raise ValueError(f'{source}: {shape[2]} frames; Whisper takes exactly '
                       f'2 x max_source_positions = {self.num_frames} (pad '
                       f'the waveform to {self.num_samples} samples as '
                       'WhisperFeatureExtractor does)')
    if not 1 <= shape[2] <= self.num_frames:
      raise ValueError(f'{source}: {shape[2]} frames, the model takes 1 to '
                       f'2 x max_source_positions = {self.num_frames}')

  @nn.compact
  def __call__(self, input_features: jnp.ndarray,
               lengths: Optional[jnp.ndarray] = None, *,
               train: bool = False) -> tb.TransformerOutput:
    self.check_input(input_features.shape)
    batch, _, frames = input_features.shape
    x = jnp.swapaxes(input_features.astype(jnp.float32), 1, 2)
    conv = lambda stride, name: nn.Conv(
        self.hidden, (3,), strides=(stride,), padding=((1, 1),),
        dtype=self.dtype, param_dtype=jnp.float32,
        kernel_init=nn.initializers.normal(0.02), name=name)
    gelu = tb.ACTIVATIONS['gelu']
    h = gelu(conv(1, 'conv1')(x.astype(self.dtype)))
    h = gelu(conv(2, 'conv2')(h))
    tokens = h.shape[1]
    pos = self.param('embed_positions', _sinusoid_init,
                     (self.max_source_positions, self.hidden), jnp.float32)
    pos = jax.lax.stop_gradient(pos[:tokens])  # Frozen in HF.
    h = (h + pos.astype(self.dtype)).astype(self.dtype)
    h = layers.Dropout(self.dropout, deterministic=not train)(h)

    if lengths is None:
      mask = jnp.ones((batch, tokens), jnp.float32)
    else:
      valid = jnp.clip(self.output_lengths(lengths), 1, tokens)
      mask = (jnp.arange(tokens)[None, :] < valid[:, None]).astype(
          jnp.float32)

    block = nn.remat(WhisperEncoderLayer) if self.remat else WhisperEncoderLayer
    hidden_states = [h]
    for i in range(self.layers):
      h = block(self.hidden, self.heads, self.mlp_dim, self.layer_norm_eps,
                self.activation, self.dropout, self.attention_dropout,
                self.activation_dropout, self.dtype, not train,
                name=f'layer_{i}')(h)
      hidden_states.append(h)
    last = tb.layer_norm(self.layer_norm_eps, 'layer_norm', self.dtype)(h)
    # HF's last hidden state is the final layer norm's output.
    hidden_states[-1] = last
    return tb.TransformerOutput(
        last_hidden_state=last,
        hidden_states=(jnp.stack(hidden_states)
                       if self.output_hidden_states else None),
        mask=mask)


# --- configs ------------------------------------------------------------------


def read_preprocessor_config(directory: str) -> Optional[dict]:
  """The checkpoint's preprocessor_config.json, or None without one."""
  path = os.path.join(directory, PREPROCESSOR_CONFIG)
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
  return config


def _frontend_options(directory: str, num_mel_bins: int,
                      max_source_positions: int,
                      config_source: str) -> dict:
  """n_fft, hop_length from the checkpoint's preprocessor_config.json (the
  defaults without one), checked against config.json and jaxser's 16 kHz."""
  pre = read_preprocessor_config(directory)
  if pre is None:
    return {}
  path = os.path.join(directory, PREPROCESSOR_CONFIG)
  get = lambda key, default: default if pre.get(key) is None else pre[key]
  feature_size = get('feature_size', 80)
  if feature_size != num_mel_bins:
    raise ValueError(f'{path}: feature_size={feature_size} disagrees with '
                     f'{config_source}: num_mel_bins={num_mel_bins}')
  rate = get('sampling_rate', SAMPLE_RATE)
  if rate != SAMPLE_RATE:
    raise ValueError(f'{path}: sampling_rate={rate}; jaxser feeds '
                     f'{SAMPLE_RATE} Hz audio')
  n_fft, hop = get('n_fft', N_FFT), get('hop_length', HOP_LENGTH)
  for key, value in (('n_fft', n_fft), ('hop_length', hop)):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f'{path}: {key}={value!r}, expected a positive int')
  chunk = get('chunk_length', 30)
  frames = 2 * max_source_positions
  if chunk * rate // hop != frames:
    raise ValueError(f'{path}: chunk_length={chunk} s gives '
                     f'{chunk * rate // hop} frames of hop_length={hop}, '
                     f'the encoder takes 2 x max_source_positions = {frames} '
                     f'({config_source})')
  for key in ('dither', 'padding_value'):
    if get(key, 0.0) != 0.0:
      raise ValueError(f'{path}: {key}={pre[key]!r} is not supported '
                       '(only 0)')
  if pre.get('do_normalize'):
    raise ValueError(f'{path}: do_normalize=true is not supported')
  return dict(n_fft=n_fft, hop_length=hop)


def _hf_options(hf_config: dict, config_source: str) -> dict:
  """The non-size settings of an HF Whisper config."""
  hf.check_model_type(hf_config, MODEL_TYPE, config_source)
  act = hf_config.get('activation_function', 'gelu')
  tb.activation(act, config_source)
  return dict(activation=act,
              dropout=float(hf_config.get('dropout', 0.0)),
              attention_dropout=float(hf_config.get('attention_dropout', 0.0)),
              activation_dropout=float(
                  hf_config.get('activation_dropout', 0.0)))


def _with_hf_defaults(hf_config: dict) -> dict:
  return {**HF_CONFIG_DEFAULTS, **hf_config}


def from_hf_config(hf_config: dict, config_source: str = 'config.json',
                   checkpoint: Optional[str] = None, **options) -> Whisper:
  """A `Whisper` with the sizes of a checkpoint's config.json (and the
  front end of its preprocessor_config.json, given the `checkpoint`
  directory)."""
  sizes = hf.resolve_sizes(None, _with_hf_defaults(hf_config), SIZE_FIELDS,
                           config_source)
  settings = _hf_options(hf_config, config_source)
  if checkpoint:
    settings.update(_frontend_options(checkpoint, sizes['num_mel_bins'],
                                      sizes['max_source_positions'],
                                      config_source))
  settings.update(options)
  return Whisper(**sizes, **settings)


def from_config(model_cfg, field_prefix: str = 'config.model.') -> Whisper:
  """A `Whisper` from jaxser's `config.model` (a ConfigDict or dict).

  Sizes: `layers`, `hidden` (d_model), `heads`, `mlp_dim` (encoder_ffn_dim,
  default 4 x hidden), `num_mel_bins`, `max_source_positions` (the window is
  2 x that mel frames). With `checkpoint` (a directory) the sizes come from
  its config.json (and the front end from its preprocessor_config.json,
  when present), and a size set here that disagrees is an error naming
  `config.model.<field>` (`field_prefix` + field: the registry passes
  `config.model.whisper.`). Options: `dtype` ('float32' | 'bfloat16'),
  `remat`, `dropout`, `attention_dropout`, `activation_dropout` (default:
  the checkpoint's, else 0), `pad_to_30s` (default True),
  `output_hidden_states` (default True: the layer-sum pooling needs them).
  """
  get = lambda k: hf.cfg_get(model_cfg, k)
  checkpoint = get('checkpoint')
  fields, options, hf_config, source = SIZE_FIELDS, {}, None, None
  if checkpoint:
    source = os.path.join(checkpoint, hf.CONFIG)
    hf_config = hf.read_config(checkpoint)
    options = _hf_options(hf_config, source)
    hf_config = _with_hf_defaults(hf_config)
  elif get('mlp_dim') is None and get('hidden') is not None:
    # Tiny models keep the base model's MLP ratio.
    fields = tuple((f, k, 4 * get('hidden') if f == 'mlp_dim' else d)
                   for f, k, d in SIZE_FIELDS)
  sizes = hf.resolve_sizes(model_cfg, hf_config, fields, source,
                           field_prefix)
  if checkpoint:
    options.update(_frontend_options(checkpoint, sizes['num_mel_bins'],
                                     sizes['max_source_positions'], source))
  for name in ('dropout', 'attention_dropout', 'activation_dropout',
               'remat', 'output_hidden_states', 'pad_to_30s'):
    if get(name) is not None:
      options[name] = get(name)
  options.setdefault('output_hidden_states', True)
  dtype = tb.compute_dtype(get('dtype') or 'float32', f'{field_prefix}dtype')
  return Whisper(**sizes, **options, dtype=dtype)


# --- checkpoints --------------------------------------------------------------


def hf_weights(model: Whisper) -> list[hf.Weight]:
  """The HF names (below `model.` in the Hub's checkpoints), shapes and flax
  paths of a Whisper encoder's weights."""
  H = (model.hidden, 'd_model')
  M = (model.mlp_dim, 'encoder_ffn_dim')
  N = (model.num_mel_bins, 'num_mel_bins')
  P = (model.max_source_positions, 'max_source_positions')
  K = (3, 'kernel size 3')
  # torch Conv1d (out, in, kernel) -> flax (kernel, in, out).
  conv = lambda a: a.transpose(2, 1, 0)
  w = [
      hf.Weight('encoder.conv1.weight', ('conv1', 'kernel'), (H, N, K), conv),
      hf.Weight('encoder.conv1.bias', ('conv1', 'bias'), (H,)),
      hf.Weight('encoder.conv2.weight', ('conv2', 'kernel'), (H, H, K), conv),
      hf.Weight('encoder.conv2.bias', ('conv2', 'bias'), (H,)),
      hf.Weight('encoder.embed_positions.weight', ('embed_positions',),
                (P, H)),
  ]
  for i in range(model.layers):
    hp, fp = f'encoder.layers.{i}', (f'layer_{i}',)
    for name in ('q_proj', 'k_proj', 'v_proj', 'out_proj'):
      w += hf.linear(f'{hp}.self_attn.{name}', fp + ('self_attn', name), H, H,
                     bias=name != 'k_proj')
    w += hf.layer_norm(f'{hp}.self_attn_layer_norm',
                       fp + ('self_attn_layer_norm',), H)
    w += hf.linear(f'{hp}.fc1', fp + ('fc1',), H, M)
    w += hf.linear(f'{hp}.fc2', fp + ('fc2',), M, H)
    w += hf.layer_norm(f'{hp}.final_layer_norm', fp + ('final_layer_norm',),
                       H)
  w += hf.layer_norm('encoder.layer_norm', ('layer_norm',), H)
  return w


# Not part of the encoder: the decoder and the language-model head
# (WhisperForConditionalGeneration), WhisperForAudioClassification's
# projector, classifier and layer weights.
IGNORE = (r'^decoder\.', r'^proj_out\.', r'^projector\.', r'^classifier\.',
          r'^layer_weights$')


def load_params(checkpoint: str, model: Optional[Whisper] = None) -> dict:
  """The checkpoint's encoder weights as the `params` of `model` (float32
  numpy).

  `model` defaults to the checkpoint's own sizes; a model of other sizes is
  an error naming the field. Reads WhisperForConditionalGeneration (the
  Hub's `model.encoder.*`), WhisperModel and WhisperForAudioClassification
  (`encoder.*`) checkpoints; the decoder and heads are left out.
  """
  return hf.load_params(
      checkpoint, model, from_hf_config=from_hf_config,
      size_fields=SIZE_FIELDS, weights=hf_weights,
      example=lambda m: jax.ShapeDtypeStruct(
          (1, m.num_mel_bins, m.num_frames), jnp.float32),
      prefixes=('model.',), ignore=IGNORE)


def init_params(model: Whisper, rng: jax.Array):
  """Random parameters (float32) of `model` (HF's initialisation: N(0, 0.02)
  weights, sinusoidal positions)."""
  x = jnp.zeros((1, model.num_mel_bins, model.num_frames))
  return model.init(rng, x)['params']


# --- network ------------------------------------------------------------------


class WhisperNetwork(nn.Module):
  """Whisper's encoder + learned layer sum + masked mean pooling, called as
  jaxser's network registry calls a network:

    (x, lengths, *, train) -> {'embedding': (batch, hidden),
                               'frames': (batch, T', hidden),
                               'frame_lengths': (batch,)}

  x is either (batch, samples) 16 kHz waveforms with `lengths` valid
  samples, turned into log-mel features on the device (`Whisper.log_mel()`:
  padded to the 30 s window with `pad_to_30s`), or (batch, num_mel_bins,
  frames) log-mel features as the extractor gives them with `lengths` valid
  mel frames. The registry feeds waveforms. 'embedding' is the multitask
  paper's utterance embedding (softmax-weighted sum of the embedding output
  and every layer, SUPERB-style, averaged over the valid encoder frames
  only, ceil(valid mel frames / 2)); 'frames' the layer sum per encoder
  frame (every 20 ms), 'frame_lengths' their valid counts. The attention
  sees the whole window (module docstring). Parameters: {'encoder':
  Whisper's, 'pool': the layer weights}; `load_network_params` puts a
  checkpoint into 'encoder'.
  """
  encoder: Whisper
  # A frozen upstream (config.model.<name>.freeze): no gradient flows into
  # the encoder, so its backward pass is not computed; the layer weights of
  # the pooling still train.
  freeze: bool = False

  @nn.compact
  def __call__(self, x, lengths, *, train: bool = False):
    if not self.encoder.output_hidden_states:
      raise ValueError('WhisperNetwork needs Whisper(output_hidden_states='
                       'True)')
    if x.ndim == 2:
      x, lengths = self.encoder.log_mel()(x, lengths)
    elif x.ndim != 3:
      raise ValueError(f'WhisperNetwork: expected (batch, samples) waveforms '
                       f'or (batch, {self.encoder.num_mel_bins}, frames) '
                       f'features, got shape {tuple(x.shape)}')
    out = self.encoder(x, lengths, train=train)
    if self.freeze:
      out = jax.lax.stop_gradient(out)
    embedding, frames = tb.LayerSumPooling(name='pool')(out)
    return {'embedding': embedding, 'frames': frames,
            'frame_lengths': out.mask.sum(axis=1).astype(jnp.int32)}


def network_from_config(model_cfg,
                        field_prefix: str = 'config.model.') -> WhisperNetwork:
  """`WhisperNetwork` around `from_config(model_cfg)` (the registry's
  build)."""
  encoder = from_config(model_cfg, field_prefix)
  if not encoder.output_hidden_states:
    raise ValueError(f'{field_prefix}output_hidden_states=False: the '
                     'layer-sum pooling needs all hidden states')
  return WhisperNetwork(encoder)


def load_network_params(params, checkpoint: str):
  """A `WhisperNetwork`'s initialised `params` with the checkpoint's weights
  in its encoder."""
  return tb.with_encoder_params(params, load_params(checkpoint), checkpoint)


__all__ = ['Whisper', 'WhisperAttention', 'WhisperEncoderLayer',
           'WhisperNetwork', 'LogMel', 'mel_filters', 'sinusoids',
           'from_config', 'network_from_config', 'load_network_params',
           'from_hf_config', 'hf_weights', 'load_params', 'init_params',
           'read_preprocessor_config']
