"""What a multi-phase, multi-optimiser method declares to the train loop.

A method that needs more than one objective minimised by one optimiser (the
GAN family of CAEmoCyGAN: generators, discriminators, attention and
classifiers with their own learning rates, trained in phases) declares:

  * parameter groups (`Group`): names of top-level entries of `params` (and
    `batch_stats`), each group with its own optax optimiser. The train state
    holds one optimiser state per group (a dict group -> state): a group that
    a phase does not train keeps its parameters *and* its moments untouched,
    which `optax.multi_transform` with zero gradients would not guarantee
    (Adam's moments keep moving the parameters).
  * phases (`Phase`), in order: each with its length (steps or epochs of its
    data), the groups it trains, its pure step function (jitted by the loop
    with the usual shardings; it may make several updates, e.g.
    discriminators then generators, each with its own loss and gradient),
    the array streams it draws batches from, what it produces for the next
    phases (generated data) and an optional validation-based early stopping
    (`Selection`).

`apply_group_updates` is the one way a step function updates a group.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Group:
  """A parameter group: top-level `params` entries sharing one optimiser."""
  name: str
  components: tuple[str, ...]
  optimizer: optax.GradientTransformation


@dataclasses.dataclass(frozen=True)
class Selection:
  """Validation-based early stopping within a phase.

  Attributes:
    arrays: name of the run's array set used for selection (it must never
      hold target labels: e.g. a held-out part of the generated samples or of
      the source); evaluated through the one evaluation path
      (`jaxser.train.evaluate`) on its 'label' key.
    every: evaluate every this many steps of the phase (and at its end).
    patience: stop the phase after this many evaluations without
      improvement; 0 never stops early (the best state is still restored).
    metric: 'uar', 'war' or 'macro_f1' (higher is better).
    groups: the groups whose parameters and batch statistics are kept at the
      best evaluation and restored when the phase ends.
    plateau: optional `optax.contrib.reduce_on_plateau(...)`, fed the
      selection error (1 - metric) at every evaluation; its state is kept
      with the selection's and its `scale` multiplies the phase's updates
      (the phase's step function applies it: `plateau_scale`).
  """
  arrays: str
  every: int
  patience: int
  groups: tuple[str, ...]
  metric: str = 'uar'
  plateau: Any = None


@dataclasses.dataclass(frozen=True)
class Phase:
  """One phase of a run.

  Attributes:
    name: shown in the progress bar, metrics ('<name>/<metric>') and
      results.json.
    step: (state, batch) -> (state, metrics): pure, jitted by the loop with
      the state replicated and the batch sharded on 'data'.
    groups: the groups it trains (reported; the step function updates them).
    steps: its length in optimiser steps; or
    epochs: its length in passes over `epoch_arrays` (ceil of
      epochs * size / batch_size steps), when steps is 0.
    streams: batch key -> name of an array set of the run; each step draws
      `batch_size` examples from each (`jaxser.data.pipeline.array_batches`).
      Empty: the default source/target stream of single-phase methods.
    epoch_arrays: the array set whose size defines an epoch (default: the
      first stream's).
    epoch_size: or that size itself, for a set an earlier phase produces
      (phase lengths are fixed when the run starts).
    batch_size: per stream (default config.train.batch_size).
    produce: optional (state, arrays) -> dict of new array sets, run when
      the phase ends (and again, deterministically, when a run resumes past
      it: it may only read groups that no later phase trains).
    selection: optional early stopping.
  """
  name: str
  step: Callable
  groups: tuple[str, ...] = ()
  steps: int = 0
  epochs: float = 0.0
  streams: dict[str, str] = dataclasses.field(default_factory=dict)
  epoch_arrays: str = ''
  epoch_size: int = 0
  batch_size: int = 0
  produce: Callable | None = None
  selection: Selection | None = None


def apply_group_updates(state, groups: dict[str, Group], name: str,
                        grads: PyTree):
  """`state` with group `name` updated by `grads` ({component: grads}).

  Only that group's parameters and optimiser state change.
  """
  group = groups[name]
  params = {c: state.params[c] for c in group.components}
  updates, opt = group.optimizer.update(grads, state.opt_state[name], params)
  params = optax.apply_updates(params, updates)
  return state.replace(params={**state.params, **params},
                       opt_state={**state.opt_state, name: opt})


def init_opt_state(groups: dict[str, Group], params: PyTree) -> dict:
  return {name: g.optimizer.init({c: params[c] for c in g.components})
          for name, g in groups.items()}


def check_groups(groups: dict[str, Group], params: PyTree) -> None:
  """Every params entry is in exactly one group."""
  seen = {}
  for name, g in groups.items():
    for c in g.components:
      if c in seen:
        raise ValueError(f'parameter component {c!r} is in groups '
                         f'{seen[c]!r} and {name!r}')
      seen[c] = name
  missing = sorted(set(params) - set(seen))
  unknown = sorted(set(seen) - set(params))
  if missing or unknown:
    raise ValueError(f'parameter groups: components without a group '
                     f'{missing}, groups naming unknown components {unknown}')


def init_selection(phases, groups: dict[str, Group], params: PyTree,
                   batch_stats: PyTree) -> dict:
  """The early-stopping state of every phase with a `Selection`: the best
  parameters and batch statistics of its groups, the best metric, the step
  it was reached at and the evaluations since (all checkpointed)."""
  out = {}
  for p in phases:
    if p.selection is None:
      continue
    comps = components(groups, p.selection.groups, params)
    out[p.name] = {
        'params': {c: params[c] for c in comps},
        'batch_stats': {c: batch_stats[c] for c in comps if c in batch_stats},
        'best': jnp.full((), -jnp.inf, jnp.float32),
        'best_step': jnp.full((), -1, jnp.int32),
        'bad': jnp.zeros((), jnp.int32)}
    if p.selection.plateau is not None:
      out[p.name]['plateau'] = p.selection.plateau.init(
          jnp.zeros((), jnp.float32))
  return out


def plateau_scale(state, phase_name: str):
  """The learning-rate factor of a phase's reduce-on-plateau (1 without)."""
  entry = state.selection.get(phase_name, {}) if state.selection else {}
  if 'plateau' not in entry:
    return jnp.ones((), jnp.float32)
  return entry['plateau'].scale


def components(groups: dict[str, Group] | None, names, params) -> list[str]:
  """The params components of `names` (all of params without groups)."""
  if not groups:
    return list(params)
  return [c for n in names for c in groups[n].components]


def fold_rng(state, phase: int) -> jax.Array:
  """The step's key: a function of (run seed, phase, step in the phase)."""
  return jax.random.fold_in(jax.random.fold_in(state.rng, phase), state.step)
