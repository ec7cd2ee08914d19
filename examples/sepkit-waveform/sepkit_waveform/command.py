"""``sepkit wave-unet-window``: which window a Wave-U-Net gets for given settings, before training.

A valid-convolution network cannot take any input size; this prints the sizes ``wave-unet`` would
choose, so that ``output_samples`` can be picked without building a recipe first.
"""

from __future__ import annotations

import typer

from sepkit import SepkitError


def register(app: typer.Typer) -> None:
    @app.command("wave-unet-window")
    def wave_unet_window(
        output_samples: int = typer.Option(8192, "--output-samples", help="Output samples wanted per window."),
        depth: int = typer.Option(4, "--depth", help="Down-sampling levels."),
        down_kernel: int = typer.Option(15, "--down-kernel", help="Width of the down-path convolutions (odd)."),
        up_kernel: int = typer.Option(5, "--up-kernel", help="Width of the up-path convolutions (odd)."),
        sample_rate: int = typer.Option(8192, "--sample-rate", help="Rate, to print the window in seconds."),
    ) -> None:
        """Print the input, output and context (in samples and seconds) of a wave-unet separator."""
        from pydantic import ValidationError

        from .separator import WaveUNetConfig, fit_window

        settings = {"output_samples": output_samples, "depth": depth, "down_kernel": down_kernel, "up_kernel": up_kernel}
        try:
            config = WaveUNetConfig(**settings)
        except ValidationError as error:
            first = error.errors()[0]
            raise SepkitError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
        inputs, outputs = fit_window(config.output_samples, config.depth, config.down_kernel, config.up_kernel)
        context = (inputs - outputs) // 2
        typer.echo(
            f"wave-unet depth {config.depth}, kernels {config.down_kernel}/{config.up_kernel}: "
            f"input {inputs} samples ({inputs / sample_rate:.3f} s), output {outputs} samples "
            f"({outputs / sample_rate:.3f} s), context {context} + {context} samples"
        )
