"""Defaults of the separation engine and where the packaged default model lives (no torch import:
the CLI shows these in its help)."""

from __future__ import annotations

from pathlib import Path

#: Window overlap used when none is given: a smooth cross-fade over a quarter of each output window.
DEFAULT_OVERLAP = 0.25
#: Windows per forward pass when neither the caller nor the model's recipe says.
DEFAULT_BATCH_SIZE = 16
#: Arithmetic of the separator at inference when none is given (see sepkit.separation.precision):
#: the library and `sepkit evaluate` compute in fp32, so that scores are exactly reproducible...
DEFAULT_PRECISION = "fp32"
#: ...and `sepkit separate` takes bf16 where the hardware makes it several times faster.
SEPARATE_COMMAND_PRECISION = "auto"
#: Every precision the engine accepts (auto: bf16 where fast, else fp32).
PRECISIONS = ("auto", "fp32", "bf16")


def check_precision_option(value: str, option: str = "--precision") -> str:
    """A command-line precision, checked before anything slow is loaded (this module imports no torch)."""
    if value not in PRECISIONS:
        from ..errors import SepkitError

        raise SepkitError(f"{option} {value}: expected fp32, bf16 or auto")
    return value
#: Model-rate seconds each chunk of a long input owns (the result does not depend on it).
DEFAULT_CHUNK_SECONDS = 60.0
#: Input-rate seconds read (and resampled) per block.
BLOCK_SECONDS = 10.0

#: The packaged default model: package, folder, file.
DEFAULT_MODEL_PACKAGE = "sepkit_plugins"
DEFAULT_MODEL_RESOURCE = ("default_model", "model.safetensors")

NO_DEFAULT_MODEL = (
    "no default model is installed; train one with `sepkit run recipes/demo.toml` and pass "
    "--model runs/demo/<variant>/model.safetensors"
)


def default_model_path() -> Path | None:
    """The packaged default model file, or None when no default model is installed."""
    from importlib import resources

    try:
        candidate = resources.files(DEFAULT_MODEL_PACKAGE).joinpath(*DEFAULT_MODEL_RESOURCE)
    except ModuleNotFoundError:
        return None
    if not candidate.is_file():
        return None
    return Path(str(candidate))
