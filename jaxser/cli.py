"""Command-line helpers shared by the entry points: finding config files
(the shipped ones from anywhere) and one-line flag errors with a "did you
mean" suggestion.

Config files are found by `find_config(spec)`, in this order:
  1. `spec` as a path (relative to the current folder, or absolute);
  2. `spec` + '.py' (`--config=configs/emodna`);
  3. the shipped config of that name: `shipped_configs_dir()/<name>.py`,
     where <name> is spec's file name without '.py' (`--config=emodna`,
     or `--config=configs/emodna.py` run outside the clone).
The shipped configs are the package's `jaxser/configs/` (installed from the
repository's configs/ folder), else the clone's configs/ beside the package.
`jaxser.grid --configs_dir=DIR` reads <method>.py from DIR instead.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import Callable, Iterable, Sequence

CONFIG_FLAG = 'config'


def shipped_configs_dir() -> str:
  """The folder of the configs jaxser ships (see the module docstring)."""
  package = os.path.dirname(os.path.abspath(__file__))
  inside = os.path.join(package, 'configs')
  if os.path.isdir(inside):
    return inside
  return os.path.join(os.path.dirname(package), 'configs')


def shipped_configs() -> list[str]:
  """Names of the shipped configs (file names without '.py'), sorted."""
  folder = shipped_configs_dir()
  if not os.path.isdir(folder):
    return []
  return sorted(n[:-3] for n in os.listdir(folder)
                if n.endswith('.py') and not n.startswith('_'))


def suggest(word: str, candidates: Iterable[str]) -> str:
  """'; did you mean X?' for the closest candidate, or ''."""
  best = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
  return f'; did you mean {best[0]}?' if best else ''


def find_config(spec: str, flag: str = '--config') -> str:
  """The config file `spec` names (module docstring); ValueError otherwise,
  naming the flag, what was tried and the closest shipped config."""
  if not spec:
    raise ValueError(f'{flag}: empty; give a config file, e.g. '
                     'configs/emodna.py, or a shipped config name (emodna)')
  spec = os.path.expanduser(spec)
  if os.path.isfile(spec):
    return spec
  if not spec.endswith('.py') and os.path.isfile(spec + '.py'):
    return spec + '.py'
  name = os.path.basename(spec)
  name = name[:-3] if name.endswith('.py') else name
  shipped = os.path.join(shipped_configs_dir(), f'{name}.py')
  if os.path.isfile(shipped):
    return shipped
  names = shipped_configs()
  raise ValueError(
      f'{flag}: no config file {spec} (nor {name}.py among the shipped '
      f'configs in {shipped_configs_dir()}: {", ".join(names) or "none"})'
      f'{suggest(name, names)}')


def flatten(config, prefix: str = '') -> dict:
  """Dotted field -> value of a ConfigDict (or nested dict), every level:
  a sub-dict's own key is listed too ('train' and 'train.steps')."""
  out = {}
  items = config.items() if hasattr(config, 'items') else ()
  for key, value in items:
    path = f'{prefix}{key}'
    out[path] = value
    if hasattr(value, 'items'):
      out.update(flatten(value, path + '.'))
  return out


def check_overrides(args: Sequence[str], fields: Iterable[str],
                    flag: str = CONFIG_FLAG) -> None:
  """ValueError naming the first `--flag.FIELD=...` of `args` whose FIELD
  is not among `fields` (dotted), with the closest field."""
  fields = set(fields)
  prefix = f'--{flag}.'
  for arg in args:
    if arg == '--':
      break
    if not arg.startswith(prefix):
      continue
    field = arg[len(prefix):].split('=', 1)[0]
    if field not in fields:
      raise ValueError(
          f'--{flag}.{field}: no such config field'
          f'{_field_suggestion(field, fields, flag)} (python -m jaxser.info '
          'lists them)')


def _field_suggestion(field: str, fields: set, flag: str) -> str:
  # Compare like with like: siblings first (train.stepz -> train.steps),
  # then every dotted field.
  parent = field.rpartition('.')[0]
  siblings = [f for f in fields if f.rpartition('.')[0] == parent]
  s = suggest(field, siblings) or suggest(field, fields)
  return s.replace('did you mean ', f'did you mean --{flag}.')


def _flag_value(args: Sequence[str], name: str) -> tuple[int, str] | None:
  """(index, value) of `--name=VALUE` or `--name VALUE` in args."""
  for i, arg in enumerate(args):
    if arg == '--':
      return None
    if arg.startswith(f'--{name}='):
      return i, arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(args):
      return i, args[i + 1]
  return None


def resolve_config_arg(argv: Sequence[str], flag: str = CONFIG_FLAG,
                       load: Callable | None = None) -> list[str]:
  """argv with `--flag=SPEC` replaced by the file `find_config` finds, after
  checking every `--flag.FIELD=` override against that config's fields."""
  argv = list(argv)
  found = _flag_value(argv, flag)
  if found is None:
    return argv
  i, spec = found
  path = find_config(spec, f'--{flag}')
  if argv[i].startswith(f'--{flag}='):
    argv[i] = f'--{flag}={path}'
  else:
    argv[i + 1] = path
  if load is None:
    from jaxser import config as config_lib  # pylint: disable=g-import-not-at-top
    load = config_lib.load
  try:
    config = load(path)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'--{flag}: {path} failed to load: '
                     f'{type(e).__name__}: {one_line(str(e))}') from None
  check_overrides(argv[1:], flatten(config), flag)
  return argv


def one_line(message: str) -> str:
  """A library's multi-line message as one line."""
  text = ' '.join(message.replace('\\n', ' ').split())
  # KeyError / AttributeError messages come quoted ("'stepz' ...").
  if len(text) > 1 and text[0] == text[-1] and text[0] in '\'"':
    text = text[1:-1]
  return text


def parse_flags(argv: Sequence[str], config_flag: str | None = CONFIG_FLAG,
                flag_values=None) -> list[str]:
  """absl's flag parsing with one-line errors (`error: ...`, exit 2): the
  config file found from anywhere, unknown config fields with the closest
  one; any other flag error as its message on one line. Pass as
  `app.run(main, flags_parser=parse_flags)`; `flag_values` defaults to
  absl's FLAGS."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flag_values = flags.FLAGS if flag_values is None else flag_values
  try:
    if config_flag is not None:
      argv = resolve_config_arg(argv, config_flag)
    return flag_values(argv)
  except (flags.Error, ValueError, TypeError, AttributeError, KeyError,
          OSError) as e:
    fail(one_line(str(e)))


def fail(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def summary_line(result: dict, workdir: str) -> str:
  """The line a finished run prints: what ran and its headline numbers."""
  where = os.path.join(workdir, 'results.json')
  if result.get('task') == 'tts':
    return (f'{result["method"]} ({result["variant"]}) on {result["corpus"]}:'
            f' {result["num_train"]} utterances, {result["steps"]} steps; '
            f'held-out loss {result["val/loss"]:.4f} (mel L1 '
            f'{result["val/mel_l1"]:.4f}); {where}')
  head = (f'{result["method"]} {result["source"]} -> {result["target"]} '
          f'({result["task"]}, {result["protocol"]})')
  if result.get('target_labelled') is False and 'seeds' in result:
    return (f'{head}: target unlabelled, {len(result["seeds"])} seeds '
            'trained; predictions in ' + ', '.join(result['workdirs']))
  if result.get('target_labelled') is False:
    counts = ', '.join(f'{k} {v}' for k, v in
                       result['predicted_counts'].items())
    return (f'{head}: target unlabelled, {result["num_eval"]} utterances '
            f'predicted ({counts}); {where}')
  if 'seeds' in result:  # --config.seeds: the summary over the seeds.
    m = {k: result[k] for k in ('uar', 'war', 'macro_f1')}
    return (f'{head}, {len(result["seeds"])} seeds: UAR '
            f'{m["uar"]["mean"]:.4f} ± {m["uar"]["std"]:.4f} WAR '
            f'{m["war"]["mean"]:.4f} ± {m["war"]["std"]:.4f} macro-F1 '
            f'{m["macro_f1"]["mean"]:.4f} ± {m["macro_f1"]["std"]:.4f}; '
            f'{os.path.join(workdir, "summary.json")}')
  return (f'{head}: UAR {result["uar"]:.4f} WAR {result["war"]:.4f} macro-F1 '
          f'{result["macro_f1"]:.4f} on {result["num_eval"]} utterances; '
          f'{where}')
