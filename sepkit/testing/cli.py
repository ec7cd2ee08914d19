"""Running the ``sepkit`` command in-process from tests (sepkit's own and plugin authors')."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from ..cli.main import main


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def invoke(*args: object) -> CliResult:
    """Run ``sepkit ARGS...`` as the console script does, capturing its output and exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())
