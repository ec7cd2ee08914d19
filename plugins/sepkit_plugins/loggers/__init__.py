"""The ``jsonl``, ``csv`` and ``tensorboard`` training loggers (docs/components/loggers.md)."""

from sepkit import hookimpl


@hookimpl
def register_loggers(register):
    from .csv_logger import CsvLogger
    from .jsonl_logger import JsonlLogger
    from .tensorboard_logger import TensorBoardLogger

    register("jsonl", JsonlLogger)
    register("csv", CsvLogger)
    register("tensorboard", TensorBoardLogger)
