"""``sepkit separate``: split audio files into one file per source with a trained model.

Torch, soundfile and the engine are imported inside the command so that ``sepkit --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..separation.defaults import DEFAULT_OVERLAP, SEPARATE_COMMAND_PRECISION

if TYPE_CHECKING:
    from ..model import Model
    from ..separation.files import FileResult

HELP = (
    "Separate audio files into one file per source of the model.\n\n"
    "Each INPUT (a file, or a folder searched for audio files) is written as "
    "OUTDIR/<input name>/<source>.<ext> at the input's own sample rate and channel count. The model is "
    "loaded once. Without --model the packaged default model is used: a small demonstration U-Net trained on "
    "synthetic chorale singing (what it knows and its scores: docs/separate.md).\n\n"
    f"Windows overlap by {DEFAULT_OVERLAP} by default (a smooth cross-fade); --overlap 0 reproduces the "
    "paper's non-overlapping windows. Bad inputs get a one-line error each; the others are still "
    "separated, and the exit code is 1 if any failed."
)


def register(app: typer.Typer) -> None:
    @app.command("separate", help=HELP)
    def separate(
        inputs: list[Path] = typer.Argument(..., metavar="INPUT...", help="Audio files and/or folders."),
        model_path: Optional[str] = typer.Option(
            None, "--model", "-m", metavar="NAME|PATH|URL",
            help="A named model (`sepkit models`), a model file, or a file:// or https:// URL (URL#sha256=HEX); default: the model named 'default'.",
        ),
        out_dir: Path = typer.Option(Path("separated"), "--output", "-o", metavar="OUTDIR", help="Where the stems go."),
        fmt: str = typer.Option("wav", "--format", "-f", metavar="wav|flac|ogg", help="Output file format."),
        bit_depth: Optional[str] = typer.Option(
            None, "--bit-depth", metavar="16|24|32f", help="Sample format of wav/flac stems (default 16; 32f: float, wav only)."
        ),
        stems: Optional[str] = typer.Option(None, "--stems", metavar="a,b", help="Only these sources (comma-separated)."),
        device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda|mps", help="Where the separator runs."),
        overlap: float = typer.Option(
            DEFAULT_OVERLAP, "--overlap", metavar="F", help="Fraction of each output window shared with the next, in [0, 1)."
        ),
        wiener: bool = typer.Option(False, "--wiener", help="Soft-mask Wiener post-filter (magnitude-spectrogram models)."),
        channel_mode: Optional[str] = typer.Option(
            None, "--channel-mode", metavar="per-channel|downmix",
            help="Mono model, multichannel input: separate each channel, or their mean (default: the model's setting).",
        ),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Windows per forward pass."),
        precision: str = typer.Option(
            SEPARATE_COMMAND_PRECISION, "--precision", metavar="auto|fp32|bf16",
            help="Separator arithmetic: bf16 is several times faster on CPUs with AMX and on CUDA, "
            "at a cost of about 0.02 dB SDR (docs/separate.md); auto picks bf16 where it is fast, else fp32.",
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
        as_json: bool = typer.Option(False, "--json", help="Print the results as JSON instead of a table."),
    ) -> None:
        run_separate(
            inputs, model_path=model_path, out_dir=out_dir, fmt=fmt.lower(), bit_depth=bit_depth, stems=stems,
            device=device, overlap=overlap, wiener=wiener, channel_mode=channel_mode, batch_size=batch_size,
            precision=precision, overwrite=overwrite, as_json=as_json,
        )


def run_separate(
    inputs: list[Path],
    *,
    model_path: str | Path | None,
    out_dir: Path,
    fmt: str,
    bit_depth: str | None,
    stems: str | None,
    device: str,
    overlap: float,
    wiener: bool,
    channel_mode: str | None,
    batch_size: int | None,
    overwrite: bool,
    as_json: bool,
    precision: str = SEPARATE_COMMAND_PRECISION,
) -> None:
    from rich.console import Console

    from ..errors import SepkitError
    from ..separation.output import output_subtype

    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    output_subtype(fmt, bit_depth)  # option errors before the (slow) model load
    from ..separation.defaults import check_precision_option

    check_precision_option(precision)
    if out_dir.exists() and not out_dir.is_dir():
        raise SepkitError(f"{out_dir}: the output folder is a file")
    from ..models import DEFAULT_MODEL, resolve_model

    resolved = resolve_model(model_path)
    is_default = resolved.name == DEFAULT_MODEL
    model_path = resolved.path

    from ..model import load_model

    model = load_model(model_path, device=device)
    wanted = _parse_stems(stems, model.sources)
    options = model.options(
        overlap=overlap, batch_size=batch_size, wiener=wiener, channel_mode=channel_mode, precision=precision
    )
    if wiener:
        from ..separation.wiener import check_wiener

        check_wiener(model.representation, model.recipe.representation.type)
    errors.print(_describe(model, model_path, is_default), style="dim")

    results = _separate_all(model, inputs, out_dir, wanted, fmt, bit_depth, overwrite, options, as_json, errors)
    if as_json:
        typer.echo(json.dumps(
            {
                "model": str(model_path),
                "default_model": is_default,
                "device": str(model.device),
                "output": str(out_dir),
                "files": [r.as_json() for r in results],
                "failed": sum(r.error is not None for r in results),
            },
            indent=2,
        ))
    else:
        _print_table(results)
    if any(r.error is not None for r in results):
        raise typer.Exit(1)


def _parse_stems(stems: str | None, sources: list[str]) -> list[str]:
    from ..errors import SepkitError

    if stems is None:
        return list(sources)
    wanted = [s.strip() for s in stems.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in sources]
    if not wanted or unknown:
        raise SepkitError(
            f"--stems {stems!r}: {'unknown stem(s) ' + ', '.join(unknown) if unknown else 'no stem named'}; "
            f"this model separates {', '.join(sources)}"
        )
    return list(dict.fromkeys(wanted))


def _describe(model: "Model", path: Path, is_default: bool) -> str:
    separator = model.components.get("separator", {})
    provider = f" from {separator.get('distribution')} {separator.get('version')}" if separator else ""
    channels = "mono" if model.channels == 1 else f"{model.channels} channels"
    return (
        f"model: {path}{' (the default model)' if is_default else ''}: {model.recipe.separator.type}{provider}, "
        f"sources {', '.join(model.sources)}, {model.sample_rate} Hz {channels}, on {model.device}"
    )


def _separate_all(
    model: "Model",
    inputs: list[Path],
    out_dir: Path,
    stems: list[str],
    fmt: str,
    bit_depth: str | None,
    overwrite: bool,
    options: object,
    as_json: bool,
    errors: object,
) -> list["FileResult"]:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from ..separation.files import FileResult, expand_inputs, output_folders, separate_file

    files, bad_inputs = expand_inputs(inputs)
    for result in bad_inputs:
        _print_error(errors, result.error)
    protected = frozenset(p.resolve() for p in files)
    claimed: dict[Path, Path] = {}
    results: list[FileResult] = list(bad_inputs)
    show = errors.is_terminal and not as_json  # type: ignore[attr-defined]
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
        console=errors, disable=not show, transient=True,  # type: ignore[arg-type]
    ) as progress:
        overall = progress.add_task("all files", total=len(files))
        planned = output_folders(out_dir, files)
        for index, path in enumerate(files):
            folder = planned[path].resolve()
            if folder in claimed:
                result = FileResult(
                    path, error=f"{path}: its output folder {planned[path]} is already used by {claimed[folder]} "
                    "(separate it in another call, or with another -o)",
                )
            else:
                task = progress.add_task(path.name, total=None)
                result = separate_file(
                    model, path, out_dir, stems=stems, fmt=fmt, bit_depth=bit_depth, overwrite=overwrite,
                    options=options, protected=protected,  # type: ignore[arg-type]
                    progress=lambda done, total, _task=task: progress.update(_task, completed=done, total=total),
                    folder=planned[path],
                )
                progress.remove_task(task)
                if result.error is None:  # a failed input leaves nothing behind, so its folder stays free
                    claimed[folder] = path
            if result.error is not None:
                _print_error(errors, result.error)
            results.append(result)
            progress.advance(overall)
            if result.disk_full:  # every further file would fail the same way: stop, and say what was done
                rest = files[index + 1 :]
                results.extend(FileResult(p, error="not attempted: no space left on the output device", skipped=True) for p in rest)
                done = sum(r.error is None for r in results)
                _print_error(errors, f"no space left on the device of {out_dir}: stopped after {done} file(s) separated, "
                             f"{len(rest)} not attempted (the stems written are kept); free some space and separate the rest")
                break
    return results


def _print_error(console: object, message: str | None) -> None:
    from rich.text import Text

    console.print(Text.assemble(("error: ", "red"), message or ""))  # type: ignore[attr-defined]


def _print_table(results: list["FileResult"]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="sepkit separate")
    for column, justify in (("file", "left"), ("duration", "right"), ("time", "right"), ("real-time factor", "right"), ("result", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in results:
        table.add_row(
            str(r.file),
            f"{r.duration:.1f} s" if r.duration else "-",
            f"{r.seconds:.2f} s" if r.error is None else "-",
            f"{r.realtime_factor:.1f}x" if r.realtime_factor is not None else "-",
            "ok" if r.error is None else ("skipped" if r.skipped else "failed"),
        )
    Console(file=sys.stdout).print(table)
