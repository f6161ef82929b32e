"""``net.summary()``: the table of a network's variables (MatConvNet's ``vl_simplenn_display``
for the implicit graph).

The table only gathers what lives elsewhere: shapes come from the ops' shape rules through
:func:`autonn.shapes.net_slot_shapes`, receptive fields from the ops' rules through
:mod:`autonn.receptive_fields`, and the text from :mod:`autonn.formatting`.
"""

import html

import numpy as np

from .formatting import bytes_text, shape_text, text_table
from .layer import Input, Param
from .receptive_fields import receptive_fields
from .shapes import net_slot_shapes


class Summary(str):
    """The text table of a net's variables: a ``str`` (print it, search it), which also keeps
    its rows of (name, op, inputs, shape, memory, receptive field) as ``.rows`` and renders as
    an HTML table in Jupyter. Memory counts a variable's value and its derivative."""

    columns = ("name", "op", "inputs", "shape", "memory (value+der)", "receptive field")

    def __new__(cls, rows, total_bytes):
        lines = text_table(cls.columns, [_row_cells(r) for r in rows])
        lines.append(f"total memory: {bytes_text(total_bytes)}")
        summary = super().__new__(cls, "\n".join(lines))
        summary.rows, summary.total_bytes = rows, total_bytes
        return summary

    def __repr__(self):
        return str.__str__(self)

    def _cells(self):
        return [_row_cells(r) for r in self.rows]

    def _repr_html_(self):
        left = "style='text-align:left'"  # Jupyter right-aligns table cells by default
        head = "".join(f"<th {left}>{c}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td {left}>{html.escape(c)}</td>" for c in row)
                       + "</tr>" for row in self._cells())
        return (f"<table><tr>{head}</tr>{body}</table>"
                f"<p>total memory: {bytes_text(self.total_bytes)}</p>")


def _row_cells(row):
    return (row["name"], row["op"], row["inputs"], row["shape"], bytes_text(row["bytes"]),
            row["receptive_field"])


def net_summary(net, input_sizes=None):
    shapes = net_slot_shapes(net, input_sizes) if input_sizes else {}
    fields = _receptive_field_texts(net)
    compiled = net._compiled
    rows, total = [], 0
    producers = {}
    for step in net.tape.forward:
        for slot in step.outputs:
            producers[slot] = step
    for slot, name in enumerate(net.tape.names):
        layer = compiled.layer_at.get(slot)
        step = producers.get(slot)
        if layer is None and step is None:
            continue  # constants
        value, der = net._values[slot], net._ders[slot]
        if isinstance(layer, Param):
            value, der = layer.value, getattr(layer, "der", None)
        shape = np.shape(value) if value is not None else shapes.get(slot)
        nbytes = sum(int(getattr(a, "nbytes", 0)) for a in (value, der) if a is not None)
        if value is None and shape is not None:  # inferred: a float32 value, and its derivative
            copies = 2 if compiled.requires_der[slot] else 1
            nbytes = int(np.prod(shape)) * 4 * copies
        total += nbytes
        if step is not None:
            op, inputs = step.op.name, ", ".join(net.tape.names[i] for i in step.inputs
                                                 if compiled.layer_at.get(i) is not None
                                                 or i in producers)
        else:
            op, inputs = ("Input" if isinstance(layer, Input) else "Param"), ""
        rows.append({"name": name, "op": op, "inputs": inputs,
                     "receptive_field": fields.get(name, ""),
                     "shape": shape_text(shape, unknown="?"),
                     "bytes": nbytes})
        if step is not None and slot == step.outputs[-1]:
            rows += _inner_rows(step)
    return Summary(rows, total)


def _inner_rows(step):
    """A loop's step holds inner tapes (``op.inner_tapes``): their steps, indented under it
    (their values live only during the loop, so no shape or memory is shown)."""
    rows = []
    for label, tape in getattr(step.op, "inner_tapes", ()):
        for inner in tape.forward:
            rows.append({"name": f"  {label}: " + ", ".join(tape.names[o] for o in inner.outputs),
                         "op": inner.op.name, "inputs": ", ".join(tape.names[i]
                                                                  for i in inner.inputs),
                         "receptive_field": "", "shape": "", "bytes": 0})
    return rows


def _receptive_field_texts(net):
    """``size s stride o offset`` of each variable's receptive field on the net's first Input
    (the image, in the usual ``Net(objective)`` over images and labels), where defined."""
    if not net._compiled.inputs:
        return {}
    try:
        fields = receptive_fields(net.outputs, net._compiled.inputs[0])
    except (ValueError, KeyError, TypeError):  # no sliding-window geometry to show
        return {}
    return {layer.name: (f"{field.size[0]}×{field.size[1]} s{_pair(field.stride)} "
                         f"o{_pair(field.offset)}")
            for layer, field in fields.items() if field is not None}


def _pair(pair):
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]},{pair[1]}"
