"""The result store of an evaluation: ``DIR/<track key>.json`` per track and ``DIR/summary.json``.

Each record is written atomically as soon as its track is scored, so an interrupted evaluation
keeps what it finished; a rerun skips a track whose record was made by the same model, protocol
and backend (the store's ``identity``) and replaces one made otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..errors import SepkitError
from .results import SUMMARY_FILE, is_track_result, read_json, safe_name, write_json


class ResultStore:
    """Track records in ``folder``; ``identity`` is what a record must match to be reused."""

    def __init__(self, folder: Path, identity: Mapping[str, Any]) -> None:
        if folder.exists() and not folder.is_dir():
            raise SepkitError(f"{folder}: exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.identity = dict(identity)
        #: Every key handed out, in track order, with the subset it belongs to.
        self.keys: dict[str, str] = {}
        self.skipped = 0
        self.replaced = 0

    def key(self, name: str, subset: str) -> str:
        """The track's file stem: its name, or ``<subset>__<name>`` when a track of another subset
        already has that name (numbered if even that is taken). Keys depend on the order of the
        calls only, so every process of a sharded evaluation hands out the same ones."""
        key = base = safe_name(name)
        if key in self.keys and self.keys[key] != subset:
            key = base = safe_name(f"{subset}__{name}")
        counter = 2
        while key in self.keys and self.keys[key] != subset:
            key, counter = f"{base}-{counter}", counter + 1
        self.keys[key] = subset
        return key

    def previous(self, key: str, name: str, subset: str, *, with_estimates: bool) -> dict[str, Any] | None:
        """The record already stored for this track if it can be reused (counted as skipped);
        one made by another model, protocol or backend is counted as replaced."""
        existing = read_json(self.folder / f"{key}.json")
        reusable = (
            is_track_result(existing)
            and existing.get("track") == name  # type: ignore[union-attr]
            and (existing.get("subset") or "") == subset  # type: ignore[union-attr]
            and all(existing.get(k) == v for k, v in self.identity.items())  # type: ignore[union-attr]
            and not (with_estimates and not (self.folder / key).is_dir())
        )
        if reusable:
            self.skipped += 1
            return existing
        if existing is not None:
            self.replaced += 1
        return None

    def save(self, key: str, record: Mapping[str, Any]) -> None:
        write_json(self.folder / f"{key}.json", dict(record))

    def save_summary(self, summary: Mapping[str, Any]) -> None:
        write_json(self.folder / SUMMARY_FILE, dict(summary))


__all__ = ["ResultStore"]
