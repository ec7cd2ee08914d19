"""``sepkit separate``: split audio files into one file per source with a trained model.

Torch, soundfile and the engine are imported inside the command so that ``sepkit --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import typer

from ..separation.defaults import DEFAULT_OVERLAP, SEPARATE_COMMAND_PRECISION
from ..separation.naming import DEFAULT_TEMPLATE

if TYPE_CHECKING:
    from ..model import Model
    from ..separation.engine import EngineOptions
    from ..separation.files import FileResult

HELP = (
    "Separate audio files into one file per source of the model.\n\n"
    "Each INPUT (a file, or a folder searched for audio files) is written as "
    "OUTDIR/<input name>/<source>.<ext> (see --filename) at the input's own sample rate and channel count. "
    "Without --model the model named 'default' is used: a small demonstration U-Net trained on synthetic "
    "chorale singing (what it knows and its scores: docs/separate.md); `sepkit models` lists the others.\n\n"
    "The model hears the input at its own sample rate (the default model: 8192 Hz, so 0-4096 Hz); by default "
    "what it cannot hear is shared out over the sources so that the stems add up to the input (--high-band). "
    "Silent input gives silent stems. Every input is checked before the model loads; bad inputs get a one-line "
    "error each, the others are still separated, and the exit code is 1 if any failed.\n\n"
    f"Windows overlap by {DEFAULT_OVERLAP} by default (a smooth cross-fade); --overlap 0 reproduces the "
    "paper's non-overlapping windows."
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
        fmt: str = typer.Option("wav", "--format", "-f", metavar="wav|flac|ogg|mp3|opus", help="Output file format (opus: 48 kHz unless the input has a rate Opus supports)."),
        bit_depth: Optional[str] = typer.Option(
            None, "--bit-depth", metavar="16|24|32f", help="Sample format of wav/flac stems (default 16; 32f: float, wav only)."
        ),
        clip_mode: str = typer.Option(
            "rescale", "--clip-mode", metavar="rescale|clamp|none",
            help="Stems beyond full scale: rescale every stem of the track by one factor so that none clips (and say so), "
            "clamp the samples, or write them as they are (float output only).",
        ),
        filename: str = typer.Option(
            DEFAULT_TEMPLATE, "--filename", metavar="TEMPLATE",
            help="Where each stem goes under OUTDIR: fields {track} (input name), {stem}, {ext}, {model}.",
        ),
        stems: Optional[str] = typer.Option(None, "--stems", metavar="a,b", help="Only these stems (comma-separated)."),
        two_stems: Optional[str] = typer.Option(
            None, "--two-stems", metavar="SOURCE", help="Two stems: SOURCE and no_SOURCE (the input minus it)."
        ),
        high_band: str = typer.Option(
            "share", "--high-band", metavar="share|SOURCE|drop",
            help="What the model cannot hear (above half its sample rate, and what its estimates miss): share it out "
            "over the sources so that the stems add up to the input, give the high band to SOURCE, or drop it "
            "(the model's own estimates).",
        ),
        shifts: int = typer.Option(
            1, "--shifts", min=1, metavar="N",
            help="Test-time augmentation: average N passes over the input shifted by random fractions of a window "
            "(N times slower; gain and cost in docs/separate.md).",
        ),
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
            precision=precision, overwrite=overwrite, as_json=as_json, clip_mode=clip_mode, filename=filename,
            two_stems=two_stems, high_band=high_band, shifts=shifts,
        )


@dataclass
class Plan:
    """One input that passed the checks, and the file each of its stems goes to."""

    path: Path
    targets: dict[str, Path]


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
    clip_mode: str = "rescale",
    filename: str = DEFAULT_TEMPLATE,
    two_stems: str | None = None,
    high_band: str = "share",
    shifts: int = 1,
) -> None:
    from rich.console import Console

    from ..errors import SepkitError
    from ..separation.defaults import check_precision_option
    from ..separation.naming import check_template
    from ..separation.output import check_clip_mode, output_subtype

    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    # every option, then every input, before the (slow) model load
    check_clip_mode(clip_mode, output_subtype(fmt, bit_depth))
    check_template(filename)
    check_precision_option(precision)
    if out_dir.exists() and not out_dir.is_dir():
        raise SepkitError(f"{out_dir}: the output folder is a file")
    files, results = _check_inputs(inputs)
    for result in results:
        _print_error(errors, result.error)
    from ..models import DEFAULT_MODEL, peek_header, resolve_model

    if not files:  # nothing to separate: no download, no model load
        _report(results, model_path or DEFAULT_MODEL, (model_path or DEFAULT_MODEL) == DEFAULT_MODEL, None, out_dir, as_json)
        raise typer.Exit(1)

    with download_progress(errors) as progress:
        resolved = resolve_model(model_path, progress=progress)
    is_default = resolved.name == DEFAULT_MODEL
    model_path = resolved.path
    sources = _header_sources(peek_header(model_path))
    plans: list[Plan] = []
    if sources is not None:  # a model file that says what it separates: the outputs are known now
        names, wanted = _stem_names(sources, stems, two_stems, high_band)
        plans = _plan(files, out_dir, filename, wanted, fmt, resolved.name or model_path.stem, overwrite, results, errors)
        if not plans:
            _report(results, model_path, is_default, None, out_dir, as_json)
            raise typer.Exit(1)

    from ..model import load_model

    model = load_model(model_path, device=device)
    names, wanted = _stem_names(model.sources, stems, two_stems, high_band)
    if sources is None:
        plans = _plan(files, out_dir, filename, wanted, fmt, resolved.name or model_path.stem, overwrite, results, errors)
    options = model.options(
        overlap=overlap, batch_size=batch_size, wiener=wiener, channel_mode=channel_mode, precision=precision,
        high_band=high_band, two_stems=two_stems, shifts=shifts,
    )
    if wiener:
        from ..separation.wiener import check_wiener

        check_wiener(model.representation, model.recipe.representation.type)
    errors.print(_describe(model, model_path, is_default), style="dim")
    errors.print(_hears(model, options), style="dim")
    if fmt == "opus":
        errors.print("opus: stems of inputs at rates other than 8, 12, 16, 24 or 48 kHz are written at 48 kHz", style="dim")

    results += _separate_all(model, plans, out_dir, fmt, bit_depth, overwrite, options, clip_mode, as_json, errors)
    _report(results, model_path, is_default, model, out_dir, as_json)
    if any(r.error is not None for r in results):
        raise typer.Exit(1)


@contextlib.contextmanager
def download_progress(console: object) -> Iterator[Callable[[int, int | None], None]]:
    """A ``progress(bytes_done, bytes_total)`` callback for model downloads: a rich bar on a
    terminal, else one line when a download starts."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(
        TextColumn("downloading the model"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=console, disable=not console.is_terminal, transient=True,  # type: ignore[attr-defined, arg-type]
    ) as bar:
        task = None

        def progress(done: int, total: int | None) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("download", total=total)
                if not console.is_terminal:  # type: ignore[attr-defined]
                    from .models import human_size

                    size = f" ({human_size(total)})" if total else ""
                    console.print(f"downloading the model{size} into the model cache", style="dim")  # type: ignore[attr-defined]
            bar.update(task, completed=done)

        yield progress


def _check_inputs(inputs: list[Path]) -> tuple[list[Path], list["FileResult"]]:
    """The readable audio files among the inputs, and a one-line error for every other input."""
    from ..errors import SepkitError
    from ..separation.files import FileResult, expand_inputs
    from ..separation.reader import probe

    files, results = expand_inputs(inputs)
    usable = []
    for path in files:
        try:
            probe(path)
            usable.append(path)
        except SepkitError as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            results.append(FileResult(path, error=message if message.startswith(str(path)) else f"{path}: {message}"))
    return usable, results


def _header_sources(header: dict[str, str]) -> list[str] | None:
    try:
        sources = json.loads(header["sources"])
    except (KeyError, ValueError):
        return None
    return [str(s) for s in sources] if isinstance(sources, list) and sources else None


def _stem_names(sources: list[str], stems: str | None, two_stems: str | None, high_band: str) -> tuple[list[str], list[str]]:
    """What the model's outputs will be called and which of them are written; option errors name the sources."""
    from ..errors import SepkitError
    from ..separation.defaults import HIGH_BAND_MODES

    if high_band not in HIGH_BAND_MODES and high_band not in sources:
        raise SepkitError(f"--high-band {high_band}: expected share, drop or one of the sources ({', '.join(sources)})")
    if two_stems is not None and two_stems not in sources:
        raise SepkitError(f"--two-stems {two_stems}: not a source of this model ({', '.join(sources)})")
    names = list(sources) if two_stems is None else [two_stems, f"no_{two_stems}"]
    return names, _parse_stems(stems, names)


def _plan(
    files: list[Path], out_dir: Path, template: str, stems: list[str], fmt: str, model_name: str,
    overwrite: bool, results: list["FileResult"], errors: object,
) -> list[Plan]:
    """The stem files of every input, checked before anything is separated: an existing file
    (without --overwrite), an input, a folder in the way, or a file another input of this call
    writes too is an error for that input."""
    from ..errors import SepkitError
    from ..separation.files import FileResult
    from ..separation.naming import stem_targets, track_names
    from ..separation.output import check_target

    protected = frozenset(p.resolve() for p in files)
    tracks = track_names(files)
    claimed: dict[Path, Path] = {}
    plans = []
    for path in files:
        targets = stem_targets(out_dir, template, track=tracks[path], stems=stems, ext=fmt, model=model_name)
        taken = next((t for t in targets.values() if t.resolve() in claimed), None)
        error = None
        if taken is not None:
            error = (
                f"{path}: its output {taken} is already used by {claimed[taken.resolve()]} "
                "(separate it in another call, with another -o, or a --filename with {track} in it)"
            )
        else:
            try:
                for target in targets.values():
                    check_target(target, overwrite=overwrite, protected=protected)
            except SepkitError as exc:
                error = f"{path}: {exc}"
        if error is not None:
            results.append(FileResult(path, error=error))
            _print_error(errors, error)
            continue
        claimed.update({t.resolve(): path for t in targets.values()})
        plans.append(Plan(path, targets))
    return plans


def _parse_stems(stems: str | None, names: list[str]) -> list[str]:
    from ..errors import SepkitError

    if stems is None:
        return list(names)
    wanted = [s.strip() for s in stems.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in names]
    if not wanted or unknown:
        raise SepkitError(
            f"--stems {stems!r}: {'unknown stem(s) ' + ', '.join(unknown) if unknown else 'no stem named'}; "
            f"this model separates {', '.join(names)}"
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


def _hears(model: "Model", options: "EngineOptions") -> str:
    """The one line that says what the model hears and what happens to the rest."""
    nyquist = model.sample_rate // 2
    if model.channels == 1:
        channels = "the mean of the channels" if options.channel_mode == "downmix" else "each channel on its own"
    else:
        channels = f"{model.channels} channels"
    heard = f"the model hears 0-{nyquist} Hz ({model.sample_rate} Hz, {channels})"
    if options.high_band == "drop":
        rest = f"nothing above {nyquist} Hz is kept and the stems need not add up to the input (--high-band drop)"
    elif options.high_band == "share":
        rest = (
            f"the rest of the input is shared out over the sources by their {nyquist // 2}-{nyquist} Hz power, "
            "so the stems add up to the input (--high-band share)"
        )
    else:
        rest = (
            f"everything above {nyquist} Hz goes to {options.high_band}, what the estimates miss below it is shared "
            f"out by power, so the stems add up to the input (--high-band {options.high_band})"
        )
    return f"{heard}; {rest}"


def _separate_all(
    model: "Model",
    plans: list[Plan],
    out_dir: Path,
    fmt: str,
    bit_depth: str | None,
    overwrite: bool,
    options: "EngineOptions",
    clip_mode: str,
    as_json: bool,
    errors: object,
) -> list["FileResult"]:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from ..separation.files import FileResult, separate_file

    protected = frozenset(plan.path.resolve() for plan in plans)
    results: list[FileResult] = []
    show = errors.is_terminal and not as_json  # type: ignore[attr-defined]
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
        console=errors, disable=not show, transient=True,  # type: ignore[arg-type]
    ) as progress:
        overall = progress.add_task("all files", total=len(plans))
        for index, plan in enumerate(plans):
            task = progress.add_task(plan.path.name, total=None)
            result = separate_file(
                model, plan.path, out_dir, stems=list(plan.targets), fmt=fmt, bit_depth=bit_depth, overwrite=overwrite,
                options=options, protected=protected, targets=plan.targets, clip_mode=clip_mode,
                progress=lambda done, total, _task=task: progress.update(_task, completed=done, total=total),
            )
            progress.remove_task(task)
            if result.error is not None:
                _print_error(errors, result.error)
            elif result.gain != 1.0:
                errors.print(
                    f"{plan.path}: every stem scaled by {20 * math.log10(result.gain):.2f} dB so that none clips "
                    "(--clip-mode rescale; clamp keeps the level and clips the peaks)",
                )
            results.append(result)
            progress.advance(overall)
            if result.disk_full:  # every further file would fail the same way: stop, and say what was done
                rest = [p.path for p in plans[index + 1 :]]
                results.extend(FileResult(p, error="not attempted: no space left on the output device", skipped=True) for p in rest)
                done = sum(r.error is None for r in results)
                _print_error(errors, f"no space left on the device of {out_dir}: stopped after {done} file(s) separated, "
                             f"{len(rest)} not attempted (the stems written are kept); free some space and separate the rest")
                break
    return results


def _report(
    results: list["FileResult"], model_path: "Path | str", is_default: bool, model: "Model | None", out_dir: Path, as_json: bool
) -> None:
    if as_json:
        typer.echo(json.dumps(
            {
                "model": str(model_path),
                "default_model": is_default,
                "device": None if model is None else str(model.device),
                "output": str(out_dir),
                "files": [r.as_json() for r in results],
                "failed": sum(r.error is not None for r in results),
            },
            indent=2,
        ))
    else:
        _print_table(results)


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
