"""``sepkit separate``: split audio files into one file per source with a trained model.

Torch, soundfile and the engine are imported inside the command so that ``sepkit --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import typer

from ..separation.defaults import DEFAULT_OVERLAP, SEPARATE_COMMAND_PRECISION, check_precision_option
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
    # Long but flat: one declaration per option (what --help shows), then the checked request.
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
        jobs: int = typer.Option(
            1, "--jobs", "-j", min=1,
            help="Worker processes, each loading the model once and separating its share of the files with its share "
            "of the threads (under torchrun: per process; docs/scaling.md).",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the results as JSON instead of a table."),
    ) -> None:
        # every option is checked here, before any input is read or the model loads
        output = OutputOptions(out_dir=out_dir, fmt=fmt.lower(), bit_depth=bit_depth, clip_mode=clip_mode,
                               filename=filename, overwrite=overwrite)
        engine = {
            "overlap": overlap, "batch_size": batch_size, "wiener": wiener, "channel_mode": channel_mode,
            "precision": check_precision_option(precision), "high_band": high_band, "two_stems": two_stems, "shifts": shifts,
        }
        request = SeparateRequest(model=model_path, output=output, stems=stems, engine=engine, device=device, jobs=jobs,
                                  as_json=as_json)
        run_separate(inputs, request)


@dataclass(frozen=True)
class OutputOptions:
    """Where and how the stems are written; checked when made (before anything slow)."""

    out_dir: Path
    fmt: str = "wav"
    bit_depth: str | None = None
    clip_mode: str = "rescale"
    filename: str = DEFAULT_TEMPLATE
    overwrite: bool = False

    def __post_init__(self) -> None:
        from ..errors import SepkitError
        from ..separation.naming import check_template
        from ..separation.output import check_clip_mode, output_subtype

        check_clip_mode(self.clip_mode, output_subtype(self.fmt, self.bit_depth))
        check_template(self.filename)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise SepkitError(f"{self.out_dir}: the output folder is a file")


@dataclass(frozen=True)
class SeparateRequest:
    """What ``sepkit separate`` was asked. ``engine``: the keywords of :meth:`Model.options`, made
    into :class:`EngineOptions` (which checks them) once the model is known; ``stems``: ``a,b``."""

    model: str | Path | None
    output: OutputOptions
    stems: str | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    jobs: int = 1
    as_json: bool = False


@dataclass
class Plan:
    """One input that passed the checks, and the file each of its stems goes to."""

    path: Path
    targets: dict[str, Path]


def run_separate(inputs: list[Path], request: SeparateRequest) -> None:
    """Check the inputs, load the model once, separate this process's share of the files, report.

    Under torchrun every process checks and plans the same files (so the output names and the
    refusals agree), waits for the others, separates every ``WORLD_SIZE``-th plan from its ``RANK``
    on, and the first process prints the table of all.
    """
    from rich.console import Console

    from ..models import DEFAULT_MODEL
    from ..sharding import shard_from_environment

    shard = shard_from_environment()
    say = _Say(Console(stderr=True, highlight=False, soft_wrap=True), shard.is_main)
    files, results = _check_inputs(inputs)
    for result in results:
        say.error(result.error)
    named = request.model or DEFAULT_MODEL
    if not files:  # nothing to separate: no download, no model load
        _report(results, named, named == DEFAULT_MODEL, None, request, say)
        raise typer.Exit(1)
    model, plans, is_default = _load_and_plan(files, request, shard, results, say)
    from ..separation.engine import check_compatible

    options = model.options(**request.engine)  # the one check of the engine options...
    check_compatible(model.pipeline_spec(), options)  # ...and of whether they fit the model, before any file
    devices = _devices(request, shard)
    say.note(_describe(model, is_default, devices))
    say.note(_hears(model, options))
    if request.output.fmt == "opus":
        say.note("opus: stems of inputs at rates other than 8, 12, 16, 24 or 48 kHz are written at 48 kHz")
    shard.barrier()  # every process has checked its outputs before any process writes one
    job = FileJob(request.output, options, protected=frozenset(p.resolve() for p in files))
    done = _separate_all(model, shard.take(plans), job, request, devices, say)
    results += [r for part in shard.gather(done) for r in part]
    _report(results, model.path or named, is_default, devices, request, say)
    if any(r.error is not None for r in results):
        raise typer.Exit(1)


class _Say:
    """The console lines of a run; under torchrun only the first process prints what every process
    would print alike (the checks of the inputs, the model), each process its own files' failures."""

    def __init__(self, console: Any, is_main: bool) -> None:
        self.console, self.is_main = console, is_main

    def error(self, message: str | None, *, everywhere: bool = False) -> None:
        if self.is_main or everywhere:
            _print_error(self.console, message)

    def note(self, message: str, *, style: str | None = "dim") -> None:
        if self.is_main:
            self.console.print(message, style=style)


def _load_and_plan(
    files: list[Path], request: SeparateRequest, shard: Any, results: list["FileResult"], say: _Say
) -> tuple["Model", list[Plan], bool]:
    """Resolve (download) and load the model, and plan every input's stem files: before the model
    loads when the model file says what it separates, else right after."""
    from ..model import load_model
    from ..models import DEFAULT_MODEL, peek_header, resolve_model

    with download_progress(say.console) as progress:
        resolved = resolve_model(request.model, progress=progress)
    is_default = resolved.name == DEFAULT_MODEL
    name = resolved.name or resolved.path.stem
    sources = _header_sources(peek_header(resolved.path))
    plans: list[Plan] = []
    if sources is not None:  # a model file that says what it separates: the outputs are known now
        plans = _plan(files, request, sources, name, results, say)
        if not plans:
            _report(results, resolved.path, is_default, None, request, say)
            raise typer.Exit(1)
    # with worker processes the model here only answers questions: it stays on the CPU
    model = load_model(resolved.path, device=_devices(request, shard)[0] if request.jobs == 1 else "cpu")
    if sources is None:
        plans = _plan(files, request, model.sources, name, results, say)
    else:
        _stem_names(model.sources, request)
    return model, plans, is_default


def _devices(request: SeparateRequest, shard: Any) -> list[str]:
    """Where each worker separates (one entry without workers): ``--device``, the local rank's GPU
    under torchrun, several GPUs shared out round robin over ``--jobs`` workers."""
    from ..device import resolve_device
    from ..sharding import worker_devices

    device = shard.device(resolve_device(request.device))
    return worker_devices(device, request.jobs) if request.jobs > 1 else [str(device)]


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


def _stem_names(sources: list[str], request: SeparateRequest) -> list[str]:
    """The stems written (the sources, or a source and ``no_<source>``); option errors name the sources."""
    from ..errors import SepkitError
    from ..separation.defaults import HIGH_BAND_MODES

    high_band, two_stems = request.engine.get("high_band", "share"), request.engine.get("two_stems")
    if high_band not in HIGH_BAND_MODES and high_band not in sources:
        raise SepkitError(f"--high-band {high_band}: expected share, drop or one of the sources ({', '.join(sources)})")
    if two_stems is not None and two_stems not in sources:
        raise SepkitError(f"--two-stems {two_stems}: not a source of this model ({', '.join(sources)})")
    names = list(sources) if two_stems is None else [two_stems, f"no_{two_stems}"]
    return _parse_stems(request.stems, names)


def _plan(
    files: list[Path], request: SeparateRequest, sources: list[str], model_name: str, results: list["FileResult"],
    say: _Say,
) -> list[Plan]:
    """The stem files of every input, checked before anything is separated: an existing file
    (without --overwrite), an input, a folder in the way, or a file another input of this call
    writes too is an error for that input."""
    from ..errors import SepkitError
    from ..separation.files import FileResult
    from ..separation.naming import stem_targets, track_names
    from ..separation.output import check_target

    out = request.output
    stems = _stem_names(sources, request)
    protected = frozenset(p.resolve() for p in files)
    tracks = track_names(files)
    claimed: dict[Path, Path] = {}
    plans = []
    for path in files:
        targets = stem_targets(out.out_dir, out.filename, track=tracks[path], stems=stems, ext=out.fmt, model=model_name)
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
                    check_target(target, overwrite=out.overwrite, protected=protected)
            except SepkitError as exc:
                error = f"{path}: {exc}"
        if error is not None:
            results.append(FileResult(path, error=error))
            say.error(error)
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


def _describe(model: "Model", is_default: bool, devices: list[str]) -> str:
    separator = model.components.get("separator", {})
    provider = f" from {separator.get('distribution')} {separator.get('version')}" if separator else ""
    channels = "mono" if model.channels == 1 else f"{model.channels} channels"
    where = f"on {devices[0]}" if len(devices) == 1 else f"in {len(devices)} worker processes on {', '.join(sorted(set(devices)))}"
    return (
        f"model: {model.path}{' (the default model)' if is_default else ''}: {model.recipe.separator.type}{provider}, "
        f"sources {', '.join(model.sources)}, {model.sample_rate} Hz {channels}, {where}"
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


@dataclass(frozen=True)
class FileJob:
    """Separating one planned input into its stem files, the same in this process or a worker's."""

    output: OutputOptions
    options: "EngineOptions"
    protected: frozenset[Path] = frozenset()
    #: ``progress(plan) -> callback(frames_done, total)``, in this process only (not sent to workers).
    progress: Callable[[Plan], Callable[[int, int], object]] | None = field(default=None, compare=False)

    def run(self, model: "Model", plan: Plan) -> "FileResult":
        from ..separation.files import separate_file

        out = self.output
        return separate_file(
            model, plan.path, out.out_dir, stems=list(plan.targets), fmt=out.fmt, bit_depth=out.bit_depth,
            overwrite=out.overwrite, options=self.options, protected=self.protected, targets=plan.targets,
            clip_mode=out.clip_mode, progress=None if self.progress is None else self.progress(plan),
        )


def _separate_all(
    model: "Model", plans: list[Plan], job: FileJob, request: SeparateRequest, devices: list[str], say: _Say
) -> list["FileResult"]:
    """Separate ``plans`` here or in ``--jobs`` worker processes, in plan order in the returned list;
    a full disk stops the batch (the files not started are reported as not attempted)."""
    import dataclasses

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from ..separation.files import FileResult
    from ..sharding import model_source, pool_or_inline, worker_model

    show = say.console.is_terminal and not request.as_json
    done: dict[Path, FileResult] = {}
    bars: dict[Path, Any] = {}  # the bar of each file in progress (one process only)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
        console=say.console, disable=not show, transient=True,
    ) as bar:
        overall = bar.add_task("all files", total=len(plans))
        if request.jobs == 1:  # one bar per file, advancing as its stems are written
            job = dataclasses.replace(job, progress=lambda plan: _file_bar(bar, plan, bars))
        pool = pool_or_inline(request.jobs, len(plans), model, worker_model, (model_source(model),), devices=devices)
        with pool as runner:
            for finished in runner.run(job.run, plans):
                result = finished.result or FileResult(finished.item.path, error=f"{finished.item.path}: {finished.error}")
                done[finished.item.path] = result
                if finished.item.path in bars:
                    bar.remove_task(bars.pop(finished.item.path))
                _said(result, say)
                bar.advance(overall)
                if result.disk_full:
                    runner.stop()
    results = [done[p.path] for p in plans if p.path in done]
    rest = [p.path for p in plans if p.path not in done]
    if rest:
        results += [FileResult(p, error="not attempted: no space left on the output device", skipped=True) for p in rest]
        say.error(f"no space left on the device of {request.output.out_dir}: stopped after "
                  f"{sum(r.error is None for r in results)} file(s) separated, {len(rest)} not attempted (the stems "
                  "written are kept); free some space and separate the rest", everywhere=True)
    return results


def _file_bar(bar: Any, plan: Plan, bars: dict[Path, Any]) -> Callable[[int, int], object]:
    task = bars[plan.path] = bar.add_task(plan.path.name, total=None)
    return lambda done, total: bar.update(task, completed=done, total=total)


def _said(result: "FileResult", say: _Say) -> None:
    """One file's line: its error, or the gain every stem was scaled by so that none clips."""
    if result.error is not None:
        say.error(result.error, everywhere=True)
    elif result.gain != 1.0:
        say.console.print(
            f"{result.file}: every stem scaled by {20 * math.log10(result.gain):.2f} dB so that none clips "
            "(--clip-mode rescale; clamp keeps the level and clips the peaks)",
        )


def _report(
    results: list["FileResult"], model_path: "Path | str", is_default: bool, devices: list[str] | None,
    request: SeparateRequest, say: _Say,
) -> None:
    """The table (or ``--json``) of every file, by the first process only."""
    if not say.is_main:
        return
    if request.as_json:
        typer.echo(json.dumps(
            {
                "model": str(model_path),
                "default_model": is_default,
                "device": None if devices is None else ", ".join(sorted(set(devices))),
                "output": str(request.output.out_dir),
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
