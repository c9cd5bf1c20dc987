"""Reads a local Hugging Face checkpoint directory and converts its weights
into a flax parameter tree. Never downloads anything.

A checkpoint directory is what `save_pretrained` writes (or what one gets by
copying a model's files from the Hub by hand):

  config.json                    the model's sizes (required)
  model.safetensors              the weights, read with safetensors' NumPy API
  model.safetensors.index.json   or this + its shards, for large models
  pytorch_model.bin              the old format: only read where torch can be
                                 imported (torch is never a dependency)

Every problem is a one-line ValueError naming the file or the field: no
config.json, no weights file, a .bin without torch, weights whose shapes
disagree with config.json, and missing or unexpected weight names (all of
them in one message, so one run shows everything that is wrong).

A model describes its weights as a list of `Weight`s (HF name, flax path,
expected HF shape with the config field behind each axis, transform); see
`jaxser.models.ast.hf_weights` and `jaxser.models.bert.hf_weights`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Callable, Iterable, Sequence

import numpy as np

CONFIG = 'config.json'
SAFETENSORS = 'model.safetensors'
SAFETENSORS_INDEX = 'model.safetensors.index.json'
TORCH_BIN = 'pytorch_model.bin'


def read_config(directory: str) -> dict:
  """The checkpoint's config.json as a dict."""
  if not os.path.isdir(directory):
    raise ValueError(f'checkpoint {directory}: no such directory')
  path = os.path.join(directory, CONFIG)
  if not os.path.isfile(path):
    raise ValueError(f'checkpoint {directory}: no {CONFIG} (a Hugging Face '
                     f'checkpoint directory has {CONFIG} + {SAFETENSORS})')
  try:
    with open(path) as f:
      config = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f'{path}: not readable JSON ({e})') from None
  if not isinstance(config, dict):
    raise ValueError(f'{path}: not a JSON object')
  return config


def weights_path(directory: str) -> str:
  """The weights file of a checkpoint: safetensors (single or index) first."""
  for name in (SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  raise ValueError(f'checkpoint {directory}: no weights file (looked for '
                   f'{SAFETENSORS}, {SAFETENSORS_INDEX}, {TORCH_BIN}); put '
                   f'the weights there as {SAFETENSORS} (what '
                   'save_pretrained writes)')


# safetensors' NumPy API has no bfloat16 (numpy has none); bf16 checkpoints
# are common, so those files are read here, through ml_dtypes (a JAX
# dependency). The layout: 8-byte little-endian header length, a JSON header
# {name: {dtype, shape, data_offsets}}, then the raw little-endian data.
_RAW_DTYPES = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I64': '<i8',
               'I32': '<i4', 'I16': '<i2', 'I8': 'i1', 'U8': 'u1',
               'BOOL': '?'}


def _read_safetensors_raw(path: str) -> dict[str, np.ndarray]:
  import ml_dtypes  # pylint: disable=g-import-not-at-top
  dtypes = dict(_RAW_DTYPES, BF16=ml_dtypes.bfloat16)
  with open(path, 'rb') as f:
    n = int.from_bytes(f.read(8), 'little')
    header = json.loads(f.read(n))
  data = np.memmap(path, dtype=np.uint8, mode='r', offset=8 + n)
  out = {}
  for name, info in header.items():
    if name == '__metadata__':
      continue
    if info['dtype'] not in dtypes:
      raise ValueError(f'{path}: weight {name} has dtype {info["dtype"]}, '
                       'which jaxser cannot read')
    begin, end = info['data_offsets']
    out[name] = np.frombuffer(data[begin:end], dtype=dtypes[info['dtype']]
                              ).reshape(info['shape'])
  return out


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  import safetensors.numpy  # pylint: disable=g-import-not-at-top
  try:
    return safetensors.numpy.load_file(path)
  except TypeError:  # A dtype numpy lacks (bfloat16).
    return _read_safetensors_raw(path)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'{path}: not a readable safetensors file '
                     f'({type(e).__name__}: {e})'.replace('\n', ' ')) from None


def _read_torch_bin(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError(
        f'{path}: reading {TORCH_BIN} needs torch, which is not installed; '
        f'convert the checkpoint to {SAFETENSORS} (e.g. where torch and '
        'transformers are installed: AutoModel.from_pretrained(DIR)'
        '.save_pretrained(DIR, safe_serialization=True))') from None
  try:
    state = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'{path}: not a readable PyTorch state dict '
                     f'({type(e).__name__}: {e})'.replace('\n', ' ')) from None
  if not isinstance(state, dict):
    raise ValueError(f'{path}: holds a {type(state).__name__}, not a state '
                     'dict')
  return {k: v.detach().to(torch.float32).numpy()
          if v.is_floating_point() else v.numpy() for k, v in state.items()}


def load_state_dict(directory: str) -> tuple[dict[str, np.ndarray], str]:
  """(name -> array, path of the weights file) of a checkpoint directory."""
  path = weights_path(directory)
  if path.endswith('.bin'):
    return _read_torch_bin(path), path
  if path.endswith('.index.json'):
    try:
      with open(path) as f:
        weight_map = json.load(f)['weight_map']
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise ValueError(f'{path}: no readable weight_map ({e})') from None
    state = {}
    for shard in sorted(set(weight_map.values())):
      shard_path = os.path.join(directory, shard)
      if not os.path.isfile(shard_path):
        raise ValueError(f'{path}: names shard {shard}, which is missing')
      state.update(_read_safetensors(shard_path))
    return state, path
  return _read_safetensors(path), path


@dataclasses.dataclass(frozen=True)
class Weight:
  """One HF weight and where it goes in the flax tree.

  hf_name: the name without the model's prefix (`encoder.layer.0...`).
  flax_path: the keys below `params`.
  shape: the expected HF shape, one (size, config field(s) behind it) per
    axis, so that a disagreement names the field.
  transform: HF array -> flax array (e.g. transpose a Linear weight).
  """
  hf_name: str
  flax_path: tuple[str, ...]
  shape: tuple[tuple[int, str], ...]
  transform: Callable[[np.ndarray], np.ndarray] = lambda a: a


def linear(hf_prefix: str, flax_path: tuple[str, ...], n_in: tuple[int, str],
           n_out: tuple[int, str], bias: bool = True) -> list[Weight]:
  """A torch Linear (weight (out, in)) -> flax Dense (kernel (in, out))."""
  out = [Weight(f'{hf_prefix}.weight', flax_path + ('kernel',),
                (n_out, n_in), lambda a: a.T)]
  if bias:
    out.append(Weight(f'{hf_prefix}.bias', flax_path + ('bias',), (n_out,)))
  return out


def layer_norm(hf_prefix: str, flax_path: tuple[str, ...],
               n: tuple[int, str]) -> list[Weight]:
  return [Weight(f'{hf_prefix}.weight', flax_path + ('scale',), (n,)),
          Weight(f'{hf_prefix}.bias', flax_path + ('bias',), (n,))]


def _plural(n: int, word: str) -> str:
  return f'{n} {word}{"" if n == 1 else "s"}'


def convert(state_dict: dict[str, np.ndarray], weights: Sequence[Weight], *,
            source: str, config_source: str, prefixes: Iterable[str] = (),
            renames: Iterable[tuple[str, str]] = (),
            ignore: Iterable[str] = ()) -> dict:
  """HF state dict -> nested flax params dict (float32 numpy arrays).

  Names are normalised first: each regex in `renames` is applied in turn (HF
  5's in-memory names, old checkpoints' LayerNorm gamma/beta), then one of
  `prefixes` is stripped (the task models' `bert.`, ...). Names matching a
  regex in `ignore` (task heads, pooler, buffers) are dropped. Then one error
  lists every missing and every unexpected weight, and one every weight
  whose shape disagrees with the config. `source` names the weights file,
  `config_source` the config.json.
  """
  renames, ignore = list(renames), [re.compile(p) for p in ignore]
  prefixes = tuple(prefixes)
  found, duplicates = {}, []
  for name, array in state_dict.items():
    new = name
    for pattern, replacement in renames:
      new = re.sub(pattern, replacement, new)
    for prefix in prefixes:
      if new.startswith(prefix):
        new = new[len(prefix):]
        break
    if any(p.search(new) for p in ignore):
      continue
    if new in found:  # e.g. both `bert.x` and `x`: which one is meant?
      duplicates.append(f'{name} [again, as {found[new][0]}]')
      continue
    found[new] = (name, array)
  expected = {w.hf_name: w for w in weights}
  missing = [n for n in expected if n not in found]
  unexpected = [found[n][0] for n in found if n not in expected] + duplicates
  if missing or unexpected:
    parts = []
    if missing:
      parts.append(f'{_plural(len(missing), "missing weight")} '
                   f'({", ".join(missing)})')
    if unexpected:
      parts.append(f'{_plural(len(unexpected), "unexpected weight")} '
                   f'({", ".join(sorted(unexpected))})')
    raise ValueError(f'{source}: {"; ".join(parts)}; is this a checkpoint of '
                     f'the model {config_source} describes?')
  bad = []
  for w in weights:
    got = tuple(found[w.hf_name][1].shape)
    want = tuple(size for size, _ in w.shape)
    if got != want:
      if len(got) != len(want):
        why = f'{len(want)} axes'
      else:
        why = ', '.join(f'{field}={size}' for (size, field), g
                        in zip(w.shape, got) if g != size)
      bad.append(f'{w.hf_name} is {got}, config gives {want} ({why})')
  if bad:
    shown = '; '.join(bad[:4])
    more = f'; and {len(bad) - 4} more' if len(bad) > 4 else ''
    raise ValueError(f'{source}: {_plural(len(bad), "weight")} disagree with '
                     f'{config_source}: {shown}{more}')
  params: dict = {}
  for w in weights:
    _, array = found[w.hf_name]
    node = params
    for key in w.flax_path[:-1]:
      node = node.setdefault(key, {})
    node[w.flax_path[-1]] = np.asarray(
        w.transform(np.asarray(array, np.float32)), np.float32)
  return params


def check_tree(params: dict, shapes, source: str) -> None:
  """Raises naming every path where `params` and the module's parameter
  `shapes` (from `jax.eval_shape(module.init, ...)`) differ; a mismatch here
  is a bug in a model's `hf_weights`, not in the checkpoint."""
  import jax  # pylint: disable=g-import-not-at-top
  got = {jax.tree_util.keystr(p): np.shape(a) for p, a
         in jax.tree_util.tree_leaves_with_path(params)}
  want = {jax.tree_util.keystr(p): tuple(a.shape) for p, a
          in jax.tree_util.tree_leaves_with_path(shapes)}
  problems = [f'{k}: {got.get(k)} vs module {want.get(k)}'
              for k in sorted(set(got) | set(want))
              if got.get(k) != want.get(k)]
  if problems:
    raise ValueError(f'{source}: converted parameters do not fit the module: '
                     + '; '.join(problems))


def cfg_get(model_cfg, field: str):
  """model_cfg.field, or None where the ConfigDict (or dict) lacks it."""
  if model_cfg is None:
    return None
  if isinstance(model_cfg, dict):
    return model_cfg.get(field)
  return getattr(model_cfg, field, None) if field in model_cfg else None


def _check_kind(value, default, name: str) -> None:
  """A value must be of its default's kind (bool, int or number)."""
  if isinstance(default, bool):
    ok = isinstance(value, bool)
  elif isinstance(default, int):
    ok = isinstance(value, int) and not isinstance(value, bool)
  elif isinstance(default, float):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  else:
    ok = True
  if not ok:
    raise ValueError(f'{name}={value!r}: expected {type(default).__name__}')


def resolve_sizes(model_cfg, hf_config: dict | None, fields: Sequence[
    tuple[str, str, object]], config_source: str,
                  prefix: str = 'config.model.') -> dict:
  """The model's sizes from jaxser's `config.model` and a checkpoint.

  fields: (jaxser field, HF config key, default) triples. Without a
  checkpoint (`hf_config` None) a size is `config.model.<field>` where set
  (not None), else the default. With one, it is the checkpoint's, and an
  explicitly set `config.model.<field>` that disagrees is an error naming it
  (`prefix` + field: the registry's options block, `config.model.ast.`).
  """
  out = {}
  for field, key, default in fields:
    given = cfg_get(model_cfg, field)
    if given is not None:
      _check_kind(given, default, f'{prefix}{field}')
    if hf_config is None:
      out[field] = default if given is None else given
      continue
    value = hf_config.get(key, default)
    _check_kind(value, default, f'{config_source}: {key}')
    if given is not None and given != value:
      raise ValueError(
          f'{prefix}{field}={given!r} disagrees with the checkpoint: '
          f'{config_source} has {key}={value!r} (leave {prefix}{field} '
          'unset to take the checkpoint\'s)')
    out[field] = value
  return out


def check_model_type(hf_config: dict, expected: str, config_source: str):
  got = hf_config.get('model_type')
  if got != expected:
    raise ValueError(f'{config_source}: model_type={got!r}, expected '
                     f'{expected!r}')


def load_params(checkpoint: str, model, *, from_hf_config, size_fields,
                weights, example, prefixes=(), renames=(), ignore=(),
                transform=None) -> dict:
  """A checkpoint's weights as the flax `params` of `model` (float32 numpy):
  the one loader of every ported model (ast, bert, whisper, wav2vec2...).

  The checkpoint's own sizes (`from_hf_config` of its config.json) give the
  reference model; a `model` of other sizes is an error naming the field.
  `weights(reference)` maps HF names to flax paths (`convert`, which names
  every missing or unexpected weight; `prefixes`, `renames` and `ignore`
  as there; `transform` rewrites the state dict first). `example(reference)`
  is an input ShapeDtypeStruct: the converted tree must have the shapes of
  `reference.init` on it.
  """
  import jax  # pylint: disable=g-import-not-at-top
  source = os.path.join(checkpoint, CONFIG)
  reference = from_hf_config(read_config(checkpoint), source)
  if model is not None:
    for field, key, _ in size_fields:
      if getattr(model, field) != getattr(reference, field):
        raise ValueError(
            f'{type(model).__name__}.{field}={getattr(model, field)!r} '
            f'disagrees with {source}: {key}={getattr(reference, field)!r}')
  state, path = load_state_dict(checkpoint)
  if transform is not None:
    state = transform(state)
  params = convert(state, weights(reference), source=path,
                   config_source=source, prefixes=prefixes, renames=renames,
                   ignore=ignore)
  shapes = jax.eval_shape(reference.init, jax.random.key(0),
                          example(reference))
  check_tree(params, shapes['params'], path)
  return params
