"""sepkit-openunmix: the Open-Unmix architecture as a third-party sepkit plugin.

Registers, through the ``sepkit`` entry-point group (see pyproject.toml):

* ``open-unmix`` separator: one BLSTM network per source, parameter names as Open-Unmix's state dicts
* ``sepkit convert open-unmix TARGET=FILE.pth ...``: published checkpoints -> a sepkit model file
* named models ``umxhq`` and ``umxhq-vocals`` (downloaded, verified and converted on first use)

The representation is sepkit's own ``magnitude-stft`` with Open-Unmix's settings (``n_fft = 4096``,
``hop_length = 1024``, ``normalisation = "none"``: linear magnitudes; the learned input scaling
lives in the network). The hooks import torch only when they run.
"""

import sepkit

__version__ = "0.1.0"


@sepkit.hookimpl
def register_separators(register):
    from .separator import OpenUnmix

    register("open-unmix", OpenUnmix)


@sepkit.hookimpl
def register_models(register):
    from .named import register_published

    register_published(register)


@sepkit.hookimpl
def register_commands(app):
    from .command import register

    register(app)
