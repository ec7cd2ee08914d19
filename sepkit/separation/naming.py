"""Where stems go: ``--filename`` templates and the ``{track}`` name of each input (no torch import:
the command checks them before loading the model)."""

from __future__ import annotations

import string
from pathlib import Path

from ..errors import SepkitError

#: ``--filename``: where each stem goes under the output folder.
DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
#: The fields a template may use: the input's name without its extension, the stem's name, the
#: output format's extension, the model's name (a registered name, else its file name).
TEMPLATE_FIELDS = ("track", "stem", "ext", "model")


def check_template(template: str) -> str:
    """A ``--filename`` template checked before anything slow: known fields only, ``{stem}`` in it
    (or the stems would overwrite each other), a relative path that stays inside the output folder."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise SepkitError(f"--filename {template!r}: {exc}") from None
    unknown = [f for f in fields if f not in TEMPLATE_FIELDS]
    if unknown:
        raise SepkitError(
            f"--filename {template!r}: unknown field {{{unknown[0]}}}; use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
        )
    if "stem" not in fields:
        raise SepkitError(f"--filename {template!r}: needs {{stem}}, or every stem would go to the same file")
    sample = Path(template.format(track="t", stem="s", ext="wav", model="m"))
    if sample.is_absolute() or ".." in sample.parts or not sample.name or template.endswith(("/", "\\")):
        raise SepkitError(f"--filename {template!r}: must be a file path inside the output folder (no leading /, no ..)")
    return template


def track_names(files: list[Path]) -> dict[Path, str]:
    """Each file's ``{track}``: its name without the extension; files of one call that share a name
    but not an extension (``x.flac`` and ``x.ogg``) get ``x-flac`` and ``x-ogg``, so that both are
    separated. (Files that share name and extension keep the plain name: the first one claims it.)"""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(path.stem, []).append(path)
    names = {}
    for group in groups.values():
        suffixes = [p.suffix.lower() for p in group]
        distinct = len(group) > 1 and len(set(suffixes)) == len(group)
        for path, suffix in zip(group, suffixes):
            names[path] = f"{path.stem}-{suffix.lstrip('.')}" if distinct else path.stem
    return names


def stem_targets(out_dir: Path, template: str, *, track: str, stems: list[str], ext: str, model: str) -> dict[str, Path]:
    """stem -> output file for one input."""
    return {stem: Path(out_dir) / template.format(track=track, stem=stem, ext=ext, model=model) for stem in stems}
