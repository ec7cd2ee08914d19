"""Dataset layout plugins: ``stems`` (one folder per track) and ``files`` (a folder of recordings)."""

from sepkit import hookimpl


@hookimpl
def register_datasets(register):
    from .files import FilesDataset
    from .stems import StemsDataset

    register("stems", StemsDataset)
    register("files", FilesDataset)
