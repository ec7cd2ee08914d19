"""A plain folder of audio files (placeholder until the data issue lands)."""

from __future__ import annotations

from pydantic import Field

from sepkit.component import ComponentConfig
from sepkit.dataset import Dataset
from sepkit.errors import NotImplementedComponentError


class FilesConfig(ComponentConfig):
    root: str = Field(description="Folder of audio files, one recording each.")
    name: str = Field("", description="Subset label used in result tables.")


class FilesDataset(Dataset):
    Config = FilesConfig

    def tracks(self):
        raise NotImplementedComponentError("the files dataset is not implemented yet")
