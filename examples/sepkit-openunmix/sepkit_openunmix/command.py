"""``sepkit convert open-unmix TARGET=FILE.pth ... -o model.safetensors``."""

from __future__ import annotations

from pathlib import Path

import typer

HELP = """Convert Open-Unmix checkpoints (one .pth per target) into one sepkit model file.

Example, with the four umxhq files of https://doi.org/10.5281/zenodo.3370489:

sepkit convert open-unmix vocals=vocals-b62c91ce.pth drums=drums-9619578f.pth bass=bass-8d85a5bd.pth other=other-b52fbbf7.pth -o umxhq.safetensors

Vocals only, with the accompaniment as the residual (the mixture minus the vocals):

sepkit convert open-unmix vocals=vocals-b62c91ce.pth --residual accompaniment -o karaoke.safetensors

Checkpoints are read with torch.load(weights_only=True): nothing in them is executed. The network's sizes are read from the files. The model file records each file's sha256, the published URL of Open-Unmix's own files and the licence of the weights (umxl's are non-commercial only).
"""


def register(app: typer.Typer) -> None:
    convert_app = typer.Typer(
        help="Convert checkpoints of other toolkits into sepkit model files.", no_args_is_help=True
    )
    app.add_typer(convert_app, name="convert")

    @convert_app.command("open-unmix", help=HELP, no_args_is_help=True)
    def open_unmix(
        checkpoints: list[str] = typer.Argument(..., metavar="TARGET=FILE.pth...", help="One Open-Unmix state dict per target, in output order."),
        output: Path = typer.Option(..., "-o", "--output", help="The sepkit model file to write (.safetensors)."),
        residual: str = typer.Option(None, "--residual", metavar="NAME", help="Add a last source NAME = mixture minus the targets."),
        sample_rate: int = typer.Option(None, "--sample-rate", help="Rate the weights were trained at (default: stored in the file, else 44100)."),
        hop_length: int = typer.Option(None, "--hop-length", help="STFT hop (default n_fft / 4, Open-Unmix's music models)."),
        output_frames: int = typer.Option(None, "--output-frames", help="Frames per separation window (default 1024, 23.8 s)."),
        context_frames: int = typer.Option(None, "--context-frames", help="Frames of context on each side (default 256, 5.9 s)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    ) -> None:
        from rich.console import Console
        from rich.table import Table

        from sepkit.errors import SepkitError

        from .convert import convert, parse_pairs
        from .separator import DEFAULT_CONTEXT_FRAMES, DEFAULT_OUTPUT_FRAMES

        for option, value, low in (("--sample-rate", sample_rate, 1), ("--hop-length", hop_length, 1),
                                   ("--output-frames", output_frames, 1), ("--context-frames", context_frames, 0)):
            if value is not None and value < low:
                raise SepkitError(f"{option} {value}: must be at least {low}")
        result = convert(
            parse_pairs(checkpoints),
            output,
            residual=residual,
            sample_rate=sample_rate,
            hop_length=hop_length,
            output_frames=output_frames or DEFAULT_OUTPUT_FRAMES,
            context_frames=DEFAULT_CONTEXT_FRAMES if context_frames is None else context_frames,
            overwrite=overwrite,
        )
        console = Console()
        table = Table(title=f"Open-Unmix -> {result.output}")
        for column in ("target", "file", "sha256", "identified as"):
            table.add_column(column)
        for c in result.checkpoints:
            known = c.recognised
            label = "-" if known is None else f"{known.model.name} {known.file.target}" + ("" if known.by == "sha256" else " (hash prefix only)")
            table.add_row(c.target, str(c.path), c.sha256[:16] + "…", label)
        if residual:
            table.add_row(residual, "(mixture minus the targets)", "", "")
        console.print(table)
        a = result.checkpoints[0].architecture
        console.print(
            f"{a.describe()}; {result.sample_rate} Hz, STFT {a.n_fft}/{result.hop_length}; "
            f"{result.parameters / 1e6:.2f} M parameters"
        )
        console.print(f"licence: {result.license}")
