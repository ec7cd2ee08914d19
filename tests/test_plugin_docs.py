"""docs/plugins.md documents every hook, every hook is tested, and the page's example plugin works."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import json
import re
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sepkit import hookspecs
from sepkit.plugins import registry, use_plugins
from tests.conftest import REPO, minimal_recipe

DOC = REPO / "docs" / "plugins.md"
HOOK_MARKER = "sepkit_spec"  # the attribute pluggy's HookspecMarker("sepkit") sets


def hook_specs() -> dict[str, inspect.Signature]:
    """Every hook in sepkit/hookspecs.py, with its signature."""
    specs = {
        name: inspect.signature(function)
        for name, function in vars(hookspecs).items()
        if inspect.isfunction(function) and hasattr(function, HOOK_MARKER)
    }
    assert specs, "no hook specifications found in sepkit/hookspecs.py"
    return specs


def doc_sections() -> dict[str, str]:
    """docs/plugins.md split at its '### ' headings: heading text -> body."""
    parts = re.split(r"^### (.+)$", DOC.read_text(), flags=re.MULTILINE)
    return {heading.strip(): body for heading, body in zip(parts[1::2], parts[2::2])}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def hook_section(name: str) -> str:
    signature = f"{name}({', '.join(hook_specs()[name].parameters)})"
    sections = doc_sections()
    heading = f"`{signature}`"
    assert heading in sections, f"docs/plugins.md has no '### {heading}' section"
    return sections[heading]


# ------------------------------------------------------------------------------------ documented


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_has_a_section_with_its_signature_and_an_example(name):
    body = hook_section(name)
    assert any(f"def {name}(" in block for block in python_blocks(body)), (
        f"the section of {name} in docs/plugins.md has no example implementing it"
    )
    assert "@sepkit.hookimpl" in body


def test_the_hook_overview_table_lists_every_hook_and_only_those():
    text = DOC.read_text()
    table = text.split("## Tutorial", 1)[0]
    listed = set(re.findall(r"\[`(register_\w+)\(", table))
    assert listed == set(hook_specs())


def test_every_python_example_in_the_page_is_valid_python():
    for block in python_blocks(DOC.read_text()):
        ast.parse(block)


def test_the_page_names_the_entry_point_group_and_the_kit():
    text = DOC.read_text()
    assert "[project.entry-points.sepkit]" in text
    for name in ("check_representation", "check_separator", "check_critic", "check_divergence"):
        assert f"`{name}(" in text, f"docs/plugins.md does not document {name}"
    import sepkit.testing

    assert {n for n in sepkit.testing.__all__ if n.startswith("check_")} <= set(re.findall(r"`(check_\w+)\(", text))


# ------------------------------------------------------------------------------------ tested


#: Hooks whose tests live in this file: they run the page's own example (see below).
TESTED_HERE = {
    "register_datasets": "test_the_documented_dataset_plugin_lists_tracks_for_a_recipe",
    "register_commands": "test_the_documented_command_is_added_to_sepkit",
}


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_has_a_test(name):
    """Some test module or test plugin under tests/ implements the hook (or this file runs the page's example)."""
    if name in TESTED_HERE:
        assert callable(globals().get(TESTED_HERE[name])), f"{TESTED_HERE[name]} is missing"
        return
    pattern = re.compile(rf"def {name}\(|\b{name}=")
    this_file = Path(__file__).resolve()
    found = [
        path.relative_to(REPO).as_posix()
        for path in sorted((REPO / "tests").rglob("*.py"))
        if path.resolve() != this_file and pattern.search(path.read_text())
    ]
    assert found, f"no test under tests/ implements the hook {name}"


# ------------------------------------------------------------------------------------ the page's example plugin


def documented_plugin() -> types.ModuleType:
    """The complete plugin module in the register_datasets section, imported as a module."""
    blocks = [b for b in python_blocks(hook_section("register_datasets")) if "def register_datasets(" in b]
    assert len(blocks) == 1
    module = types.ModuleType("sepkit_csvlist_from_the_docs")
    exec(compile(blocks[0], str(DOC), "exec"), module.__dict__)
    return module


def every_installed_plugin() -> list[object]:
    return [entry.load() for entry in importlib.metadata.entry_points(group="sepkit")]


def write_listing(root: Path, rows: int = 2, seconds: float = 1.0, rate: int = 8000) -> Path:
    root.mkdir(parents=True)
    lines = ["name,mixture,vocals,accompaniment"]
    generator = np.random.default_rng(0)
    for index in range(rows):
        name = f"song{index}"
        vocals = 0.1 * generator.standard_normal(int(seconds * rate)).astype(np.float32)
        accompaniment = 0.1 * generator.standard_normal(int(seconds * rate)).astype(np.float32)
        for stem, audio in (("mix", vocals + accompaniment), ("vox", vocals), ("acc", accompaniment)):
            sf.write(root / f"{name}-{stem}.wav", audio, rate)
        lines.append(f"{name},{name}-mix.wav,{name}-vox.wav,{name}-acc.wav")
    (root / "tracks.csv").write_text("\n".join(lines) + "\n")
    return root / "tracks.csv"


def test_the_documented_dataset_plugin_lists_tracks_for_a_recipe(tmp_path, write_recipe, run_cli):
    write_listing(tmp_path / "listed", rows=2)
    data = '[[data.paired]]\ntype = "csv-list"\nroot = "listed"\nname = "listed"\n'
    recipe = write_recipe(minimal_recipe(data=data))
    with use_plugins(documented_plugin(), *every_installed_plugin()):
        assert registry("dataset").get("csv-list").cls.__name__ == "CsvList"
        result = run_cli("data", "inspect", recipe, "--json")
        assert result.exit_code == 0, result.stderr
        (row,) = json.loads(result.stdout)
        assert (row["role"], row["type"], row["dataset"], row["tracks"]) == ("paired", "csv-list", "listed", 2)
        assert row["seconds"] == pytest.approx(2.0) and row["sample_rates"] == [8000] and not row["failed"]

        bad = write_recipe(minimal_recipe(data=data.replace('name = "listed"', 'listin = "x.csv"')), "bad.toml")
        result = run_cli("recipe", "check", bad)
        assert result.exit_code == 2
        assert "data.paired[0].listin: unknown key (dataset 'csv-list')" in result.stderr

        missing = write_recipe(minimal_recipe(data=data.replace('"listed"\nname', '"nowhere"\nname')), "missing.toml")
        result = run_cli("data", "inspect", missing)
        assert result.exit_code == 1
        assert "csv-list: no listing" in result.stdout + result.stderr


def test_the_documented_command_is_added_to_sepkit(tmp_path, run_cli):
    listing = write_listing(tmp_path / "listed", rows=3)
    with use_plugins(documented_plugin()):
        assert "csv-list-check" in run_cli("--help").stdout
        result = run_cli("csv-list-check", listing)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == f"{listing}: 3 tracks, every file present"
        (tmp_path / "listed" / "song1-vox.wav").unlink()
        result = run_cli("csv-list-check", listing)
        assert result.exit_code == 1
        assert result.stderr.strip() == f"error: {listing}: 1 missing files: song1/vocals"
    assert "csv-list-check" not in run_cli("--help").stdout  # gone with the plugin
