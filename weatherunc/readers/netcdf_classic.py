"""Completeness of classic NetCDF files (CDF-1, CDF-2 and CDF-5), read from their header.

The netCDF library reads the missing end of a truncated classic file as zeros (or fill
values) without an error, so a cut file would pass for dry pixels. The header says where
each variable's data begin and how long they are; :func:`check_classic_complete` compares
that with the length of the file.

Reference: "The NetCDF Classic and 64-bit Offset File Formats" and the CDF-5 format
specification (Unidata / PnetCDF).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from weatherunc.errors import InputDataError

CLASSIC_SIGNATURE = b"CDF"

_DIMENSION_TAG, _VARIABLE_TAG, _ATTRIBUTE_TAG = 0x0A, 0x0B, 0x0C
#: Bytes per value of each external type (NC_BYTE ... NC_UINT64).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}


@dataclass(frozen=True)
class VariableExtent:
    """Where one variable's data lie in a classic file."""

    name: str
    begin: int
    end: int


@dataclass
class _Header:
    """Sequential big-endian reads of a classic header; integer width by format version."""

    handle: BinaryIO
    version: int = 1

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes; ``EOFError`` when the file ends first."""
        data = self.handle.read(count)
        if len(data) != count:
            raise EOFError(
                f"the file ends inside its header, before byte {self.handle.tell() + count - len(data)}"
            )
        return data

    def integer(self, width: int = 4) -> int:
        """An unsigned big-endian integer of ``width`` bytes."""
        return int.from_bytes(self.take(width), "big")

    def count(self) -> int:
        """A NON_NEG: 8 bytes in CDF-5, else 4."""
        return self.integer(8 if self.version == 5 else 4)

    def offset(self) -> int:
        """A variable's ``begin``: 4 bytes in CDF-1, 8 in CDF-2 and CDF-5."""
        return self.integer(4 if self.version == 1 else 8)

    def skip_padded(self, size: int) -> None:
        """Skip ``size`` bytes and the padding to the next multiple of 4."""
        self.take(size + (-size) % 4)

    def name(self) -> str:
        """A padded name."""
        length = self.count()
        text = self.take(length)
        self.take((-length) % 4)
        return text.decode("utf-8", errors="replace")

    def list_length(self, tag: int) -> int:
        """The element count of a tagged list (``ABSENT`` is tag 0 and count 0)."""
        found, length = self.integer(4), self.count()
        if found not in (0, tag) or (found == 0 and length != 0):
            raise ValueError(f"expected list tag {tag:#x}, found {found:#x}")
        return length

    def skip_attributes(self) -> None:
        """Skip an attribute list."""
        for _attribute in range(self.list_length(_ATTRIBUTE_TAG)):
            self.name()
            size = _type_size(self.integer(4))
            self.skip_padded(size * self.count())


def _type_size(code: int) -> int:
    if code not in _TYPE_SIZES:
        raise ValueError(f"unknown external type {code}")
    return _TYPE_SIZES[code]


def is_classic(path: Path) -> bool:
    """Whether ``path`` starts with the classic NetCDF signature ``CDF``."""
    with open(path, "rb") as handle:
        return handle.read(3) == CLASSIC_SIGNATURE


def classic_extents(path: Path) -> list[VariableExtent]:
    """Every variable's data extent ``[begin, end)`` in bytes, as the header of ``path`` gives it.

    Record variables end with their last record; when the record count is unknown (a file
    still being written, "streaming"), they are left out. Raises ``EOFError`` when the file
    ends inside its header and ``ValueError`` when the header is malformed.
    """
    with open(path, "rb") as handle:
        header = _Header(handle)
        signature = header.take(4)
        if signature[:3] != CLASSIC_SIGNATURE or signature[3] not in (1, 2, 5):
            raise ValueError(f"not a classic NetCDF file (signature {signature!r})")
        header.version = signature[3]
        records = header.count()
        streaming = records == (1 << (64 if header.version == 5 else 32)) - 1
        dimension_lengths = []
        for _dimension in range(header.list_length(_DIMENSION_TAG)):
            header.name()
            dimension_lengths.append(header.count())
        header.skip_attributes()
        variables = []
        for _variable in range(header.list_length(_VARIABLE_TAG)):
            name = header.name()
            dimensions = [header.count() for _dimension in range(header.count())]
            header.skip_attributes()
            size = _type_size(header.integer(4))
            header.count()  # vsize: recomputed below, since it saturates for very large variables
            begin = header.offset()
            if any(index >= len(dimension_lengths) for index in dimensions):
                raise ValueError(
                    f"variable {name!r} names dimension ids {dimensions} of {len(dimension_lengths)}"
                )
            shape = [dimension_lengths[index] for index in dimensions]
            is_record = bool(shape) and shape[0] == 0
            slab = size * math.prod(shape[1:] if is_record else shape)
            variables.append((name, begin, slab, is_record))
    record_variables = [variable for variable in variables if variable[3]]
    # One record variable: records follow each other unpadded; several: each slab is padded to 4 bytes.
    record_size = (
        record_variables[0][2]
        if len(record_variables) == 1
        else sum(slab + (-slab) % 4 for _, _, slab, _ in record_variables)
    )
    extents = []
    for name, begin, slab, is_record in variables:
        if not is_record:
            extents.append(VariableExtent(name, begin, begin + slab))
        elif not streaming and records > 0:
            extents.append(VariableExtent(name, begin, begin + (records - 1) * record_size + slab))
    return extents


def check_classic_complete(path: Path) -> None:
    """Raise :class:`InputDataError` (check ``file complete``) when the classic NetCDF file
    ``path`` is shorter than its header says its variables' data are."""
    length = path.stat().st_size
    try:
        extents = classic_extents(path)
    except EOFError as error:
        raise InputDataError(
            source=path,
            variable="<header>",
            check="file complete",
            detail=f"the file has {length} bytes: {error}",
        ) from error
    except ValueError as error:
        raise InputDataError(
            source=path,
            variable="<header>",
            check="readable file",
            detail=f"malformed classic NetCDF header: {error}",
        ) from error
    cut = sorted((extent for extent in extents if extent.end > length), key=lambda extent: extent.begin)
    if cut:
        first = cut[0]
        others = f"; {len(cut) - 1} more variables are cut" if len(cut) > 1 else ""
        raise InputDataError(
            source=path,
            variable=first.name,
            check="file complete",
            detail=(
                f"the file has {length} bytes, but its header places the data of {first.name!r} at bytes "
                f"{first.begin}-{first.end}: the file is truncated{others}"
            ),
        )
