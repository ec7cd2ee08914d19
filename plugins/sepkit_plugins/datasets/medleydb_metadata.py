"""Reading MedleyDB's ``<Track>_METADATA.yaml`` without a YAML library.

The files use a small, regular subset of YAML: nested block mappings, ``key: value`` scalars
(plain or quoted), flow lists ``[a, b]`` and flow mappings ``{a: b}``, and occasionally block lists
(``- item``). This parser reads exactly that subset (values stay strings) and is checked against
PyYAML in the tests; PyYAML is not a dependency of sepkit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class MetadataError(ValueError):
    """A metadata file this parser cannot read."""


@dataclass(frozen=True)
class StemInfo:
    key: str
    filename: str
    instruments: tuple[str, ...]


@dataclass(frozen=True)
class TrackMetadata:
    stem_dir: str
    mix_filename: str
    instrumental: bool
    stems: tuple[StemInfo, ...]


def parse_track_metadata(text: str) -> TrackMetadata:
    """The fields sepkit uses from a MedleyDB metadata file."""
    data = parse_yaml_subset(text)
    if not isinstance(data, dict):
        raise MetadataError("the top level is not a mapping")
    stems_node = data.get("stems") or {}
    if not isinstance(stems_node, dict):
        raise MetadataError("'stems' is not a mapping")
    stems = []
    for key in sorted(stems_node):
        entry = stems_node[key]
        if not isinstance(entry, dict) or not entry.get("filename"):
            raise MetadataError(f"stems.{key} has no filename")
        instrument = entry.get("instrument", "")
        instruments = tuple(str(i) for i in instrument) if isinstance(instrument, list) else (str(instrument),)
        stems.append(StemInfo(key=str(key), filename=str(entry["filename"]), instruments=instruments))
    return TrackMetadata(
        stem_dir=str(data.get("stem_dir") or ""),
        mix_filename=str(data.get("mix_filename") or ""),
        instrumental=str(data.get("instrumental", "")).strip().lower() in ("yes", "true", "1"),
        stems=tuple(stems),
    )


def parse_yaml_subset(text: str) -> Any:
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = _strip_comment(raw).rstrip()
        if not stripped.strip() or stripped.strip() in ("---", "..."):
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise MetadataError(f"line {number}: tab indentation")
        lines.append((len(stripped) - len(stripped.lstrip(" ")), stripped.strip(), number))
    if not lines:
        return {}
    value, position = _block(lines, 0, lines[0][0])
    if position != len(lines):
        raise MetadataError(f"line {lines[position][2]}: unexpected indentation")
    return value


def _block(lines: list[tuple[int, str, int]], position: int, indent: int) -> tuple[Any, int]:
    if lines[position][1].startswith("- ") or lines[position][1] == "-":
        return _sequence(lines, position, indent)
    return _mapping(lines, position, indent)


def _mapping(lines: list[tuple[int, str, int]], position: int, indent: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while position < len(lines) and lines[position][0] == indent:
        _, content, number = lines[position]
        key, sep, rest = _split_key(content)
        if not sep:
            raise MetadataError(f"line {number}: expected 'key: value'")
        position += 1
        if rest:
            out[key] = _scalar(rest)
        elif position < len(lines) and (
            lines[position][0] > indent or (lines[position][0] == indent and lines[position][1].startswith("-"))
        ):
            out[key], position = _block(lines, position, lines[position][0])
        else:
            out[key] = ""
    if position < len(lines) and lines[position][0] > indent:
        raise MetadataError(f"line {lines[position][2]}: unexpected indentation")
    return out, position


def _sequence(lines: list[tuple[int, str, int]], position: int, indent: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    while position < len(lines) and lines[position][0] == indent and lines[position][1].startswith("-"):
        item = lines[position][1][1:].strip()
        position += 1
        out.append(_scalar(item) if item else "")
    return out, position


def _split_key(content: str) -> tuple[str, str, str]:
    if content[:1] in "'\"":
        quote = content[0]
        end = content.find(quote, 1)
        key, rest = content[1:end], content[end + 1 :]
        return (key, ":", rest[1:].strip()) if rest.startswith(":") else (key, "", "")
    key, sep, rest = content.partition(": ")
    if not sep and content.endswith(":"):
        return content[:-1].strip(), ":", ""
    return key.strip(), sep.strip(), rest.strip()


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return [_scalar(item) for item in _split_flow(text[1:-1])]
    if text.startswith("{") and text.endswith("}"):
        out = {}
        for item in _split_flow(text[1:-1]):
            key, _, value = _split_key(item)
            out[key] = _scalar(value)
        return out
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def _split_flow(text: str) -> list[str]:
    items, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and not current.strip():
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(current.strip())
            current = ""
            continue
        current += char
    if current.strip():
        items.append(current.strip())
    return items


def _strip_comment(line: str) -> str:
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and (index == 0 or line[index - 1] in " \t:[{,"):
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index]
    return line
