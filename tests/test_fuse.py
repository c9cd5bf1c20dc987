"""Decision-level fusion (jaxser.fuse) and token cutoff."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser import augment
from jaxser import fuse
from jaxser import predictions as predictions_lib

CLASSES = ('neutral', 'happy', 'sad', 'angry')


def _run(path, keys, labels, logits, classes=CLASSES, **info):
  os.makedirs(path, exist_ok=True)
  predictions_lib.write(os.path.join(path, predictions_lib.FILE), keys,
                        labels, logits, classes)
  with open(os.path.join(path, 'results.json'), 'w') as f:
    json.dump(dict(dict(target='t', task='emotion4'), **info), f)
  return str(path)


def test_fusion_is_the_argmax_of_the_summed_logits(tmp_path):
  rng = np.random.default_rng(0)
  n = 40
  keys = [('t', f'u{i}') for i in range(n)]
  labels = rng.integers(0, 4, n)
  audio = rng.normal(size=(n, 4))
  text = rng.normal(size=(n, 4))
  a = _run(tmp_path / 'audio', keys, labels, audio, method='multitask')
  # The text run lists the same utterances in another order.
  perm = rng.permutation(n)
  b = _run(tmp_path / 'text', [keys[i] for i in perm], labels[perm],
           text[perm], method='multitask')
  result = fuse.fuse([a, b], str(tmp_path / 'fused'))
  pred = (audio + text).argmax(-1)
  recall = [np.mean(pred[labels == c] == c) for c in range(4)]
  assert result['uar'] == pytest.approx(np.mean(recall))
  assert result['war'] == pytest.approx(np.mean(pred == labels))
  assert result['runs'][a]['war'] == pytest.approx(
      np.mean(audio.argmax(-1) == labels))
  assert result['runs'][b]['war'] == pytest.approx(
      np.mean(text.argmax(-1) == labels))
  assert result['target'] == 't' and result['method'] == 'fusion'
  k, y, z, classes = predictions_lib.read(
      str(tmp_path / 'fused' / predictions_lib.FILE))
  assert k == keys and classes == CLASSES and (y == labels).all()
  np.testing.assert_allclose(z, audio + text, rtol=1e-12)
  with open(tmp_path / 'fused' / 'results.json') as f:
    assert json.load(f)['uar'] == result['uar']


def test_fusion_errors_name_the_run(tmp_path):
  keys = [('t', 'u0'), ('t', 'u1')]
  z = np.zeros((2, 4))
  a = _run(tmp_path / 'a', keys, [0, 1], z)
  b = _run(tmp_path / 'b', keys[:1] + [('t', 'other')], [0, 1], z)
  with pytest.raises(ValueError, match=f'{b} evaluated other utterances'):
    fuse.fuse([a, b], str(tmp_path / 'out'))
  c = _run(tmp_path / 'c', keys, [0, 1], np.zeros((2, 2)), classes=('lo', 'hi'))
  with pytest.raises(ValueError, match=f'{c} has classes'):
    fuse.fuse([a, c], str(tmp_path / 'out'))
  d = _run(tmp_path / 'd', keys, [1, 1], z)
  with pytest.raises(ValueError, match='disagree on the labels'):
    fuse.fuse([a, d], str(tmp_path / 'out'))
  with pytest.raises(ValueError, match='predictions.csv: no such file'):
    fuse.fuse([a, str(tmp_path / 'nowhere')], str(tmp_path / 'out'))
  with pytest.raises(ValueError, match='two or more'):
    fuse.fuse([a], str(tmp_path / 'out'))
  assert not os.path.exists(tmp_path / 'out')  # Nothing half-written.


def test_token_cutoff_rate_specials_and_padding():
  b, t = 256, 64
  ids = jnp.asarray(np.random.default_rng(0).integers(1000, 30000, (b, t)),
                    jnp.float32)
  lengths = jnp.asarray(np.random.default_rng(1).integers(3, t + 1, b))
  out = augment.token_cutoff(jax.random.PRNGKey(0), ids, lengths, 0.15)
  pos = np.arange(t)[None, :]
  n = np.asarray(lengths)[:, None]
  cut = np.asarray(out) == 0
  inner = (pos > 0) & (pos < n - 1)
  assert not cut[~inner].any()  # [CLS], [SEP] and padding are kept.
  rate = cut[inner].mean()
  assert abs(rate - 0.15) < 0.01, rate
  np.testing.assert_array_equal(np.asarray(out)[~cut], np.asarray(ids)[~cut])
  assert out.dtype == ids.dtype
  # Without keep_special the first and last valid tokens may be cut too.
  out = augment.token_cutoff(jax.random.PRNGKey(0), ids, lengths, 0.5,
                             keep_special=False)
  assert (np.asarray(out)[:, 0] == 0).any()
  assert not (np.asarray(out) == 0)[pos >= n].any()
  same = augment.token_cutoff(jax.random.PRNGKey(0), ids, lengths, 0.0)
  np.testing.assert_array_equal(same, ids)
