"""Losses and loss helpers for the domain-adaptation methods, by family.

Every function here is pure JAX: static shapes, no Python control flow on
traced values, so all of them can be used under `jax.jit` (kernel specs and
estimator names are Python values, i.e. static).

Conventions: `mask` arguments are (batch,) arrays of 0/1 (float or bool) that
say which rows take part (padding rows of a fixed-shape batch, or target rows
below the pseudo-label threshold); masked means divide by the number of
unmasked rows, and by 1 when there are none, so an empty batch gives a loss of
0 with finite gradients.

Each family is a module; every public name is re-exported here (as optax
re-exports its losses), so `from jaxser import losses; losses.mk_mmd(...)`
works whichever module holds it:
  * classification: `cross_entropy`, `class_weights` (MMD-SER).
  * mmd: MK-MMD (DAN, Emo-DNA, MMD-SER) and JMMD (JAN): kernel specs
    `MeanScaledKernels`, `MulFamilyKernels`, `FixedGaussian`,
    `FixedBandwidthKernels` (`KernelSpec`, `DSN_SIGMAS`);
    `pairwise_sq_dists`, `joint_gram`, `mmd_from_gram` (the one
    implementation of the estimators), `jmmd`, `mk_mmd`.
  * contrastive: `supervised_contrastive` (SupCon), `nt_xent` (SimCLR),
    `prototype`, `l2_normalize`, `prototype_decoupling` (Emo-DNA eq. 5).
  * pseudo_label: `ema_threshold_init`, `ema_threshold_update`,
    `select_confident` (Emo-DNA eqs. 6-7), `confidence_threshold`
    (adaptive, fixed or none: Emo-DNA Table 6; `THRESHOLDS`).
  * entropy: `entropy`, `information_maximization`, `entropy_weights`
    (CDAN+E).
  * adversarial: `grad_reverse` (DANN's gradient reversal layer),
    `domain_adversarial_loss` (DANN, CDAN(+E), BSP),
    `batch_spectral_penalty` (BSP).
  * center: `center_loss` and `update_centers` (Wen et al. 2016, DIFL).
  * gan: the cycle-GAN family (CAEmoCyGAN): `gan_discriminator_loss`,
    `gan_generator_loss` (log and least-squares forms), `identity_loss`,
    `cycle_loss`, `squared_error`, `absolute_error`, `soft_cross_entropy`,
    `corpus_attention_weights`, `fuse`.
"""

from jaxser.losses.adversarial import batch_spectral_penalty
from jaxser.losses.adversarial import domain_adversarial_loss
from jaxser.losses.adversarial import grad_reverse
from jaxser.losses.center import center_loss
from jaxser.losses.center import update_centers
from jaxser.losses.classification import class_weights
from jaxser.losses.classification import cross_entropy
from jaxser.losses.contrastive import l2_normalize
from jaxser.losses.contrastive import nt_xent
from jaxser.losses.contrastive import prototype
from jaxser.losses.contrastive import prototype_decoupling
from jaxser.losses.contrastive import supervised_contrastive
from jaxser.losses.entropy import entropy
from jaxser.losses.entropy import entropy_weights
from jaxser.losses.entropy import information_maximization
from jaxser.losses.gan import absolute_error
from jaxser.losses.gan import corpus_attention_weights
from jaxser.losses.gan import cycle_loss
from jaxser.losses.gan import fuse
from jaxser.losses.gan import gan_discriminator_loss
from jaxser.losses.gan import gan_generator_loss
from jaxser.losses.gan import identity_loss
from jaxser.losses.gan import soft_cross_entropy
from jaxser.losses.gan import squared_error
from jaxser.losses.mmd import DSN_SIGMAS
from jaxser.losses.mmd import FixedBandwidthKernels
from jaxser.losses.mmd import FixedGaussian
from jaxser.losses.mmd import jmmd
from jaxser.losses.mmd import joint_gram
from jaxser.losses.mmd import KernelSpec
from jaxser.losses.mmd import MeanScaledKernels
from jaxser.losses.mmd import mk_mmd
from jaxser.losses.mmd import mmd_from_gram
from jaxser.losses.mmd import MulFamilyKernels
from jaxser.losses.mmd import pairwise_sq_dists
from jaxser.losses.pseudo_label import confidence_threshold
from jaxser.losses.pseudo_label import ema_threshold_init
from jaxser.losses.pseudo_label import ema_threshold_update
from jaxser.losses.pseudo_label import select_confident
from jaxser.losses.pseudo_label import THRESHOLDS

__all__ = [
    'DSN_SIGMAS', 'FixedBandwidthKernels', 'FixedGaussian', 'KernelSpec',
    'MeanScaledKernels', 'MulFamilyKernels', 'batch_spectral_penalty',
    'THRESHOLDS', 'center_loss', 'class_weights', 'confidence_threshold',
    'cross_entropy', 'domain_adversarial_loss',
    'ema_threshold_init', 'ema_threshold_update', 'entropy',
    'entropy_weights', 'grad_reverse', 'information_maximization', 'jmmd',
    'joint_gram', 'l2_normalize', 'mk_mmd', 'mmd_from_gram', 'nt_xent',
    'pairwise_sq_dists', 'prototype', 'prototype_decoupling',
    'select_confident', 'supervised_contrastive', 'update_centers',
    'absolute_error', 'corpus_attention_weights', 'cycle_loss', 'fuse',
    'gan_discriminator_loss', 'gan_generator_loss', 'identity_loss',
    'soft_cross_entropy', 'squared_error',
]
