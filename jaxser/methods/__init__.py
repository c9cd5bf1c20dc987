"""Methods: each module defines one `Method` subclass, registered by name."""

from jaxser.methods.base import Method, get, names  # noqa: F401
from jaxser.methods import emodna, source_only  # noqa: F401  (registration)
