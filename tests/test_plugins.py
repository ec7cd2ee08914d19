"""Plugin discovery, registries and their errors."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

import sepkit
from sepkit.errors import PluginError
from sepkit.plugins import KINDS, PluginSystem, registry, use_plugins

BUILTINS = {
    ("representation", "magnitude-stft"),
    ("separator", "unet"),
    ("critic", "dcgan"),
    ("divergence", "wasserstein-gp"),
    ("divergence", "js"),
    ("divergence", "kl"),
    ("dataset", "stems"),
    ("dataset", "files"),
}


def make_plugin(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, sepkit.hookimpl(function))
    return module


def test_builtins_come_from_entry_points_of_the_sepkit_distribution():
    system = PluginSystem(entry_points=True)
    found = {(kind, e.name): e.provider for kind in KINDS for e in system.registry(kind).entries()}
    assert BUILTINS <= set(found)
    for key in BUILTINS:
        assert found[key].distribution == "sepkit"
        assert found[key].version == sepkit.__version__


def test_third_party_distribution_is_discovered_and_usable_in_a_recipe(write_recipe, run_cli):
    pytest.importorskip("sepkit_thirdparty_example", reason="install tests/fixtures/thirdparty (README)")
    entry = registry("divergence").get("least-squares")
    assert entry.provider.distribution == "sepkit-thirdparty-example"
    assert entry.provider.version == "0.0.1"
    from tests.conftest import minimal_recipe

    path = write_recipe(minimal_recipe() + '\n[divergence]\ntype = "least-squares"\nreal_target = 0.9\n')
    result = run_cli("recipe", "check", path)
    assert result.exit_code == 0, result.stderr
    bad = write_recipe(minimal_recipe() + '\n[divergence]\ntype = "least-squares"\nreal_taget = 0.9\n', "bad.toml")
    result = run_cli("recipe", "check", bad)
    assert result.exit_code == 2
    assert "divergence.real_taget: unknown key" in result.stderr


def test_plugins_json_lists_every_component_with_its_distribution(run_cli):
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert all(set(row) == {"kind", "name", "distribution", "version"} for row in rows)
    assert BUILTINS <= {(r["kind"], r["name"]) for r in rows}


def test_plugins_table(run_cli):
    result = run_cli("plugins")
    assert result.exit_code == 0
    for kind, name in BUILTINS:
        assert name in result.stdout and kind in result.stdout


def test_duplicate_registration_names_both_providers():
    def first(register):
        from sepkit_plugins.divergences.wasserstein import WassersteinGP

        register("same-name", WassersteinGP)

    def second(register):
        from sepkit_plugins.divergences.jensen_shannon import JensenShannon

        register("same-name", JensenShannon)

    a = make_plugin("plugin_a", register_divergences=first)
    b = make_plugin("plugin_b", register_divergences=second)
    with use_plugins(a, b):
        with pytest.raises(PluginError) as info:
            registry("divergence")
    message = str(info.value)
    assert "divergence 'same-name' is registered twice" in message
    assert "plugin_a" in message and "plugin_b" in message


def test_use_plugins_disables_autoloading():
    with use_plugins():
        assert all(len(registry(kind)) == 0 for kind in KINDS)
    with use_plugins("sepkit_plugins.divergences"):
        assert registry("divergence").names() == ["js", "kl", "wasserstein-gp"]
        assert len(registry("separator")) == 0
    assert "unet" in registry("separator")


def test_unknown_name_lists_registered_names():
    with pytest.raises(PluginError, match=r"unknown separator 'nope'; registered: .*unet"):
        registry("separator").get("nope")


def test_registering_a_non_subclass_or_a_bad_name_is_refused():
    bad_class = make_plugin("bad_class", register_separators=lambda register: register("thing", dict))
    with use_plugins(bad_class):
        with pytest.raises(PluginError, match="not a subclass of sepkit.separator.Separator"):
            registry("separator")

    def bad_name(register):
        from sepkit_plugins.divergences.jensen_shannon import JensenShannon

        register("Bad_Name", JensenShannon)

    with use_plugins(make_plugin("bad_name", register_divergences=bad_name)):
        with pytest.raises(PluginError, match="names are lowercase words joined by hyphens"):
            registry("divergence")


def test_a_hook_that_raises_names_the_plugin():
    def broken(register):
        raise RuntimeError("boom")

    with use_plugins(make_plugin("broken_plugin", register_critics=broken)):
        with pytest.raises(PluginError, match="broken_plugin.*register_critics: RuntimeError: boom"):
            registry("critic")


def test_a_plugin_whose_import_fails_gets_a_one_line_error(tmp_path):
    """An installed distribution whose entry point cannot be imported: one line, exit 3."""
    dist = tmp_path / "brokenplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sepkit]\nbroken = sepkit_missing_module_xyz\n")
    env = {"PYTHONPATH": str(tmp_path)}
    import os

    result = subprocess.run(
        [sys.executable, "-m", "sepkit.cli.main", "plugins"],
        capture_output=True, text=True, env={**os.environ, **env},
    )
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "plugin 'broken' from brokenplugin 1.0 failed to import" in lines[0]
    assert "ModuleNotFoundError" in lines[0]
    assert "Traceback" not in result.stderr
