"""Dataset layout plugins: plain stem folders (``stems``), folders of recordings (``files``), and
the multitrack sets of the paper (``musdb``, ``dsd100``, ``medleydb``, ``ikala``, ``ccmixter``).
See docs/datasets.md."""

from sepkit import hookimpl


@hookimpl
def register_datasets(register):
    from .ccmixter import CCMixterDataset
    from .dsd100 import Dsd100Dataset
    from .files import FilesDataset
    from .ikala import IKalaDataset
    from .medleydb import MedleyDBDataset
    from .musdb import MusdbDataset
    from .stems import StemsDataset

    register("stems", StemsDataset)
    register("files", FilesDataset)
    register("musdb", MusdbDataset)
    register("dsd100", Dsd100Dataset)
    register("medleydb", MedleyDBDataset)
    register("ikala", IKalaDataset)
    register("ccmixter", CCMixterDataset)
