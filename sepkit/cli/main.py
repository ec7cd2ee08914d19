"""Entry point of the ``sepkit`` command: builds the app and turns errors into one-line messages.

Start-up stays fast: command modules import torch, librosa and museval inside their functions.
"""

from __future__ import annotations

import importlib
import sys

import typer

from ..errors import SepkitError

#: Modules under sepkit.cli that each define ``register(app)``.
COMMAND_MODULES = ("plugins", "models", "recipe", "data", "run", "report", "separate", "evaluate")

state = {"debug": False}

HELP = """Audio source separation: train, evaluate and apply separators built from plugins.

Typical use:

  sepkit run recipes/demo.toml            train, evaluate and compare a recipe's variants
  sepkit separate song.wav -o separated/  split a song into stems
  sepkit plugins                          list every registered component

Add --debug before a command to see full tracebacks.
"""


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="sepkit",
        help=HELP,
        no_args_is_help=True,
        invoke_without_command=True,  # so that `sepkit --version` needs no command
        add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, powershell
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def _main(
        ctx: typer.Context,
        debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
        version: bool = typer.Option(False, "--version", "-V", help="Print the version and exit.", is_eager=True),
    ) -> None:
        if version:
            from .. import __version__

            typer.echo(f"sepkit {__version__}")
            raise typer.Exit()
        state["debug"] = debug
        if ctx.invoked_subcommand is None:  # `sepkit --debug` alone
            typer.echo(ctx.get_help())
            raise typer.Exit(2)

    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(app)
    from ..plugins import plugin_system

    plugin_system().add_commands(app)
    return app


def fail(message: str, code: int) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    state["debug"] = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app = build_app()
        app(args=argv, prog_name="sepkit")
    except SepkitError as exc:
        if state["debug"]:
            raise
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # a bug, not bad input: still one line unless --debug
        if state["debug"]:
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (run `sepkit --debug ...` for the traceback)", 1)


if __name__ == "__main__":
    main()
