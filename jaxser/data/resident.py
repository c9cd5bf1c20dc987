"""Device-resident training data: batches drawn inside the jitted step.

A run whose training sets fit in device memory (all the shared corpora's
feature sets, by far) keeps them on the devices, replicated, as a `Pool`:
every distinct set once, padded to a common length, even when many packed
runs (`jaxser.train.train_runs`) read it. Each step draws its batch by index:

  batch(seed, stream, step)[i] = set[perm_{seed, stream, e}(p mod n)],
      p = step * B + i,  e = p div n,

where n is the set's size and perm_{seed, stream, e} the permutation of
[0, n) that sorts the keys h(seed, stream, e, j), j < n, of an integer hash
h (`layers.fmix32`; stable sort; the padding rows get the largest key and
sort last). The
batch at a step is a function of (seed, stream, step) alone, whatever the
padding, the number of packed runs or devices, and whether the run resumed;
so a packed run draws what it draws alone. The epochs are the same shuffled
passes as the tf.data path's, but with another shuffle: a run on resident
data and one streamed through tf.data (`pipeline.train_batches`) see the
same examples per epoch in different orders.

Streams: the labelled source set is stream 0 of the run's seed, the
unlabelled target set stream 1.
"""

from __future__ import annotations

import dataclasses
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.models.layers import fmix32

# The keys of one example of the source and target streams
# (`pipeline._example`); the target stream has no label.
SOURCE_KEYS = ('features', 'length', 'label', 'domain', 'gender', 'language',
               'speaker')
TARGET_KEYS = ('features', 'length', 'domain', 'gender', 'language',
               'speaker')
ROLES = {'source': SOURCE_KEYS, 'target': TARGET_KEYS}


def permutation(n, n_max: int, seed, stream, epoch) -> jax.Array:
  """(n_max,) int32: a permutation of [0, n) of (seed, stream, epoch)
  followed by n..n_max-1. `n` may be traced; `n_max` is static."""
  j = jnp.arange(n_max, dtype=jnp.uint32)
  k = fmix32(jnp.asarray(seed, jnp.uint32) + jnp.uint32(0x9E3779B9))
  k = fmix32(k ^ jnp.asarray(stream, jnp.uint32))
  k = fmix32(k ^ jnp.asarray(epoch, jnp.uint32))
  keys = fmix32(k ^ fmix32(j))
  keys = jnp.where(j < jnp.asarray(n, jnp.uint32), keys,
                   jnp.uint32(0xFFFFFFFF))
  return jnp.argsort(keys, stable=True).astype(jnp.int32)


def batch_positions(n, n_max: int, min_n: int, batch_size: int, seed,
                    stream, step) -> jax.Array:
  """(batch_size,) int32 rows of a set of `n` examples (padded to `n_max`)
  for batch `step` of stream (seed, stream); see the module docstring.

  `min_n` (static) bounds `n` from below: a batch spans at most
  batch_size // min_n + 2 epochs, each one permutation.
  """
  epochs = batch_size // max(1, min_n) + 2
  n = jnp.asarray(n, jnp.int32)
  pos = jnp.asarray(step, jnp.int32) * batch_size + jnp.arange(
      batch_size, dtype=jnp.int32)
  epoch, offset = pos // n, pos % n
  first = epoch[0]
  perms = jax.vmap(lambda e: permutation(n, n_max, seed, stream, e))(
      first + jnp.arange(epochs, dtype=jnp.int32))
  return perms[epoch - first, offset]


def positions_np(n: int, batch_size: int, seed: int, stream: int,
                 step: int) -> np.ndarray:
  """`batch_positions` on the host (tests, tools)."""
  return np.asarray(jax.jit(batch_positions, static_argnums=(1, 2, 3))(
      n, n, n, batch_size, seed, stream, step))


@dataclasses.dataclass
class Pool:
  """The distinct training sets of one or more runs, on the devices.

  Attributes:
    arrays: role ('source' | 'target') -> key -> (num_sets, n_max, ...)
      replicated device arrays.
    sizes: role -> (num_sets,) int32 numbers of valid rows.
    min_size: the smallest set (a static bound for `batch_positions`).
    nbytes: bytes of the pool on one device.
  """
  arrays: dict
  sizes: dict
  min_size: int
  nbytes: int


def set_key(arrays: dict[str, np.ndarray]) -> str:
  """A content hash of an array set (equal sets are stored once)."""
  h = hashlib.sha1()
  for k in sorted(arrays):
    v = np.ascontiguousarray(arrays[k])
    h.update(k.encode())
    h.update(str((v.shape, v.dtype)).encode())
    h.update(v.tobytes())
  return h.hexdigest()


def stack_sets(sets: list[dict[str, np.ndarray]], keys) -> tuple[dict, np.ndarray]:
  """Host arrays (num_sets, n_max, ...) of `sets` padded with zeros, and
  their sizes."""
  sizes = np.array([len(s['features']) for s in sets], np.int32)
  n_max = int(sizes.max())
  out = {}
  for k in keys:
    first = np.asarray(sets[0][k])
    arr = np.zeros((len(sets), n_max) + first.shape[1:], first.dtype)
    for i, s in enumerate(sets):
      arr[i, :len(s[k])] = s[k]
    out[k] = arr
  return out, sizes


def nbytes(sets: dict[str, list[dict[str, np.ndarray]]]) -> int:
  """Bytes a pool of these sets would take on one device."""
  total = 0
  for role, role_sets in sets.items():
    n_max = max(len(s['features']) for s in role_sets)
    for k in ROLES[role]:
      row = np.asarray(role_sets[0][k])
      total += len(role_sets) * n_max * int(np.prod(row.shape[1:],
                                                    dtype=np.int64)) * (
                                                        row.dtype.itemsize)
  return total


def make_pool(sets: dict[str, list[dict[str, np.ndarray]]],
              sharding: jax.sharding.NamedSharding) -> Pool:
  """The pool of `sets` (role -> distinct array sets), replicated on the
  devices of `sharding` (every process passes the same sets)."""
  arrays, sizes = {}, {}
  for role, role_sets in sets.items():
    host, sizes[role] = stack_sets(role_sets, ROLES[role])
    arrays[role] = {k: _replicated(v, sharding) for k, v in host.items()}
  min_size = int(min(s.min() for s in sizes.values()))
  return Pool(arrays, {r: _replicated(s, sharding) for r, s in sizes.items()},
              min_size, nbytes(sets))


def _replicated(x: np.ndarray, sharding) -> jax.Array:
  # From a callback: works when the devices span several processes.
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def draw(pool_arrays: dict, sizes: dict, min_size: int, n_max: dict,
         batch_size: int, refs: dict, seed, step) -> dict:
  """One run's batch {'source': {...}, 'target': {...}} at `step`.

  Args:
    pool_arrays, sizes: `Pool.arrays`, `Pool.sizes`.
    min_size: `Pool.min_size`.
    n_max: role -> the pool's padded length (static).
    batch_size: examples per role.
    refs: role -> the run's set index in the pool (traced scalar).
    seed: the run's seed (traced scalar).
    step: the run's step within its phase.
  """
  out = {}
  for stream, role in enumerate(('source', 'target')):
    rows = batch_positions(sizes[role][refs[role]], n_max[role], min_size,
                           batch_size, seed, stream, step)
    out[role] = {k: v[refs[role], rows] for k, v in pool_arrays[role].items()}
  return out
