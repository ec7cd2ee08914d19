"""The ``synthetic`` dataset plugin: generated songs in stems (drums, bass, other, vocals) for demos and tests (no downloads)."""

from sepkit import hookimpl


@hookimpl
def register_datasets(register):
    from .dataset import SyntheticDataset

    register("synthetic", SyntheticDataset)
