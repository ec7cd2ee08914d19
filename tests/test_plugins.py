"""Plugin discovery, registries and their errors."""

from __future__ import annotations

import json
import os
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


def fake_distribution(folder, name: str, entry_points: str, version: str = "1.0"):
    """An installed distribution of ``name`` whose ``sepkit`` entry points are ``entry_points``."""
    dist = folder / f"{name}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[sepkit]\n{entry_points}\n")
    return folder


def test_a_plugin_whose_import_fails_is_a_one_line_warning_and_every_command_still_works(tmp_path):
    """An installed distribution whose entry point cannot be imported: one warning line naming it
    and its error; the command runs (exit 0) with every other plugin."""
    fake_distribution(tmp_path, "brokenplugin", "broken = sepkit_missing_module_xyz")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "sepkit.cli.main", "plugins", "--json"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("warning: plugin 'broken' from brokenplugin 1.0 failed to import")
    assert "ModuleNotFoundError" in lines[0] and lines[0].endswith("; skipped")
    assert "Traceback" not in result.stderr
    assert BUILTINS <= {(r["kind"], r["name"]) for r in json.loads(result.stdout)}


def test_the_skipped_plugin_is_listed_with_its_error(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(fake_distribution(tmp_path, "brokenplugin", "broken = sepkit_missing_module_xyz")))
    with use_plugins(entry_points=True) as system:
        assert "unet" in registry("separator")
        from sepkit.cli.plugins import plugin_rows

        rows = {r["plugin"]: r for r in plugin_rows(system)}
    assert rows["broken"]["distribution"] == "brokenplugin" and "ModuleNotFoundError" in rows["broken"]["error"]
    assert rows["unet"]["hooks"] == ["register_separators"] and rows["unet"]["error"] is None
    assert capsys.readouterr().err.count("warning: plugin 'broken'") == 1


def test_sepkit_load_plugins_limits_loading_to_the_named_distributions(tmp_path, monkeypatch, capsys):
    """As llm's LLM_LOAD_PLUGINS: named distributions only, sepkit's built-ins always, empty: built-ins only."""
    monkeypatch.syspath_prepend(str(fake_distribution(tmp_path, "brokenplugin", "broken = sepkit_missing_module_xyz")))
    monkeypatch.setenv("SEPKIT_LOAD_PLUGINS", "")
    system = PluginSystem(entry_points=True)
    assert {p.provider.distribution for p in system.loaded()} == {"sepkit"} and not system.failures
    assert BUILTINS <= {(kind, e.name) for kind in KINDS for e in system.registry(kind).entries()}
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("SEPKIT_LOAD_PLUGINS", "Brokenplugin, not_installed_xyz")
    system = PluginSystem(entry_points=True)
    assert [f.provider.plugin for f in system.failures] == ["broken"]
    assert {p.provider.distribution for p in system.loaded()} == {"sepkit"}
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "plugin 'broken' from brokenplugin" in err[0]
    assert err[1] == "warning: SEPKIT_LOAD_PLUGINS names 'not-installed-xyz', which is no installed distribution with sepkit plugins"


def test_a_plugin_whose_commands_fail_is_skipped_and_the_others_run(run_cli):
    def broken(app):
        raise RuntimeError("boom")

    with use_plugins(make_plugin("broken_commands", register_commands=broken), "sepkit_plugins.divergences"):
        result = run_cli("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == ("warning: plugin 'broken_commands' ((not installed) -) failed in register_commands: "
                                     "RuntimeError: boom; skipped")
    assert {(r["kind"], r["name"]) for r in json.loads(result.stdout)} == {
        ("divergence", "js"), ("divergence", "kl"), ("divergence", "wasserstein-gp")}


def test_plugins_lists_loggers_commands_and_each_distributions_hooks(run_cli):
    def commands(app):
        @app.command("hello-there")
        def hello() -> None:
            """Say hello."""

    with use_plugins(make_plugin("only_commands", register_commands=commands), "sepkit_plugins.loggers"):
        rows = json.loads(run_cli("plugins", "--json").stdout)
        hooks = {r["plugin"]: r["hooks"] for r in json.loads(run_cli("plugins", "--json", "--distributions").stdout)}
        table = run_cli("plugins").stdout
    assert {(r["kind"], r["name"]) for r in rows} == {
        ("logger", "jsonl"), ("logger", "csv"), ("logger", "tensorboard"), ("command", "hello-there")}
    assert hooks == {"only_commands": ["register_commands"], "sepkit_plugins.loggers": ["register_loggers"]}
    assert "plugins by distribution" in table and "register_commands" in table and "hello-there" in table
