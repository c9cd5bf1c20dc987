"""What jaxser offers, with one line of meaning each: corpora, tasks,
methods, networks, feature sets, shipped configs and config fields.

  python -m jaxser.info [--section=corpora|tasks|methods|networks|features|
                         configs|fields] [--config=configs/emodna.py]

With --config, the fields section lists every field of that config with its
value (what `--config.<field>=...` overrides), under the meaning of its
group. The descriptions come from the registries and docstrings themselves,
so they cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re
import sys

from absl import app
from absl import flags

# Before TensorFlow is imported: it loads openSMILE's native library first.
from jaxser.data import features as features_lib
from jaxser import cli

SECTIONS = ('corpora', 'tasks', 'methods', 'networks', 'features', 'configs',
            'fields')


def first_line(doc: str | None) -> str:
  """The first sentence of a docstring's first paragraph, on one line."""
  if not doc:
    return ''
  para = ' '.join(inspect.cleandoc(doc).split('\n\n')[0].split())
  # A sentence ends at '. ' before a capital, not after an abbreviation.
  for m in re.finditer(r'\.(?=\s+[A-Z(]|$)', para):
    word = para[:m.start()].rsplit(' ', 1)[-1]
    if word.lower() not in _ABBREVIATIONS:
      return para[:m.end()]
  return para


_ABBREVIATIONS = {'al', 'e.g', 'i.e', 'cf', 'vs', 'fig', 'eq', 'sec', 'no',
                  'approx', 'etc'}


def _module_doc(obj) -> str:
  return first_line(sys.modules[obj.__module__].__doc__)


def corpora() -> list[tuple[str, str]]:
  from jaxser.data import corpus as corpus_lib  # pylint: disable=g-import-not-at-top
  corpus_lib.available()  # Registers the loaders.
  out = []
  for name in corpus_lib.available():
    loader = corpus_lib._LOADERS[name]  # pylint: disable=protected-access
    what = first_line(loader.__doc__) or _module_doc(loader)
    if corpus_lib.is_synthetic(name):
      what = f'(synthetic) {what}'
    out.append((name, what))
  return out


def tasks() -> list[tuple[str, str]]:
  from jaxser.data import labels as labels_lib  # pylint: disable=g-import-not-at-top
  return [(t, 'classes: ' + ', '.join(labels_lib.TASK_CLASSES[t]))
          for t in labels_lib.tasks()]


def methods() -> list[tuple[str, str]]:
  from jaxser import methods as methods_lib  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  out = []
  for name in methods_lib.names():
    # The shipped config's docstring says what the method is best; else the
    # class's own docstring, else its module's.
    path = os.path.join(cli.shipped_configs_dir(), f'{name}.py')
    doc = ''
    if os.path.isfile(path):
      with open(path) as f:
        doc = first_line(_docstring(f.read()))
    cls = methods_lib.get(name)
    own = cls.__dict__.get('__doc__')
    if not doc and own and 'module docstring' not in own:
      doc = first_line(own)
    out.append((name, doc or _module_doc(cls)))
  return out


def networks() -> list[tuple[str, str]]:
  from jaxser.models import registry  # pylint: disable=g-import-not-at-top
  return [(n, f'{registry.get(n).description or "-"} [input: '
           f'{registry.get(n).inputs}]') for n in registry.names()]


def feature_sets() -> list[tuple[str, str]]:
  out = []
  for name in features_lib.available():
    fs = features_lib.get(name)
    doc = first_line(fs.fn.__doc__) or fs.fn.__name__
    params = ', '.join(f'{k}={v}' for k, v in fs.defaults.items())
    out.append((name, f'{doc} ({fs.reads}; {params})'))
  return out


def configs() -> list[tuple[str, str]]:
  from jaxser import config as config_lib  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  out = []
  for name in cli.shipped_configs():
    path = os.path.join(cli.shipped_configs_dir(), f'{name}.py')
    with open(path) as f:
      doc = first_line(_docstring(f.read()))
    try:
      method = config_lib.load(path).method
    except Exception:  # pylint: disable=broad-except
      method = '?'
    out.append((name, f'method {method}: {doc}' if doc else
                f'method {method}'))
  return out


def _docstring(source: str) -> str:
  import ast  # pylint: disable=g-import-not-at-top
  try:
    return ast.get_docstring(ast.parse(source)) or ''
  except SyntaxError:
    return ''


def field_docs() -> list[tuple[str, str]]:
  """(field pattern, meaning) from jaxser.config's docstring field list."""
  from jaxser import config as config_lib  # pylint: disable=g-import-not-at-top
  doc = inspect.cleandoc(config_lib.__doc__)
  lines = doc.split('\n')
  start = next(i for i, l in enumerate(lines) if l.startswith('Fields'))
  out = []
  for line in lines[start + 1:]:
    if not line.strip():
      if out:
        break
      continue
    m = re.match(r'  (\S+(?: / \S+)*)\s{2,}(.*)$', line)
    m = m or re.match(r'  (\S+(?: / \S+)*)\s+(\S.*)$', line)
    if m and not line.startswith('   '):
      out.append([m.group(1), m.group(2).strip()])
    elif out:
      out[-1][1] += ' ' + line.strip()
  return [(k, first_line(v)) for k, v in out]


def _pattern(field_doc: str) -> re.Pattern:
  """A docstring field name ('data.paths.<name>', 'train.*', '<method>.*')
  as a regular expression over dotted fields."""
  alternatives = []
  for part in field_doc.split(' / '):
    p = re.escape(part)
    p = p.replace(re.escape('.*'), r'(\..+)?').replace(
        re.escape('*'), '.+')
    p = re.sub(r'<[^>]*>', '[^.]+', p.replace('\\<', '<').replace('\\>', '>'))
    alternatives.append(p)
  return re.compile('(' + '|'.join(alternatives) + ')$')


def describe_field(field: str, docs: list[tuple[str, str]]) -> str:
  """The meaning of a dotted field: its own entry, else its group's."""
  exact = [d for k, d in docs if field in k.split(' / ')]
  if exact:
    return exact[0]
  matches = [(k, d) for k, d in docs if _pattern(k).match(field)]
  # The most specific pattern: the fewest wildcards, then the longest.
  matches.sort(key=lambda kd: (kd[0].count('*') + kd[0].count('<'),
                               -len(kd[0])))
  return matches[0][1] if matches else ''


def config_fields(path: str) -> list[tuple[str, str]]:
  """(field = value, meaning) of every leaf field of the config at `path`."""
  from jaxser import config as config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.load(cli.find_config(path))
  docs = field_docs()
  flat = cli.flatten(config)
  return [(f'{k} = {v!r}', describe_field(k, docs))
          for k, v in flat.items() if not hasattr(v, 'items')]


def section(name: str, config: str | None = None) -> list[tuple[str, str]]:
  if name not in SECTIONS:
    raise ValueError(f'--section: unknown section {name!r}; known: '
                     f'{", ".join(SECTIONS)}{cli.suggest(name, SECTIONS)}')
  if name == 'fields':
    return config_fields(config) if config else field_docs()
  return {'corpora': corpora, 'tasks': tasks, 'methods': methods,
          'networks': networks, 'features': feature_sets,
          'configs': configs}[name]()


def render(rows: list[tuple[str, str]]) -> str:
  width = min(max((len(k) for k, _ in rows), default=0), 34)
  return '\n'.join(f'  {k:<{width}}  {v}'.rstrip() if len(k) <= width
                   else f'  {k}\n  {"":<{width}}  {v}'.rstrip()
                   for k, v in rows)


_TITLES = {
    'corpora': 'Corpora (config.data.source / config.data.target)',
    'tasks': 'Tasks (config.data.task)',
    'methods': 'Methods (config.method; configs/<method>.py)',
    'networks': 'Networks (config.model.name)',
    'features': 'Feature sets (config.data.features; parameters in '
                'config.data.feature_params.<set>)',
    'configs': 'Shipped configs (--config=NAME or a path; jaxser.cli)',
    'fields': 'Config fields (--config.<field>=value)',
}


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}')
  f = flags.FLAGS
  names = [f.section] if f.section else list(SECTIONS)
  try:
    for name in names:
      rows = section(name, f.config)
      title = _TITLES[name]
      if name == 'fields' and f.config:
        title = f'Fields of {cli.find_config(f.config)} (--config.<field>=)'
      print(f'{title}:\n{render(rows)}\n')
  except ValueError as e:
    cli.fail(str(e))


if __name__ == '__main__':
  flags.DEFINE_string('section', None, 'One section: ' + ', '.join(SECTIONS))
  flags.DEFINE_string('config', None, 'List the fields of this config with '
                      'their values (a path or a shipped config name).')
  app.run(main, flags_parser=lambda argv: cli.parse_flags(argv, None))
