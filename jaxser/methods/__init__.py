"""Methods: each module defines one `Method` subclass, registered by name."""

from jaxser.methods.base import Method, create, get, names  # noqa: F401
from jaxser.methods import (  # noqa: F401  (registration)
    bsp, cdan, cyclegan, dan, dann, difl, emodna, gst_tacotron, jan, mmd_ser,
    multitask, source_only)
