"""``tensorboard``: TensorBoard event files in ``<run folder>/tensorboard/`` (torch.utils.tensorboard).

TensorBoard is an optional extra (``pip install -e ".[tensorboard]"``): this logger registers
without it, and a recipe that names it gets a one-line error before any data is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sepkit.errors import SepkitError
from sepkit.training.loggers import RunInfo, TrainingLogger, flatten

FOLDER = "tensorboard"
MISSING = (
    'training.loggers names "tensorboard", which needs the tensorboard package: '
    'pip install -e ".[tensorboard]" in a sepkit checkout, or pip install tensorboard'
)


def scalars(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """A record's numbers as TensorBoard tags (``loss.adversarial.vocals`` -> ``loss/adversarial/vocals``),
    less ``step`` and ``epoch`` (the x axis); flags, names and lists are left out."""
    flat = flatten({k: v for k, v in record.items() if k not in ("step", "epoch")}, "/")
    return {
        prefix + key.replace(".", "/"): float(value)
        for key, value in flat.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


class TensorBoardLogger(TrainingLogger):
    """One event stream per run: ``tensorboard --logdir runs/`` shows every variant side by side."""

    def __init__(self) -> None:
        try:  # optional: imported here so that the logger is listed (and the CLI starts) without it
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise SepkitError(MISSING) from None
        self._writer_class = SummaryWriter
        self.writer: Any = None

    def start(self, run: RunInfo) -> None:
        # a resumed run purges the interrupted run's events after its state: they are logged again
        purge = None if run.resumed_at is None else run.resumed_at + 1
        self.writer = self._writer_class(log_dir=str(run.folder / FOLDER), purge_step=purge)

    def log_metrics(self, record: Mapping[str, Any]) -> None:
        prefix = f"events/{record['event']}/" if "event" in record else ""
        for tag, value in scalars(record, prefix).items():
            self.writer.add_scalar(tag, value, global_step=record["step"])

    def log_validation(self, record: Mapping[str, Any]) -> None:
        for tag, value in scalars(record, "validation/").items():
            self.writer.add_scalar(tag, value, global_step=record["step"])
        self.writer.flush()  # an epoch's end: what TensorBoard shows is up to date

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
