"""GAN losses of the cycle-GAN family (CAEmoCyGAN and its baselines).

The discriminator outputs an unnormalised logit d; D(x) = sigmoid(d) in the
log form. Reconstruction losses average over the batch and the feature
dimensions (the per-element mean of PyTorch's MSELoss/L1Loss, which the
cycle-GAN reference code uses; the paper's squared norms summed over 1582
dimensions would outweigh the GAN term by three orders of magnitude at the
published lambda = 10, 10, 1, 10).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

GAN_FORMS = ('log', 'least_squares')
GENERATOR_FORMS = ('minimax', 'non_saturating')


def gan_discriminator_loss(real_logits: jnp.ndarray, fake_logits: jnp.ndarray,
                           form: str = 'log') -> jnp.ndarray:
  """What a discriminator minimises (eqs. 1-2 with the sign for D).

    log:            -E[log D(real)] - E[log(1 - D(fake))]
                    = E[softplus(-d_real)] + E[softplus(d_fake)],
    least_squares:  E[(d_real - 1)^2] + E[d_fake^2]   (Mao et al. 2017).

  Args:
    real_logits: (B,) or (B, 1) outputs on real examples.
    fake_logits: outputs on generated examples (no gradient to G is wanted:
      pass them through `jax.lax.stop_gradient` upstream).
    form: 'log' or 'least_squares'.
  """
  if form == 'log':
    return (jnp.mean(jax.nn.softplus(-real_logits))
            + jnp.mean(jax.nn.softplus(fake_logits)))
  if form == 'least_squares':
    return (jnp.mean(jnp.square(real_logits - 1.0))
            + jnp.mean(jnp.square(fake_logits)))
  raise ValueError(f'unknown GAN form {form!r}; known: {", ".join(GAN_FORMS)}')


def gan_generator_loss(fake_logits: jnp.ndarray, form: str = 'log',
                       generator_form: str = 'minimax') -> jnp.ndarray:
  """What a generator minimises against one discriminator.

    log, minimax:         E[log(1 - D(G(x)))] = -E[softplus(d_fake)]
                          (eqs. 1-2 as printed: G minimises what D
                          maximises),
    log, non_saturating:  -E[log D(G(x))] = E[softplus(-d_fake)]
                          (Goodfellow et al.'s practical variant),
    least_squares:        E[(d_fake - 1)^2].
  """
  if form == 'least_squares':
    return jnp.mean(jnp.square(fake_logits - 1.0))
  if form != 'log':
    raise ValueError(f'unknown GAN form {form!r}; known: '
                     f'{", ".join(GAN_FORMS)}')
  if generator_form == 'minimax':
    return -jnp.mean(jax.nn.softplus(fake_logits))
  if generator_form == 'non_saturating':
    return jnp.mean(jax.nn.softplus(-fake_logits))
  raise ValueError(f'unknown generator loss {generator_form!r}; known: '
                   f'{", ".join(GENERATOR_FORMS)}')


def squared_error(x_hat: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
  """mean_{i,k} (x_hat_ik - x_ik)^2: one term of eqs. 4-5 (identity, cycle)."""
  return jnp.mean(jnp.square(x_hat - x))


def absolute_error(x_hat: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
  """mean_{i,k} |x_hat_ik - x_ik|: the L1 pre-training criterion (sec. 4.2)."""
  return jnp.mean(jnp.abs(x_hat - x))


def identity_loss(pairs) -> jnp.ndarray:
  """Eq. 4: sum over (G(x), x) pairs of `squared_error`; the pairs are
  (G_T->S_i(S_i), S_i) for every source and (G_S->T(T), T)."""
  return sum(squared_error(a, b) for a, b in pairs)


def cycle_loss(pairs) -> jnp.ndarray:
  """Eq. 5: sum over (G'(G(x)), x) pairs of `squared_error`; the pairs are
  (G_T->S_i(G_S->T(S_i)), S_i) and (G_S->T(G_T->S_i(T)), T) per source."""
  return sum(squared_error(a, b) for a, b in pairs)


def soft_cross_entropy(logits: jnp.ndarray,
                       targets: jnp.ndarray) -> jnp.ndarray:
  """mean_i -sum_c q_ic log softmax(z_i)_c for soft labels q (rows sum to 1).

  Eq. 16 (emotion consistency, one-hot q: F_s of the reconstructed source
  against its label) and eq. 18 (F_clf on sources and generated samples with
  their soft labels Y_fake = alpha . Y_S). Both are printed without the
  minus sign; the minimised quantity is the cross-entropy.
  """
  return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, -1), -1))


def corpus_attention_weights(scores: jnp.ndarray) -> jnp.ndarray:
  """Eq. 11: alpha = softmax over the C sources of v^T s(h_cat).

  Args:
    scores: (B, C) energies v^T tanh(Linear(h_s_i || h_t_ref)).
  Returns:
    (B, C) weights, each row summing to 1.
  """
  return jax.nn.softmax(scores, axis=-1)


def fuse(alpha: jnp.ndarray, stacked: jnp.ndarray) -> jnp.ndarray:
  """Eqs. 13-14 and Algorithm 1 line 14: sum_i alpha_i x_i.

  Args:
    alpha: (B, C) attention weights.
    stacked: (B, C, ...) one row per source (hidden vectors h_s_i, or
      one-hot labels Y_S_i).
  """
  alpha = alpha.reshape(alpha.shape + (1,) * (stacked.ndim - 2))
  return jnp.sum(alpha * stacked, axis=1)
