"""Which files make each stem a role needs, deriving the stems a layout does not store.

A stem is a signed sum of files (:class:`~sepkit.dataset.StemFile` with ``gain``). When a track
does not list a stem the role asks for:

* ``mixture`` = the sum of the role's sources (every source must be present);
* a source = ``mixture`` minus the role's other sources (the mixture and every other source must be
  present; only for roles with at least two sources, i.e. never for solo recordings).

Layouts that know better (DSD100's accompaniment is mixture - vocals, MedleyDB's is the sum of its
non-vocal stems) list the stem themselves, so these rules only fill the gaps.
"""

from __future__ import annotations

from ..dataset import MIXTURE, DatasetError, StemFile, Track

StemFiles = tuple[StemFile, ...]


def role_stems(role: str, sources: list[str], source: str | None = None) -> list[str]:
    """The stems a role's loaded tracks hold, in order: ``[mixture, *sources]`` for paired,
    validation and test; ``[mixture]`` for mixtures; ``[source]`` for solo recordings."""
    if role == "mixtures":
        return [MIXTURE]
    if role == "solo":
        if source is None:
            if len(sources) != 1:
                raise ValueError("the solo role needs its source")
            source = sources[0]
        return [source]
    return [MIXTURE, *sources]


def negate(files: StemFiles) -> StemFiles:
    return tuple(StemFile(f.path, f.channel, -f.gain) for f in files)


def resolve_stems(track: Track, wanted: list[str], sources: list[str]) -> dict[str, StemFiles]:
    """For each stem in ``wanted``, the signed files whose sum is that stem.

    ``sources`` are the role's sources (the dataset's ``sources``). Raises :class:`DatasetError`
    naming the track when a stem is neither stored nor derivable, or when the layout marked the
    track as unusable (``track.metadata["error"]``, e.g. a MedleyDB track without metadata).
    """
    if track.metadata.get("error"):
        raise DatasetError(f"track '{track.name}': {track.metadata['error']}")
    return {stem: _resolve(track, stem, sources) for stem in wanted}


def _resolve(track: Track, stem: str, sources: list[str]) -> StemFiles:
    if stem in track.stems:
        return tuple(track.stems[stem])
    have = ", ".join(track.stems) or "nothing"
    if stem == MIXTURE:
        missing = [s for s in sources if s not in track.stems]
        if not missing and sources:
            return tuple(f for s in sources for f in track.stems[s])
        raise DatasetError(
            f"track '{track.name}': no mixture, and it cannot be summed from the sources "
            f"({', '.join(missing)} missing; the track has {have})"
        )
    others = [s for s in sources if s != stem]
    if MIXTURE in track.stems and others and stem in sources and all(s in track.stems for s in others):
        return tuple(track.stems[MIXTURE]) + tuple(f for s in others for f in negate(tuple(track.stems[s])))
    raise DatasetError(f"track '{track.name}': no '{stem}' stem and no way to derive it (the track has {have})")
