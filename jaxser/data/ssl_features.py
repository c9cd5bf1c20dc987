"""The `ssl` feature set: a pretrained self-supervised speech encoder's hidden
states, extracted once into the feature cache (EmoBox-style), so that any
method trains a small head on them (the `ssl_head` network), fast even on a
CPU:

  python -m jaxser.main --config=configs/dann.py --config.data.features=ssl \
      --config.data.feature_params.ssl.checkpoint=/ckpt/wavlm-base-plus \
      --config.model.name=ssl_head

Parameters (`config.data.feature_params.ssl.*`):
  checkpoint  a local Hugging Face checkpoint directory (config.json +
              model.safetensors); required. Its config.json's `model_type`
              picks the encoder (`ENCODERS`).
  layers      'all', or comma-separated hidden-state indices (0 = the
              embedding output, L = the last layer; 'all' = 0..L).
  pool        'mean': per utterance (layers, hidden), the mean of each
              chosen layer over the utterance's valid frames; 'none': frame
              features (frames, layers, hidden), zero-padded or centre-
              cropped to `config.data.frames` with the true frame count as
              the length (20 ms frames for every encoder here).
  batch_size  utterances per extraction batch (not part of the cache key).
  dtype       the compute dtype, 'float32' or 'bfloat16' (stored float32).

Extraction runs in the main process, on the default device: waveforms are
read by a thread pool, sorted by length within each chunk of the cache,
padded to a bucket (a multiple of 1 s; Whisper: its window) and to a full
batch, so that few shapes compile, and run through the jitted encoder.
Padding never reaches a statistic: the mean runs over the encoder's own
valid-frame mask (wav2vec 2.0 / HuBERT / WavLM mask padded frames out of
their attention and norms, Whisper zeroes the samples past each clip's
length, so each utterance gets what it gets alone). Whisper sees its window
(30 s for the openai checkpoints): longer clips are cut to it, with a
warning.

The cache key holds the checkpoint's identity (`checkpoint_identity`: a
hash of config.json, preprocessor_config.json and the weights files: their
sizes and their first and last MiB, or all of a small file), the layer,
pool and dtype choices and `config.data.frames` (pool 'none'), so a changed
checkpoint or choice rebuilds; the batch size is left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import json
import logging
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.models import hf_checkpoint as hf

FIELD = 'config.data.feature_params.ssl'
SAMPLE_RATE = 16_000
BUCKET = SAMPLE_RATE  # Batches are padded to a multiple of 1 s.
POOLS = ('mean', 'none')
DTYPES = ('float32', 'bfloat16')
PREPROCESSOR_CONFIG = 'preprocessor_config.json'
# Bumped when the extraction's output changes for the same checkpoint.
VERSION = 'ssl-v1'
_MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Encoder:
  """A checkpoint's encoder as the extractor runs it.

  model: the flax encoder (hidden states on). load: () -> its parameters.
  forward: (params, waveforms (B, S) float32, lengths (B,) valid samples)
    -> (hidden states (L + 1, B, T, H), valid-frame mask (B, T)); jit-able.
  window: samples every batch is padded / cut to (Whisper), or None (a
    bucket of the batch's longest clip). min_samples: the shortest input.
  num_states: L + 1 hidden states; hidden: H.
  """
  model_type: str
  model: Any
  load: Callable[[], Any]
  forward: Callable[..., Any]
  window: int | None
  min_samples: int
  num_states: int
  hidden: int


def _whisper(lib, _, checkpoint: str, dtype: str) -> Encoder:
  """Whisper (jaxser.models.whisper): its log-mel front end on the device,
  padded to the 30 s window as the extractor pads (`pad_to_30s`)."""
  model = lib.from_config(dict(checkpoint=checkpoint, dtype=dtype,
                               output_hidden_states=True, pad_to_30s=True),
                          f'{FIELD}.')
  log_mel = model.log_mel()

  def forward(params, waveforms, lengths):
    x, mel_lengths = log_mel(waveforms, lengths)
    out = model.apply({'params': params}, x, mel_lengths)
    return out.hidden_states, out.mask
  return Encoder('whisper', model, lambda: lib.load_params(checkpoint, model),
                 forward, window=model.num_samples, min_samples=1,
                 num_states=model.layers + 1, hidden=model.hidden)


def _wav2vec2_family(lib, family: str, checkpoint: str,
                     dtype: str) -> Encoder:
  """wav2vec 2.0 / HuBERT / WavLM (a `jaxser.models.wav2vec2.Family`): raw
  waveforms, normalised by the encoder where the checkpoint says so."""
  fam = getattr(lib, family)
  model = fam.from_config(dict(checkpoint=checkpoint, dtype=dtype,
                               output_hidden_states=True), f'{FIELD}.')

  def forward(params, waveforms, lengths):
    out = model.apply({'params': params}, waveforms, lengths)
    return out.hidden_states, out.mask
  return Encoder(fam.model_type, model,
                 lambda: fam.load_params(checkpoint, model), forward,
                 window=None, min_samples=int(model.min_samples()),
                 num_states=model.layers + 1, hidden=model.hidden)


# config.json model_type -> (module, attribute passed to the builder,
# builder (module, attribute, checkpoint, dtype) -> Encoder). Modules are
# imported only when a checkpoint of theirs is used.
ENCODERS = {
    'whisper': ('jaxser.models.whisper', None, _whisper),
    'wav2vec2': ('jaxser.models.wav2vec2', 'WAV2VEC2', _wav2vec2_family),
    'hubert': ('jaxser.models.wav2vec2', 'HUBERT', _wav2vec2_family),
    'wavlm': ('jaxser.models.wavlm', 'WAVLM', _wav2vec2_family),
}


def _directory(params) -> str:
  checkpoint = params.get('checkpoint') or ''
  if not str(checkpoint).strip():
    raise ValueError(f'{FIELD}.checkpoint: empty; give a local Hugging Face '
                     'checkpoint directory (config.json + model.safetensors) '
                     f'of a {"/".join(sorted(ENCODERS))} encoder')
  return os.path.expanduser(str(checkpoint))


def _model_type(directory: str) -> str:
  try:
    config = hf.read_config(directory)
  except ValueError as e:
    raise ValueError(f'{FIELD}.checkpoint: {e}') from None
  model_type = config.get('model_type')
  if model_type not in ENCODERS:
    raise ValueError(
        f'{os.path.join(directory, hf.CONFIG)}: model_type={model_type!r} is '
        f'not an encoder the ssl feature set runs; known: '
        f'{", ".join(sorted(ENCODERS))}')
  return model_type


@functools.lru_cache(maxsize=8)
def _encoder(directory: str, dtype: str, signature: tuple) -> Encoder:
  del signature  # Part of the cache key only: a changed file rebuilds.
  model_type = _model_type(directory)
  module, attribute, build = ENCODERS[model_type]
  try:
    lib = importlib.import_module(module)
  except ImportError as e:
    raise ValueError(f'{os.path.join(directory, hf.CONFIG)}: model_type='
                     f'{model_type!r} needs {module}, which cannot be '
                     f'imported ({e})') from None
  return build(lib, attribute, directory, dtype)


def _signature(directory: str) -> tuple:
  out = []
  for name in sorted(os.listdir(directory)):
    st = os.stat(os.path.join(directory, name))
    out.append((name, st.st_size, st.st_mtime_ns))
  return tuple(out)


def encoder(params) -> Encoder:
  """The encoder of `params`' checkpoint (not loaded), checked; one-line
  errors naming the field or file."""
  directory = _directory(params)
  _model_type(directory)
  try:
    hf.weights_path(directory)
  except ValueError as e:
    raise ValueError(f'{FIELD}.checkpoint: {e}') from None
  dtype = str(params.get('dtype', 'float32'))
  if dtype not in DTYPES:
    raise ValueError(f'{FIELD}.dtype: {dtype!r}, expected one of '
                     f'{", ".join(DTYPES)}')
  return _encoder(directory, dtype, _signature(directory))


def parse_layers(layers, num_states: int, source: str = '') -> tuple[int, ...]:
  """Hidden-state indices of `layers` ('all', '0,3,6', an int or a
  sequence), each in [0, num_states); one-line errors naming the field."""
  field = f'{FIELD}.layers'
  if isinstance(layers, str) and layers.strip().lower() == 'all':
    return tuple(range(num_states))
  if isinstance(layers, str):
    items = [s.strip() for s in layers.split(',')]
  elif isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
    items = [layers]
  elif isinstance(layers, (tuple, list)):
    items = list(layers)
  else:
    items = [layers]
  out = []
  for item in items:
    try:
      if isinstance(item, bool) or (isinstance(item, float)
                                    and not item.is_integer()):
        raise ValueError
      index = int(item)
    except (TypeError, ValueError):
      raise ValueError(f"{field}={layers!r}: {item!r} is not a hidden-state "
                       "index; expected 'all' or comma-separated indices "
                       f'(0 = embedding output .. {num_states - 1})'
                       ) from None
    if not 0 <= index < num_states:
      raise ValueError(f'{field}={layers!r}: index {index} out of range; '
                       f'{source or "the checkpoint"} has {num_states} hidden '
                       f'states (0 = embedding output .. {num_states - 1})')
    if index in out:
      raise ValueError(f'{field}={layers!r}: index {index} given twice')
    out.append(index)
  if not out:
    raise ValueError(f"{field}: empty; expected 'all' or comma-separated "
                     'indices')
  return tuple(out)


def check(params) -> None:
  """The set's `check`: every parameter, against the checkpoint."""
  pool = params.get('pool')
  if pool not in POOLS:
    raise ValueError(f'{FIELD}.pool: {pool!r}, expected one of '
                     f'{", ".join(POOLS)}')
  batch = params.get('batch_size')
  if (not isinstance(batch, (int, np.integer)) or isinstance(batch, bool)
      or batch < 1):
    raise ValueError(f'{FIELD}.batch_size: must be a positive int, got '
                     f'{batch!r}')
  enc = encoder(params)
  parse_layers(params.get('layers'), enc.num_states,
               os.path.join(_directory(params), hf.CONFIG))


def _file_digest(h, path: str) -> None:
  """Name, size and content of a file into `h`: all of it when at most
  2 MiB, else its first and last MiB."""
  size = os.path.getsize(path)
  h.update(f'{os.path.basename(path)}\0{size}\0'.encode())
  with open(path, 'rb') as f:
    if size <= 2 * _MIB:
      h.update(f.read())
    else:
      h.update(f.read(_MIB))
      f.seek(size - _MIB)
      h.update(f.read(_MIB))


def checkpoint_identity(checkpoint: str) -> str:
  """A hash of what extraction reads from a checkpoint directory:
  config.json, preprocessor_config.json and the weights (every shard of a
  sharded checkpoint)."""
  directory = os.path.expanduser(str(checkpoint))
  h = hashlib.sha1(VERSION.encode())
  for name in (hf.CONFIG, PREPROCESSOR_CONFIG):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      with open(path, 'rb') as f:
        h.update(name.encode() + b'\0' + f.read() + b'\0')
  weights = hf.weights_path(directory)
  files = [weights]
  if weights.endswith('.index.json'):
    try:
      with open(weights) as f:
        shards = sorted(set(json.load(f)['weight_map'].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
      shards = []
    files += [os.path.join(directory, s) for s in shards
              if os.path.isfile(os.path.join(directory, s))]
  for path in files:
    _file_digest(h, path)
  return h.hexdigest()[:16]


def identity(**params) -> str:
  """The set's `identity` (part of the cache key)."""
  return checkpoint_identity(_directory(params))


class Extractor:
  """Runs the encoder on padded batches (module docstring).

  __call__(waveforms, progress=None) -> one array per waveform: (layers,
  hidden) means (pool 'mean') or the valid frames (frames, layers, hidden)
  (pool 'none'), float32. `progress(utterances, samples)` after each batch.
  """

  def __init__(self, params: dict):
    self.encoder = encoder(params)
    self.layers = parse_layers(params['layers'], self.encoder.num_states)
    self.pool = params['pool']
    self.batch_size = int(params['batch_size'])
    self.params = jax.device_put(self.encoder.load())
    self.truncated = 0
    self._run = jax.jit(self._forward)

  def _forward(self, params, waveforms, lengths):
    states, mask = self.encoder.forward(params, waveforms, lengths)
    states = states[np.asarray(self.layers)].astype(jnp.float32)
    mask = mask.astype(jnp.float32)                       # (B, T)
    valid = mask.sum(axis=1)
    if self.pool == 'mean':
      total = (states * mask[None, :, :, None]).sum(axis=2)  # (K, B, H)
      pooled = total / jnp.maximum(valid, 1.0)[None, :, None]
      return jnp.swapaxes(pooled, 0, 1), valid.astype(jnp.int32)
    return (jnp.transpose(states, (1, 2, 0, 3)),               # (B, T, K, H)
            valid.astype(jnp.int32))

  def batch_samples(self, longest: int) -> int:
    """The padded length of a batch whose longest clip has `longest`
    samples."""
    if self.encoder.window is not None:
      return self.encoder.window
    return max(self.encoder.min_samples, -(-max(longest, 1) // BUCKET)
               * BUCKET)

  def __call__(self, waveforms, progress=None) -> list[np.ndarray]:
    wavs = [np.asarray(w, np.float32).reshape(-1) for w in waveforms]
    window = self.encoder.window
    if window is not None:
      self.truncated += sum(w.size > window for w in wavs)
      wavs = [w[:window] for w in wavs]
    order = np.argsort([w.size for w in wavs], kind='stable')
    out: list[np.ndarray | None] = [None] * len(wavs)
    b = self.batch_size
    for start in range(0, len(order), b):
      rows = order[start:start + b]
      samples = self.batch_samples(max(wavs[i].size for i in rows))
      batch = np.zeros((b, samples), np.float32)
      lengths = np.full((b,), samples, np.int32)  # Filler rows: silence.
      for r, i in enumerate(rows):
        batch[r, :wavs[i].size] = wavs[i]
        lengths[r] = wavs[i].size
      feats, valid = jax.device_get(self._run(self.params, batch, lengths))
      for r, i in enumerate(rows):
        out[i] = (np.asarray(feats[r]) if self.pool == 'mean'
                  else np.asarray(feats[r, :int(valid[r])]))
      if progress is not None:
        progress(len(rows), int(sum(wavs[i].size for i in rows)))
    return out


def _key(params: dict) -> tuple:
  return (tuple(sorted(params.items())), identity(**params))


@functools.lru_cache(maxsize=1)
def _extractor(key: tuple) -> Extractor:
  return Extractor(dict(key[0]))


@contextlib.contextmanager
def batch_extractor(params: dict):
  """The set's `batched`: an `Extractor` with its encoder loaded on the
  device while the context is open (freed after)."""
  extractor = _extractor(_key(params))
  extractor.truncated = 0
  try:
    yield extractor
  finally:
    if extractor.truncated:
      logging.warning(
          'ssl: %d utterance(s) longer than the %s encoder\'s window '
          '(%.1f s) were cut to it', extractor.truncated,
          extractor.encoder.model_type,
          extractor.encoder.window / SAMPLE_RATE)
    _extractor.cache_clear()


def extract(wav: np.ndarray, **params) -> np.ndarray:
  """The set's `fn`: one waveform's features (as `Extractor` gives them).
  The encoder stays loaded for the next call with the same parameters."""
  return _extractor(_key(params))([wav])[0]
