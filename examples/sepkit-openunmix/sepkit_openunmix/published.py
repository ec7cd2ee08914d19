"""Open-Unmix's published music checkpoints: where they are, their hashes, sizes, shapes and terms.

Nothing here downloads anything. The URLs are those the ``openunmix`` 1.3.0 package loads
(``umxhq_spec``/``umxl_spec``); each file name carries the first 8 hex digits of the file's sha256
(torch.hub checks that prefix). The full sha256 of the four umxhq files is known from independent
records that downloaded them (each agrees with its file name's prefix); for umxl only the 8-digit
prefixes are published, so :attr:`PublishedFile.sha256` is None there and a conversion can only
recognise those files by their prefix (docs/pretrained.md says so).
"""

from __future__ import annotations

from dataclasses import dataclass

TARGETS = ("vocals", "drums", "bass", "other")


@dataclass(frozen=True)
class PublishedFile:
    target: str
    url: str
    #: Full sha256 where it could be verified, else None (only :attr:`prefix` is published).
    sha256: str | None
    size: int | None

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def prefix(self) -> str:
        """The hash prefix in the file name (``vocals-b62c91ce.pth`` -> ``b62c91ce``)."""
        return self.name.rsplit("-", 1)[-1].split(".")[0]


@dataclass(frozen=True)
class PublishedModel:
    name: str
    description: str
    record: str
    license: str
    hidden_size: int
    max_bin: int
    files: tuple[PublishedFile, ...]

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)


UMXHQ_LICENSE = (
    "umxhq weights: Zenodo record 10.5281/zenodo.3370489 (Stöter and Liutkus), licensed as that record "
    "states (MIT per its metadata); trained on MUSDB18-HQ, whose tracks carry their own terms"
)
UMXL_LICENSE = (
    "umxl weights: Zenodo record 10.5281/zenodo.5069601, CC BY-NC-SA 4.0: non-commercial use only "
    "(Open-Unmix README); trained on a private dataset of compressed stems"
)
UNKNOWN_LICENSE = "weights not recognised as a published Open-Unmix file: they carry the terms of whoever trained them"

_UMXHQ = "https://zenodo.org/records/3370489/files/"
_UMXL = "https://zenodo.org/records/5069601/files/"
#: Bytes of every umxhq target file (the four are the same size).
_UMXHQ_SIZE = 35_637_796

UMXHQ = PublishedModel(
    name="umxhq",
    description="Open-Unmix umxhq: vocals, drums, bass, other; stereo 44.1 kHz; trained on MUSDB18-HQ",
    record="https://doi.org/10.5281/zenodo.3370489",
    license=UMXHQ_LICENSE,
    hidden_size=512,
    max_bin=1487,
    files=(
        PublishedFile("vocals", _UMXHQ + "vocals-b62c91ce.pth",
                      "b62c91cedbc7a066f1778ead5b5cecb377aa3a46a31af1cce7c5c8769339d083", _UMXHQ_SIZE),
        PublishedFile("drums", _UMXHQ + "drums-9619578f.pth",
                      "9619578f885c54737cb0234f9f9a4a679ee4f31438fd77fd1dbe02bb16c2da0a", _UMXHQ_SIZE),
        PublishedFile("bass", _UMXHQ + "bass-8d85a5bd.pth",
                      "8d85a5bd3f996a8867fca0e8442e077e5a3f5ec747a6112742452a8f347b39c8", _UMXHQ_SIZE),
        PublishedFile("other", _UMXHQ + "other-b52fbbf7.pth",
                      "b52fbbf76479e752bd72e02304c602ac7802aa5bfbfb9cd12054b2695d5093ab", _UMXHQ_SIZE),
    ),
)

UMXL = PublishedModel(
    name="umxl",
    description="Open-Unmix umxl: vocals, drums, bass, other; stereo 44.1 kHz; non-commercial weights",
    record="https://doi.org/10.5281/zenodo.5069601",
    license=UMXL_LICENSE,
    hidden_size=1024,
    max_bin=1487,
    files=(
        PublishedFile("vocals", _UMXL + "vocals-bccbd9aa.pth", None, None),
        PublishedFile("drums", _UMXL + "drums-69e0ebd4.pth", None, None),
        PublishedFile("bass", _UMXL + "bass-2ca1ce51.pth", None, None),
        PublishedFile("other", _UMXL + "other-c8c5b3e6.pth", None, None),
    ),
)

PUBLISHED = (UMXHQ, UMXL)


@dataclass(frozen=True)
class Recognised:
    model: PublishedModel
    file: PublishedFile
    #: "sha256" (the full hash matched) or "prefix" (only the published 8-digit prefix could be checked).
    by: str


def recognise(sha256: str) -> Recognised | None:
    """The published file with this sha256 (full hash, else the file name's prefix), or None."""
    for model in PUBLISHED:
        for file in model.files:
            if file.sha256 is not None and file.sha256 == sha256:
                return Recognised(model, file, "sha256")
    for model in PUBLISHED:
        for file in model.files:
            if file.sha256 is None and sha256.startswith(file.prefix):
                return Recognised(model, file, "prefix")
    return None
