"""Loaders of real corpora, one module per corpus (imported for registration).

Each loader lists the audio files below its root by the corpus's own naming
scheme and annotation files (see each module's docstring for the layout it
reads and `common` for what they share).
"""

from jaxser.data.corpora import casia  # noqa: F401
from jaxser.data.corpora import cremad  # noqa: F401
from jaxser.data.corpora import emodb  # noqa: F401
from jaxser.data.corpora import emovo  # noqa: F401
from jaxser.data.corpora import folder  # noqa: F401
from jaxser.data.corpora import iemocap  # noqa: F401
from jaxser.data.corpora import ljspeech  # noqa: F401
from jaxser.data.corpora import msp  # noqa: F401
from jaxser.data.corpora import ravdess  # noqa: F401
from jaxser.data.corpora import savee  # noqa: F401
from jaxser.data.corpora import tess  # noqa: F401
from jaxser.data.corpora import turev  # noqa: F401
from jaxser.data.corpora import urdu  # noqa: F401
from jaxser.data.corpora import vam  # noqa: F401
