"""Networks and their pieces; `registry` selects one by `config.model.name`."""

from jaxser.models.registry import (  # noqa: F401
    INPUT_KINDS, Network, build, check, feature_kind, get, names, register)
