"""The ``synthetic`` dataset plugin: generated two-source songs for demos and tests (no downloads)."""

from sepkit import hookimpl


@hookimpl
def register_datasets(register):
    from .dataset import SyntheticDataset

    register("synthetic", SyntheticDataset)
