"""BSP: batch spectral penalization on DANN (BSP+DANN; Chen et al., ICML 2019)
on the emotion network of `config.model`:

  L = L_DANN + bsp_weight * sum_{i <= k} (sigma_i(E^S)^2 + sigma_i(E^T)^2),

sigma_i the i-th largest singular value of a corpus's (batch, d) feature
matrix (`losses.batch_spectral_penalty`); the paper uses k = 1 and weight
1e-4. The adversarial part is `dann.DANN` unchanged (discriminator, gradient
reversal, schedules, the joint source + target batch); its
hyper-parameters sit in config.<name> next to `bsp_weight` and `bsp_k`.
"""

from __future__ import annotations

from jaxser import losses
from jaxser.methods import base
from jaxser.methods import dann


@base.register('bsp')
class BSP(dann.DANN):
  """BSP+DANN (see module docstring)."""

  def penalty(self, e_s, e_t):
    k = self.hparams.bsp_k
    sigma = (losses.batch_spectral_penalty(e_s, k) +
             losses.batch_spectral_penalty(e_t, k))
    return self.hparams.bsp_weight * sigma, {'loss_bsp': sigma}
