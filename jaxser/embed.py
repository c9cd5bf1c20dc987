"""Runs a Hugging Face AST, BERT, Whisper, wav2vec 2.0, HuBERT or WavLM
checkpoint on an array of model inputs and writes all its hidden states:
how a user checks a conversion against transformers, and how others reuse
the encoders.

  python -m jaxser.embed --checkpoint=DIR --inputs=X.npy --out=Y.npz \
      [--attention_mask=M.npy] [--token_type_ids=T.npy] [--batch_size=8] \
      [--dtype=float32]

DIR is a checkpoint directory in the Hugging Face layout (config.json +
model.safetensors; see jaxser/models/hf_checkpoint.py); its config.json's
`model_type` picks the model: `audio-spectrogram-transformer`, `bert`,
`whisper`, `wav2vec2`, `hubert` or `wavlm`.
X.npy holds the inputs exactly as the Hugging Face model takes them:

  AST   input_values (batch, frames, num_mel_bins) float: the normalised
        Kaldi fbank of ASTFeatureExtractor (= jaxser's `fbank128`)
  BERT  input_ids (batch, tokens) integers; --attention_mask (batch, tokens)
        of 0/1 (default all 1), --token_type_ids (default all 0)
  Whisper  input_features (batch, num_mel_bins, 3000) float: the log-mel of
        WhisperFeatureExtractor (80 bins, 128 for large-v3), exactly
        2 x max_source_positions frames as HF's encoder requires; no
        --attention_mask (HF ignores it) -> hidden states of 1500 frames,
        the last one after the final layer norm as in HF
  wav2vec2 / HuBERT / WavLM  input_values (batch, samples) float: 16 kHz
        waveforms as HF's model takes them (normalised by
        Wav2Vec2FeatureExtractor where the checkpoint's
        preprocessor_config.json says do_normalize: jaxser.embed does not
        normalise); --attention_mask (batch, samples) of 0/1 marks the valid
        samples (HF's attention_mask; default: none, nothing masked) ->
        hidden states per conv frame (20 ms), in the order of transformers
        5's output_hidden_states (for do_stable_layer_norm models the last
        one is before the final layer norm, which last_hidden_state has)

(For AST, --attention_mask is HF's optional key mask over the model's
tokens, (batch, patches + 2).) Y.npz (written atomically) holds
`hidden_states` (layers + 1, batch, tokens, hidden), the layout and order of
HF's `output_hidden_states` (embedding output, then each layer), and
`last_hidden_state` (batch, tokens, hidden), both float32. Nothing is
downloaded. Bad inputs print one line naming the file and exit with status 2.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from absl import app
from absl import flags
import numpy as np

from jaxser import io as io_lib
from jaxser import runtime

AST_TYPE = 'audio-spectrogram-transformer'
BERT_TYPE = 'bert'
WHISPER_TYPE = 'whisper'
SSL_TYPES = ('wav2vec2', 'hubert', 'wavlm')


def _load_array(path: str, flag: str) -> np.ndarray:
  if not os.path.isfile(path):
    raise ValueError(f'--{flag}={path}: no such file')
  try:
    array = np.load(path, allow_pickle=False)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'--{flag}={path}: not a readable .npy array '
                     f'({type(e).__name__}: {e})'.replace('\n', ' ')
                     ) from None
  if not isinstance(array, np.ndarray):
    raise ValueError(f'--{flag}={path}: holds several arrays (an .npz); '
                     'give one .npy array')
  return array


def _check_real(array: np.ndarray, name: str):
  """Finite real numbers (audio inputs)."""
  if not (np.issubdtype(array.dtype, np.floating)
          or np.issubdtype(array.dtype, np.integer)):
    raise ValueError(f'{name}: must be real numbers, got {array.dtype}')
  if not np.isfinite(array).all():
    raise ValueError(f'{name}: holds NaN or infinite values')


def _check_ids(array: np.ndarray, name: str, upper: int, what: str):
  """Integer array with 0 <= values < upper."""
  if not np.issubdtype(array.dtype, np.integer):
    raise ValueError(f'{name}: must be integers, got {array.dtype}')
  if array.size and (array.min() < 0 or array.max() >= upper):
    raise ValueError(f'{name}: values must lie in [0, {upper}) ({what}), '
                     f'got {array.min()}..{array.max()}')


def _check_mask(mask: Optional[np.ndarray], shape, name: str):
  if mask is None:
    return None
  if tuple(mask.shape) != tuple(shape):
    raise ValueError(f'{name}: shape {tuple(mask.shape)}, expected '
                     f'{tuple(shape)} (batch, tokens)')
  if not (np.issubdtype(mask.dtype, np.number) or mask.dtype == bool):
    raise ValueError(f'{name}: must be 0/1 numbers, got {mask.dtype}')
  if not np.isin(mask, (0, 1)).all():
    raise ValueError(f'{name}: values must be 0 or 1')
  return mask.astype(np.float32)


def embed(checkpoint: str, inputs: np.ndarray,
          attention_mask: Optional[np.ndarray] = None,
          token_type_ids: Optional[np.ndarray] = None, batch_size: int = 8,
          dtype: str = 'float32',
          names: tuple[str, str, str] = ('inputs', 'attention_mask',
                                         'token_type_ids')) -> dict:
  """{'hidden_states', 'last_hidden_state'} (float32) of the checkpoint on
  `inputs`; `names` are what errors call the three arrays."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jaxser.models import ast  # pylint: disable=g-import-not-at-top
  from jaxser.models import bert  # pylint: disable=g-import-not-at-top
  from jaxser.models import hf_checkpoint as hf  # pylint: disable=g-import-not-at-top
  from jaxser.models import transformer_blocks as tb  # pylint: disable=g-import-not-at-top
  from jaxser.models import wav2vec2  # pylint: disable=g-import-not-at-top
  from jaxser.models import whisper  # pylint: disable=g-import-not-at-top

  if batch_size < 1:
    raise ValueError(f'--batch_size: must be at least 1, got {batch_size}')
  compute = tb.compute_dtype(dtype, '--dtype')
  source = os.path.join(checkpoint, hf.CONFIG)
  hf_config = hf.read_config(checkpoint)
  model_type = hf_config.get('model_type')
  n_in, n_mask, n_types = names
  inputs = np.asarray(inputs)
  if inputs.ndim == 0 or inputs.shape[0] == 0:
    raise ValueError(f'{n_in}: empty (shape {inputs.shape})')
  if model_type == AST_TYPE:
    model = ast.from_hf_config(hf_config, source, output_hidden_states=True,
                               dtype=compute)
    model.check_input(inputs.shape, n_in)
    _check_real(inputs, n_in)
    if token_type_ids is not None:
      raise ValueError(f'{n_types}: only BERT takes token types')
    tokens = model.num_tokens(inputs.shape[1])
    mask = _check_mask(attention_mask, (inputs.shape[0], tokens), n_mask)
    inputs = inputs.astype(np.float32)
    params = ast.load_params(checkpoint)
    apply = lambda p, x, m, t: model.apply({'params': p}, x, None, m)
  elif model_type == BERT_TYPE:
    model = bert.from_hf_config(hf_config, source, output_hidden_states=True,
                                dtype=compute)
    model.check_input(inputs.shape, n_in)
    _check_ids(inputs, n_in, model.vocab_size, f'vocab_size of {source}')
    mask = _check_mask(attention_mask, inputs.shape, n_mask)
    if token_type_ids is not None:
      if tuple(token_type_ids.shape) != inputs.shape:
        raise ValueError(f'{n_types}: shape {token_type_ids.shape}, '
                         f'expected {inputs.shape} (batch, tokens)')
      _check_ids(token_type_ids, n_types, model.type_vocab_size,
                 f'type_vocab_size of {source}')
      token_type_ids = token_type_ids.astype(np.int32)
    inputs = inputs.astype(np.int32)
    params = bert.load_params(checkpoint)
    apply = lambda p, x, m, t: model.apply({'params': p}, x, m, t)
  elif model_type == WHISPER_TYPE:
    model = whisper.from_hf_config(hf_config, source,
                                   output_hidden_states=True, dtype=compute)
    model.check_input(inputs.shape, n_in)
    _check_real(inputs, n_in)
    if attention_mask is not None:
      raise ValueError(f"{n_mask}: Whisper's encoder takes no attention mask "
                       '(Hugging Face ignores it); leave it out')
    if token_type_ids is not None:
      raise ValueError(f'{n_types}: only BERT takes token types')
    mask, inputs = None, inputs.astype(np.float32)
    params = whisper.load_params(checkpoint)
    apply = lambda p, x, m, t: model.apply({'params': p}, x)
  elif model_type in SSL_TYPES:
    family = wav2vec2.family(model_type)
    model = family.from_hf_config(hf_config, source,
                                  output_hidden_states=True, dtype=compute)
    model.check_input(inputs.shape, n_in)
    _check_real(inputs, n_in)
    if token_type_ids is not None:
      raise ValueError(f'{n_types}: only BERT takes token types')
    mask = _check_mask(attention_mask, inputs.shape, n_mask)
    # As HF, the sample mask counts each row's valid samples.
    mask = None if mask is None else mask.sum(axis=1).astype(np.int32)
    inputs = inputs.astype(np.float32)
    params = family.load_params(checkpoint)
    apply = lambda p, x, m, t: model.apply({'params': p}, x, m)
  else:
    raise ValueError(f'{source}: model_type={model_type!r}; jaxser.embed '
                     f'runs {AST_TYPE!r}, {BERT_TYPE!r}, {WHISPER_TYPE!r}, '
                     + ', '.join(repr(t) for t in SSL_TYPES))

  @jax.jit
  def run(p, x, m, t):
    out = apply(p, x, m, t)
    return (out.hidden_states.astype(jnp.float32),
            out.last_hidden_state.astype(jnp.float32))

  params = jax.tree_util.tree_map(jnp.asarray, params)
  n = inputs.shape[0]
  size = min(batch_size, n)
  hidden, last = [], []
  for start in range(0, n, size):
    # Every batch has `size` rows (the last one padded by repeating its first
    # row), so one program is compiled.
    rows = np.arange(start, start + size)
    rows = np.where(rows < n, rows, start)
    pick = lambda a: None if a is None else jnp.asarray(a[rows])
    h, l = run(params, pick(inputs), pick(mask), pick(token_type_ids))
    keep = min(size, n - start)
    hidden.append(np.asarray(h)[:, :keep])
    last.append(np.asarray(l)[:keep])
  return {'hidden_states': np.concatenate(hidden, axis=1),
          'last_hidden_state': np.concatenate(last, axis=0)}


def embed_files(checkpoint: str, inputs: str, out: str,
                attention_mask: Optional[str] = None,
                token_type_ids: Optional[str] = None, batch_size: int = 8,
                dtype: str = 'float32') -> dict:
  """The command: reads the .npy files, runs `embed`, writes `out`; returns
  the output shapes."""
  if not out.endswith('.npz'):
    raise ValueError(f'--out={out}: must end in .npz')
  x = _load_array(inputs, 'inputs')
  m = (None if attention_mask is None
       else _load_array(attention_mask, 'attention_mask'))
  t = (None if token_type_ids is None
       else _load_array(token_type_ids, 'token_type_ids'))
  result = embed(checkpoint, x, m, t, batch_size, dtype,
                 names=(f'--inputs={inputs}',
                        f'--attention_mask={attention_mask}',
                        f'--token_type_ids={token_type_ids}'))
  io_lib.write_npz(out, **result)
  return {k: v.shape for k, v in result.items()}


def _define_flags(flag_values: flags.FlagValues = flags.FLAGS):
  """Defined only when it runs as a program, so that `embed` imports beside
  the other commands (tests define them on their own FlagValues)."""
  fv = dict(flag_values=flag_values)
  flags.DEFINE_string('checkpoint', None, 'Hugging Face checkpoint '
                      'directory (config.json + model.safetensors).', **fv)
  flags.DEFINE_string('inputs', None, '.npy of model inputs: AST '
                      'input_values (batch, frames, mel) or BERT input_ids '
                      '(batch, tokens).', **fv)
  flags.DEFINE_string('out', None, 'Output .npz (hidden_states, '
                      'last_hidden_state).', **fv)
  flags.DEFINE_string('attention_mask', None, 'Optional .npy of 0/1, '
                      '(batch, tokens).', **fv)
  flags.DEFINE_string('token_type_ids', None, 'Optional .npy (BERT only).',
                      **fv)
  flags.DEFINE_integer('batch_size', 8, 'Inputs per forward pass.', **fv)
  flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                    'Compute dtype (parameters stay float32).', **fv)
  flags.mark_flags_as_required(['checkpoint', 'inputs', 'out'], **fv)


def main(argv):
  del argv
  f = flags.FLAGS
  runtime.setup_process()
  try:
    shapes = embed_files(f.checkpoint, f.inputs, f.out, f.attention_mask,
                         f.token_type_ids, f.batch_size, f.dtype)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(f'{f.out}: ' + ', '.join(f'{k} {tuple(v)}' for k, v in
                                  shapes.items()))


if __name__ == '__main__':
  _define_flags()
  app.run(main)
