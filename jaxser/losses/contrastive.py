"""Contrastive losses and prototypes: `supervised_contrastive` (SupCon),
`nt_xent` (SimCLR), `prototype`, `l2_normalize`, `prototype_decoupling`
(Emo-DNA eq. 5)."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxser.losses._common import matmul, NEG


def l2_normalize(x: jnp.ndarray, axis: int = -1,
                 eps: float = 1e-12) -> jnp.ndarray:
  """x / max(||x||, eps) along `axis` (as torch.nn.functional.normalize).

  Written as x * rsqrt(max(||x||^2, eps^2)) so a zero vector maps to zero with
  finite gradients.
  """
  sq = jnp.sum(x * x, axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def prototype(features: jnp.ndarray,
              mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Mean row of `features` (B, d) (Emo-DNA eq. 4), over unmasked rows.

  p = sum_i m_i f_i / max(sum_i m_i, 1); NOT normalised.
  """
  if mask is None:
    return jnp.mean(features, axis=0)
  mask = mask.astype(features.dtype)
  return matmul(mask, features) / jnp.maximum(jnp.sum(mask), 1.0)


def prototype_decoupling(proto_e_s: jnp.ndarray,
                         proto_c_s: jnp.ndarray,
                         proto_e_t: jnp.ndarray,
                         proto_c_t: jnp.ndarray,
                         temperature: float = 0.01) -> jnp.ndarray:
  """Contrastive decoupling loss between prototypes (Emo-DNA eq. 5).

  The prototypes p = (p_e^S, p_c^S, p_e^T, p_c^T) are L2-normalised HERE
  (pass the raw batch means from `prototype`; the paper: "prototypes are
  l2-normalized"). With t the temperature, for (m, n) in {(S, T), (T, S)}:

    L_mn = -log [ exp(p_e^m.p_e^n / t)
                  / (exp(p_e^m.p_e^n / t) + exp(p_e^m.p_c^n / t)) ]
    L = (L_ST + L_TS) / 2.

  The printed eq. 5 has p_e^m.p_e^n in both denominator terms; as our spec
  resolves it, the second term is the negative pair p_e^m.p_c^n (emotion
  prototype of m against corpus prototype of n). Computed as
  L_mn = logsumexp([0, s_neg - s_pos]) = softplus(s_neg - s_pos), with
  s = p.p' / t (exact where the loss is small, unlike
  logsumexp([s_pos, s_neg]) - s_pos).

  Args:
    proto_e_s: (d,) source emotion prototype.
    proto_c_s: (d,) source corpus prototype.
    proto_e_t: (d,) target emotion prototype.
    proto_c_t: (d,) target corpus prototype.
    temperature: tau_p.

  Returns:
    Scalar loss.
  """
  e_s, c_s, e_t, c_t = (l2_normalize(p) for p in
                        (proto_e_s, proto_c_s, proto_e_t, proto_c_t))

  def one_way(e_m, e_n, c_n):
    return jnp.logaddexp(0.0, (jnp.sum(e_m * c_n) - jnp.sum(e_m * e_n)) /
                         temperature)

  return 0.5 * (one_way(e_s, e_t, c_t) + one_way(e_t, e_s, c_s))


def supervised_contrastive(z: jnp.ndarray,
                           labels: jnp.ndarray,
                           mask: jnp.ndarray,
                           temperature: float = 0.01) -> jnp.ndarray:
  """Supervised contrastive loss, L^out (Khosla et al. 2020; Emo-DNA eq. 9).

  `z` (N, d) must already be L2-normalised (this function does not
  normalise). With m_i the mask, for an anchor i:

    P(i) = {p != i : m_p = 1, y_p = y_i},   A(i) = {a != i : m_a = 1},
    l_i = -1/|P(i)| sum_{p in P(i)}
            log( exp(z_i.z_p / t) / sum_{a in A(i)} exp(z_i.z_a / t) ),
    L = mean of l_i over the anchors with m_i = 1 and |P(i)| > 0
        (0 when there are none).

  Masked rows are neither anchors, positives nor in any denominator. Emo-DNA
  eq. 9 sums over anchors; we average (SupCon's own normalisation), which
  only rescales the loss weight alpha_1.

  Stable at t = 0.01: the log-sum-exp subtracts each row's max over its valid
  entries and excluded entries are filled with a large negative number (not
  -inf), so the gradients stay finite even when no anchor is valid.

  Args:
    z: (N, d) L2-normalised embeddings.
    labels: (N,) int labels (pseudo-labels for target rows).
    mask: (N,) 0/1 of the rows that take part.
    temperature: t.

  Returns:
    Scalar loss.
  """
  n = z.shape[0]
  valid = mask.astype(bool)
  logits = matmul(z, z.T) / temperature
  not_self = ~jnp.eye(n, dtype=bool)
  in_denom = not_self & valid[None, :]                      # a in A(i)
  positive = in_denom & (labels[:, None] == labels[None, :])  # p in P(i)

  filled = jnp.where(in_denom, logits, NEG)
  row_max = jax.lax.stop_gradient(jnp.max(filled, axis=1, keepdims=True))
  exp = jnp.where(in_denom, jnp.exp(filled - row_max), 0.0)
  denom = jnp.sum(exp, axis=1, keepdims=True)
  log_denom = row_max + jnp.log(jnp.where(denom > 0, denom, 1.0))
  log_prob = jnp.where(positive, logits - log_denom, 0.0)

  num_pos = jnp.sum(positive, axis=1).astype(z.dtype)
  loss_i = -jnp.sum(log_prob, axis=1) / jnp.maximum(num_pos, 1.0)
  anchor = (valid & (num_pos > 0)).astype(z.dtype)
  return jnp.sum(anchor * loss_i) / jnp.maximum(jnp.sum(anchor), 1.0)


def nt_xent(z1: jnp.ndarray, z2: jnp.ndarray,
            temperature: float = 0.5) -> jnp.ndarray:
  """SimCLR's NT-Xent loss over the 2N views (Chen et al. 2020).

  The rows of z = [z1; z2] are L2-normalised here (cosine similarity);
  s_ij = z_i.z_j / t and pos(i) = i + N mod 2N:

    l_i = -log( exp(s_{i,pos(i)}) / sum_{k != i} exp(s_ik) ),
    L = mean_i l_i   over all 2N anchors.

  Args:
    z1: (N, d) first views.
    z2: (N, d) second views.
    temperature: t.

  Returns:
    Scalar loss.
  """
  n = z1.shape[0]
  z = l2_normalize(jnp.concatenate([z1, z2], axis=0))
  logits = matmul(z, z.T) / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), NEG, logits)
  pos = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(0, n)])
  log_prob = jax.nn.log_softmax(logits, axis=1)
  return -jnp.mean(log_prob[jnp.arange(2 * n), pos])
