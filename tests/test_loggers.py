"""Training loggers: the contract of every registered logger, the built-ins' files, the trainer
talking to loggers (not files), and the errors of unknown, failing or uninstalled loggers."""

from __future__ import annotations

import csv
import json
import math
import sys

import pytest

import sepkit
from sepkit.errors import PluginError, SepkitError
from sepkit.plugins import registry, use_plugins
from sepkit.testing import check_logger
from sepkit.testing.logger import METRICS, VALIDATION
from sepkit.training.journal import read_jsonl
from sepkit.training.loggers import Loggers, RunInfo, TrainingLogger, flatten
from test_training import load, make_trainer, tiny_data  # noqa: F401  (fixture)


@pytest.mark.parametrize("name", registry("logger").names())
def test_every_registered_logger_keeps_the_contract(name, tmp_path):
    cls = registry("logger").get(name).cls
    try:
        cls()
    except SepkitError as exc:  # an optional package that is not installed (tensorboard)
        pytest.skip(str(exc))
    check_logger(cls, tmp_path)


def test_the_builtins_are_registered_through_the_sepkit_entry_points():
    for name in ("jsonl", "csv", "tensorboard"):
        entry = registry("logger").get(name)
        assert entry.provider.distribution == "sepkit" and entry.provider.plugin == "loggers"
        assert issubclass(entry.cls, TrainingLogger)


def test_jsonl_writes_one_json_object_a_line_and_drops_replayed_records_on_resume(tmp_path):
    run = check_logger(registry("logger").get("jsonl").cls, tmp_path)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    # the first run's 4 records, the resumed run's after step 2 (the first run's 3 at step 2 kept)
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 2, 2, 3, 4, 4, 4]
    assert lines[0] == ('{"step": 1, "epoch": 1, "examples_per_second": 120.5, "updates_per_second": 2.5, '
                        '"learning_rate": 5e-05, "loss.supervised": 0.25, "loss.adversarial": -0.5, '
                        '"loss.adversarial.vocals": -0.5, "divergence.vocals": 0.125, "grad_norm.separator": 1.5}')
    assert lines[1] == '{"step": 2, "epoch": 1, "event": "nonfinite", "count": 1}'
    assert '"loss.supervised": null, "loss.adversarial": "inf", "loss.adversarial.vocals": "-inf"' in lines[2]
    validation = read_jsonl(run / "validation.jsonl")
    assert [v["step"] for v in validation] == [2, 4, 6] and validation[0]["subsets"]["field"]["sdr"]["vocals"] == 1.0


def test_csv_flattens_records_widens_its_header_and_drops_replayed_rows_on_resume(tmp_path):
    run = check_logger(registry("logger").get("csv").cls, tmp_path)
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 2, 2, 3, 4, 4, 4]
    assert list(rows[0])[:5] == ["step", "epoch", "examples_per_second", "updates_per_second", "learning_rate"]
    assert list(rows[0])[-3:] == ["event", "count", "rollbacks"]  # added by the first event, older rows empty
    assert rows[0]["event"] == "" and rows[1]["event"] == "nonfinite" and rows[1]["loss.supervised"] == ""
    assert float(rows[0]["learning_rate"]) == 5e-5 and float(rows[0]["divergence.vocals"]) == 0.125
    assert math.isnan(float(rows[2]["loss.supervised"])) and float(rows[2]["loss.adversarial.vocals"]) == -math.inf
    with open(run / "validation.csv", newline="") as handle:
        validation = list(csv.DictReader(handle))
    assert [int(v["step"]) for v in validation] == [2, 4, 6]
    first = validation[0]
    assert float(first["sdr.accompaniment"]) == 4.5 and float(first["subsets.field.sdr.vocals"]) == 1.0
    assert first["best"] == "true" and first["best_by"] == "validation-loss;last" and validation[2]["loss"] == ""


def test_csv_leaves_out_a_row_torn_by_a_kill(tmp_path):
    cls = registry("logger").get("csv").cls
    run = check_logger(cls, tmp_path)
    path = run / "metrics.csv"
    whole = path.read_text()
    path.write_text(whole + "5,1,12")  # an append cut short
    logger = cls()
    logger.start(RunInfo(run, "x", None, None))
    logger.log_metrics({"step": 5, "epoch": 2, "loss.supervised": 0.5})
    logger.close()
    assert path.read_text().startswith(whole) and path.read_text().splitlines()[-1].startswith("5,2,")


def test_flatten_joins_nested_keys():
    assert flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}}) == {"a": 1, "b.c": 2, "b.d.e": 3}
    assert flatten({"b": {"c": 2}}, "/") == {"b/c": 2}


def test_tensorboard_writes_scalars_and_purges_replayed_steps_on_resume(tmp_path):
    pytest.importorskip("tensorboard", reason='optional: pip install -e ".[tensorboard]"')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = check_logger(registry("logger").get("tensorboard").cls, tmp_path)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/supervised", "loss/adversarial/vocals", "learning_rate", "validation/loss",
            "validation/sdr/vocals", "validation/subsets/field/sdr/vocals", "events/nonfinite/count",
            "events/rollback/rollbacks"} <= tags
    assert not {t for t in tags if t.endswith("step") or t.endswith("epoch") or "best" in t}
    steps = [e.step for e in events.Scalars("loss/supervised")]
    assert steps == [1, 2, 3, 4]
    # resumed after step 2: the first run's validation at step 4 is purged, the resumed run's kept
    assert [e.step for e in events.Scalars("validation/seconds")] == [2, 4, 6]
    assert [e.value for e in events.Scalars("validation/seconds")] == [3.5, 3.5, 3.0]
    assert events.Scalars("loss/adversarial/vocals")[0].value == -0.5


def test_tensorboard_missing_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(SepkitError) as info:
        Loggers(["jsonl", "tensorboard"])
    message = str(info.value)
    assert "\n" not in message and message.startswith('training.loggers names "tensorboard", which needs the tensorboard package')
    assert 'pip install -e ".[tensorboard]"' in message


def test_a_missing_tensorboard_stops_sepkit_run_before_any_data_is_loaded(tmp_path, tiny_data, monkeypatch, run_cli):
    from test_training import tiny_recipe

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_recipe(tiny_data, loggers='["jsonl", "tensorboard"]'))
    result = run_cli("run", recipe, "-o", tmp_path / "runs", "--variant", "baseline", "--no-evaluate")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith('error: training.loggers names "tensorboard"')
    assert not (tmp_path / "runs" / "baseline" / "metrics.jsonl").exists()


def test_unknown_or_repeated_logger_names_are_one_line_errors(tmp_path, tiny_data):
    with pytest.raises(SepkitError, match=r"^training\.loggers: unknown logger 'wandb'; registered: csv, jsonl, tensorboard$"):
        make_trainer(load(tmp_path, tiny_data, variant="baseline", loggers='["wandb"]'), tmp_path / "run", "baseline")
    with pytest.raises(SepkitError, match=r"^training\.loggers names 'csv' twice$"):
        Loggers(["csv", "jsonl", "csv"])


class Recording(TrainingLogger):
    """A third-party logger: remembers every call."""

    calls: list[tuple[str, object]] = []

    def start(self, run: RunInfo) -> None:
        type(self).calls.append(("start", (run.folder.name, run.variant, run.resumed_at, run.recipe.name)))

    def log_metrics(self, record):
        type(self).calls.append(("metrics", record["step"]))

    def log_validation(self, record):
        type(self).calls.append(("validation", record["step"]))

    def close(self) -> None:
        type(self).calls.append(("close", None))


class Failing(Recording):
    def log_validation(self, record):
        raise RuntimeError("no connection")


def logger_plugin():
    module = type(sys)("recording_loggers")

    def register_loggers(register):
        register("recording", Recording)
        register("failing", Failing)

    module.register_loggers = sepkit.hookimpl(register_loggers)
    return module


def test_the_trainer_talks_to_a_plugins_logger_and_resumes_it(tmp_path, tiny_data):
    Recording.calls = []
    with use_plugins(logger_plugin(), entry_points=True):  # the recipe names the plugin's logger: load it inside
        recipe = load(tmp_path, tiny_data, variant="baseline", loggers='["recording", "csv"]')
        assert make_trainer(recipe, tmp_path / "run", "baseline").fit(stop_after_updates=4).stopped_by == "interrupted"
        make_trainer(recipe, tmp_path / "run", "baseline").fit(resume=True)
    assert Recording.calls == [
        ("start", ("run", "baseline", None, "tiny")), ("metrics", 1), ("metrics", 2), ("metrics", 3), ("validation", 3),
        ("metrics", 4), ("close", None),
        ("start", ("run", "baseline", 4, "tiny")), ("metrics", 5), ("metrics", 6), ("validation", 6), ("close", None),
    ]
    # no jsonl logger: no metrics.jsonl and no curves; the csv holds every update once
    assert not (tmp_path / "run" / "metrics.jsonl").exists() and not (tmp_path / "run" / "training-curves.png").exists()
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [1, 2, 3, 4, 5, 6]


def test_csv_and_jsonl_hold_the_same_records_of_a_run(tmp_path, tiny_data):
    out = tmp_path / "run"
    make_trainer(load(tmp_path, tiny_data, loggers='["jsonl", "csv"]'), out).fit()
    for name in ("metrics", "validation"):
        records = [flatten(r) for r in read_jsonl(out / f"{name}.jsonl")]
        with open(out / f"{name}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == len(records) == {"metrics": 6, "validation": 2}[name]
        for record, row in zip(records, rows):
            for key, value in record.items():
                if isinstance(value, float):
                    assert float(row[key]) == value, key
                elif isinstance(value, list):
                    assert row[key] == ";".join(value), key
                elif not isinstance(value, bool):
                    assert row[key] == str(value), key


def test_a_failing_logger_is_named_and_stops_training(tmp_path, tiny_data):
    Failing.calls = []
    with use_plugins(logger_plugin(), entry_points=True):
        recipe = load(tmp_path, tiny_data, variant="baseline", loggers='["failing"]', max_epochs=1)
        with pytest.raises(PluginError, match=r"^logger 'failing' of plugin 'recording_loggers' .* failed in "
                                              r"log_validation: RuntimeError: no connection$"):
            make_trainer(recipe, tmp_path / "run", "baseline").fit()
    assert Failing.calls[-1] == ("close", None)  # closed all the same


def test_a_resumed_run_logs_every_update_once_to_tensorboard(tmp_path, tiny_data):
    pytest.importorskip("tensorboard", reason='optional: pip install -e ".[tensorboard]"')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = load(tmp_path, tiny_data, variant="baseline", loggers='["tensorboard"]')
    make_trainer(recipe, tmp_path / "run", "baseline").fit(stop_after_updates=5)
    make_trainer(recipe, tmp_path / "run", "baseline").fit(resume=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/supervised")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events.Scalars("validation/loss")] == [3, 6]
