"""The default model of ``sepkit separate``, registered as the named model ``default``.

A supervised U-Net trained by ``recipes/default_model.toml`` on the offline corpus's shippable
domain-A data (0.97 MB; provenance in its metadata and in docs/separate.md).
"""

from __future__ import annotations

from importlib import resources

import sepkit


@sepkit.hookimpl
def register_models(register):  # type: ignore[no-untyped-def]
    path = resources.files(__name__) / "model.safetensors"
    if path.is_file():  # a source checkout without the model file registers nothing
        register(
            "default",
            path,
            description="demonstration U-Net, accompaniment/vocals, trained on synthetic chorale singing (8192 Hz mono)",
            license="derived from CC BY 3.0 (HTS voice nitech_jp_song070_f001), MIT (FluidR3_GM) and public-domain data; attribution in docs/separate.md",
        )
