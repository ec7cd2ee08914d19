"""``<root>/<track>/<source>.<ext>`` folders (placeholder until the data issue lands)."""

from __future__ import annotations

from pydantic import Field

from sepkit.component import ComponentConfig
from sepkit.dataset import Dataset
from sepkit.errors import NotImplementedComponentError


class StemsConfig(ComponentConfig):
    root: str = Field(description="Folder holding one sub-folder per track.")
    name: str = Field("", description="Subset label used in result tables.")


class StemsDataset(Dataset):
    Config = StemsConfig

    def tracks(self):
        raise NotImplementedComponentError("the stems dataset is not implemented yet")
