"""Writes a training run's inference bundle: everything `jaxser.predict`
needs, without the run's checkpoints or the training corpora.

  python -m jaxser.export --workdir=DIR --out=MODEL_DIR

MODEL_DIR gets config.json (the run's), inference.json (class names, task,
feature set and its parameters, feature shape, data.normalize, checkpoint
step), normalization.npz (the statistics of the run's target corpus, when
the run normalises) and variables.msgpack (the network's params and
batch_stats from the latest checkpoint, flax.serialization msgpack); see
`jaxser.inference`. Then `python -m jaxser.predict --model=MODEL_DIR
FILES...`.

Every run saves DIR/inference/ when it starts (`save_run_assets`); for a run
from before that, the statistics are recomputed from its target corpus if it
is where the run's config says, otherwise the bundle has none and predict
needs --normalize=self. Errors print one line and exit with status 2.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

# Before TensorFlow is imported: it loads openSMILE's native library first.
from jaxser.data import features  # noqa: F401  pylint: disable=unused-import
from jaxser import inference
from jaxser import runtime


def save_run_assets(workdir: str, data, config) -> None:
  """Writes DIR/inference/ of a run: inference.json and, when the run
  normalises, the statistics of its target corpus (normalization.npz).

  Call once the run's data is loaded (`pipeline.load_data`), on process 0.
  """
  from jaxser.data.features import FeatureConfig  # pylint: disable=g-import-not-at-top
  feature = FeatureConfig.from_data_config(config.data)
  cached = data.source_train.parts[0].cached
  info = inference.make_info(
      config, data.classes, feature, cached.feature_shape,
      getattr(cached, 'feature_dtype', feature.dtype))
  inference.write_assets(os.path.join(workdir, inference.INFERENCE_DIR),
                         info, inference.target_stats(data, config))


def export(workdir: str, out: str) -> dict:
  """Writes the bundle of the run in `workdir` into `out`; a summary."""
  from jaxser import train  # pylint: disable=g-import-not-at-top
  if os.path.abspath(out) == os.path.abspath(workdir):
    raise ValueError('--out: must differ from --workdir')
  model = inference.open_run(workdir, train.make_mesh())
  inference.ensure_stats(model)
  if model.stats is None and model.info['normalize'] != 'none':
    inference.note(
        f'note: {workdir} saved no normalisation statistics and its target '
        f'corpus is not reachable; the bundle has none, so predict with it '
        'needs --normalize=self')
  files = inference.export(model, out)
  return dict(out=os.path.abspath(out), step=model.step, files=files,
              method=model.info['method'], classes=list(model.classes))


def _define_flags():
  flags.DEFINE_string('workdir', None, 'A training run (jaxser.main).')
  flags.DEFINE_string('out', None, 'Folder of the bundle.')
  flags.mark_flags_as_required(['workdir', 'out'])


def main(argv):
  if len(argv) > 1:
    print(f'error: unexpected arguments {argv[1:]}', file=sys.stderr)
    sys.exit(2)
  runtime.setup_process()
  f = flags.FLAGS
  try:
    s = export(f.workdir, f.out)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(f'{s["method"]} step {s["step"]} ({", ".join(s["classes"])}) '
        f'exported to {s["out"]}: {", ".join(s["files"])}')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
