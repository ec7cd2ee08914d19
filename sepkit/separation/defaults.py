"""Defaults of the separation engine (no torch import: the CLI shows these in its help).

The default model is not named here: it is the named model ``default`` (:mod:`sepkit.models`),
registered by a plugin through the ``register_models`` hook.
"""

from __future__ import annotations

from ..errors import SepkitError

#: Window overlap used when none is given: a smooth cross-fade over a quarter of each output window.
DEFAULT_OVERLAP = 0.25
#: Windows per forward pass when neither the caller nor the model's recipe says.
DEFAULT_BATCH_SIZE = 16
#: Arithmetic of the separator at inference when none is given (see sepkit.separation.precision):
#: the library and `sepkit evaluate` compute in fp32, so that scores are exactly reproducible...
DEFAULT_PRECISION = "fp32"
#: ...and `sepkit separate` takes bf16 where the hardware makes it several times faster.
SEPARATE_COMMAND_PRECISION = "auto"
#: ``high_band``: share out what the model cannot hear, or drop it (or a source name: all to it).
HIGH_BAND_MODES = ("share", "drop")
#: Every precision the engine accepts (auto: bf16 where fast, else fp32).
PRECISIONS = ("auto", "fp32", "bf16")
#: Model-rate seconds each chunk of a long input owns (the result does not depend on it).
DEFAULT_CHUNK_SECONDS = 60.0
#: Input-rate seconds read (and resampled) per block.
BLOCK_SECONDS = 10.0


def check_precision(value: str, option: str | None = None) -> str:
    """The one check of a precision (this module imports no torch, so the command line runs it
    before anything slow is loaded). ``option``: the command-line option it came from, for the
    wording of the error (``--precision fp16: expected ...``)."""
    if value in PRECISIONS:
        return value
    if option is not None:
        raise SepkitError(f"{option} {value}: expected fp32, bf16 or auto")
    raise SepkitError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")


def check_precision_option(value: str, option: str = "--precision") -> str:
    """:func:`check_precision` of a command-line option."""
    return check_precision(value, option)
