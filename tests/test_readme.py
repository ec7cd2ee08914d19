"""CI must install and test exactly as the README says; the CLI must start quickly."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import REPO


def test_ci_runs_the_readme_commands():
    readme = (REPO / "README.md").read_text()
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```\n")[1::2]]
    install, test = blocks[0], blocks[1]
    assert install.startswith("pip install torch==2.13.0")
    assert "-U" not in install.split() and "--upgrade" not in install
    assert install in ci and test in ci


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from sepkit.cli.main import build_app; build_app(); "
        "heavy = [m for m in ('torch', 'librosa', 'museval', 'numpy', 'soundfile') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"`sepkit --help` imports {out.stdout.strip()}"


def test_help_answers(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in ("run", "separate", "evaluate", "plugins", "recipe"):
        assert command in result.stdout
