"""Text for tables: byte counts, shapes, aligned columns. One place for ``net.summary()``,
``simplenn.display`` and ``DagNN.print``."""

import numpy as np


def bytes_text(count, *, space=True):
    """``512 B``, ``2.0 KB``, ``1.5 MB``, ... (powers of 1024); ``space=False`` gives
    MatConvNet's display style, ``2.0KB``."""
    gap = " " if space else ""
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f}{gap}{unit}" if unit == "B" else f"{count:.1f}{gap}{unit}"
        count /= 1024


def shape_text(shape, *, scalar="scalar", unknown=""):
    """``2×3×8×8``; ``scalar`` for the shape ``()``, ``unknown`` for None."""
    if shape is None:
        return unknown
    return "×".join(str(n) for n in shape) or scalar


def value_shape_text(value, *, unknown):
    """The shape of an array as :func:`shape_text` writes it (``unknown`` for None)."""
    return shape_text(None if value is None else np.shape(value), unknown=unknown)


def text_table(header, rows):
    """Left-aligned columns under ``header`` and a rule of dashes, as a list of lines."""
    table = [[str(cell) for cell in header]] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines
