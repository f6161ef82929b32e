"""Pictures of networks and feature maps, for Jupyter and for files.

- :func:`graph_svg` draws a graph of Layers, or the compiled tape of a :class:`~autonn.Net`, as
  an SVG string: Inputs (ellipses), Params (grey boxes) and ops (rounded boxes) with their names
  and, when known, their shapes. It uses Graphviz's ``dot`` program when it is installed and
  otherwise lays the graph out itself, so a picture is always produced. ``Layer`` and ``Net``
  call it from ``_repr_svg_``: the last expression of a notebook cell shows as a graph.
- :func:`imarraysc` is MatConvNet's ``vl_imarraysc``: it tiles the channels of a feature map (or
  the filters of a bank) into one image, each tile scaled to its own range.
"""

import html
import math
import shutil
import subprocess

import numpy as np

from . import registration
from .formatting import shape_text
from .layer import Input, Layer, Param, Selector, topological_order
from .net import Net
from .shapes import net_slot_shapes, variable_shapes

__all__ = ["graph_svg", "imarraysc", "tile"]

# Colours of the three kinds of node (fill, border), shared by both renderers.
STYLE = {
    "input": ("#dbeafe", "#2563eb"),
    "param": ("#f1f5f9", "#64748b"),
    "op": ("#fef3c7", "#b45309"),
}
FONT = "Helvetica, Arial, sans-serif"
FONT_SIZE = 12
# Graphviz may take a long time on very large graphs; beyond this many nodes use our own layout.
DOT_MAX_NODES = 400


def graph_svg(outputs, *, input_sizes=None, engine="auto"):
    """An SVG picture (a string) of a network.

    Parameters
    ----------
    outputs : Layer, sequence of Layers, or Net
        For Layers, the graph they depend on; for a ``Net``, its compiled forward tape (one box
        per step, with the names the compiler gave and, after an evaluation, the shapes of the
        values).
    input_sizes : dict, optional
        Input name -> shape; shapes of the other nodes are then inferred from the ops' shape
        rules (otherwise only Params, and a Net's evaluated values, have known shapes).
    engine : {'auto', 'dot', 'python'}
        'dot' needs Graphviz's ``dot`` program; 'python' is the built-in layered layout; 'auto'
        uses ``dot`` when it is installed and the graph is not huge.
    """
    if engine not in ("auto", "dot", "python"):
        raise ValueError(f"graph_svg: engine must be 'auto', 'dot' or 'python', got {engine!r}")
    graph = _graph_of(outputs, input_sizes)
    dot = shutil.which("dot")
    if engine == "dot" and dot is None:
        raise RuntimeError("graph_svg: engine='dot' needs Graphviz's dot program "
                           "(apt-get install graphviz); engine='python' needs nothing")
    if engine == "dot" or (engine == "auto" and dot and len(graph.nodes) <= DOT_MAX_NODES):
        try:
            return _render_with_dot(graph, dot)
        except (OSError, subprocess.SubprocessError):
            if engine == "dot":
                raise
    return _render_layered(graph)


# ---------------------------------------------------------------------- the graph to draw
class _Node:
    """One box of the picture: ``kind`` is 'input', 'param' or 'op'; ``lines`` its text."""

    def __init__(self, key, kind, title, detail=""):
        self.key = key
        self.kind = kind
        self.lines = [title] + ([detail] if detail else [])


class _Graph:
    def __init__(self):
        self.nodes = []      # in topological order
        self.edges = []      # (source key, target key), sources before targets
        self.index = {}

    def add(self, node):
        self.index[node.key] = len(self.nodes)
        self.nodes.append(node)


def _graph_of(outputs, input_sizes):
    if isinstance(outputs, Net):
        return _graph_of_tape(outputs, input_sizes)
    if isinstance(outputs, Layer):
        outputs = [outputs]
    outputs = list(outputs)
    if not outputs or not all(isinstance(x, Layer) for x in outputs):
        raise TypeError("graph_svg: outputs must be a Layer, a sequence of Layers or a Net")
    return _graph_of_layers(outputs, input_sizes or {})


def _graph_of_layers(outputs, input_sizes):
    """One node per Layer; constants are left out (their values are not part of the graph)."""
    graph = _Graph()
    order = topological_order(outputs)
    shapes = variable_shapes(outputs, {layer: input_sizes[layer.name] for layer in order
                                       if isinstance(layer, Input)
                                       and layer.name in input_sizes}, strict=False)
    for layer in order:
        key = id(layer)
        if isinstance(layer, Input):
            graph.add(_Node(key, "input", layer.name or "Input", shape_text(shapes.get(layer))))
            continue
        if isinstance(layer, Param):
            graph.add(_Node(key, "param", layer.name or "Param", shape_text(shapes.get(layer))))
            continue
        if isinstance(layer, Selector):
            source = layer.inputs[0]
            title = layer.name or f"output {layer.index}"
            graph.add(_Node(key, "op", title, shape_text(shapes.get(layer))))
            graph.edges.append((id(source), key))
            continue
        title = f"{layer.name} = {layer.op.name}" if layer.name else layer.op.name
        detail = shape_text(shapes.get(layer)) if layer.op.num_outputs == 1 else ""
        node = _Node(key, "op", title, detail)
        describe_inner = getattr(layer.op, "describe_inner", None)  # a loop's inner graph
        node.lines += describe_inner() if describe_inner else []
        graph.add(node)
        for x in layer.inputs:
            if isinstance(x, Layer) and id(x) in graph.index:
                graph.edges.append((id(x), key))
    return _unique_edges(graph)


def _graph_of_tape(net, input_sizes):
    """One node per Input, Param and forward step of a compiled Net."""
    tape = net.tape
    constants = {slot for slot, _ in tape.constants}
    layers = net._compiled.layer_at
    values = getattr(net, "_values", None) or [None] * len(tape.names)
    inferred = net_slot_shapes(net, input_sizes) if input_sizes else {}

    def shape_of(slot):
        value = values[slot] if slot < len(values) else None
        layer = layers.get(slot)
        if isinstance(layer, Param):
            value = layer.value
        if value is not None:
            return tuple(np.shape(value))
        return inferred.get(slot)

    graph = _Graph()
    producer = {}
    produced = {slot for step in tape.forward for slot in step.outputs}
    for slot, name in enumerate(tape.names):
        layer = layers.get(slot)
        if slot in constants or slot in produced:
            continue
        # Neither a constant nor computed by a step: a Param, or a value fed from outside.
        kind = "param" if isinstance(layer, Param) else "input"
        graph.add(_Node(("slot", slot), kind, name, shape_text(shape_of(slot))))
        producer[slot] = ("slot", slot)
    for number, step in enumerate(tape.forward):
        key = ("step", number)
        names = ", ".join(tape.names[o] for o in step.outputs)
        shapes = [shape_of(o) for o in step.outputs]
        known = any(s is not None for s in shapes)
        detail = ", ".join(shape_text(s) or "?" for s in shapes) if known else ""
        node = _Node(key, "op", f"{names} = {step.op.name}", detail)
        # a loop's step is one box holding its inner graph: the inner steps, one a line
        describe_inner = getattr(step.op, "describe_inner", None)
        node.lines += describe_inner() if describe_inner else []
        graph.add(node)
        for slot in step.inputs:
            if slot in producer:
                graph.edges.append((producer[slot], key))
        for slot in step.outputs:
            producer[slot] = key
    return _unique_edges(graph)


def _unique_edges(graph):
    seen, edges = set(), []
    for edge in graph.edges:
        if edge not in seen:
            seen.add(edge)
            edges.append(edge)
    graph.edges = edges
    return graph


# ---------------------------------------------------------------------- Graphviz
def _render_with_dot(graph, dot):
    lines = ["digraph autonn {", "  rankdir=TB; nodesep=0.25; ranksep=0.35;",
             f'  node [fontname="{FONT}", fontsize={FONT_SIZE}, penwidth=1.2, height=0.3, '
             f'margin="0.1,0.04"];',
             '  edge [color="#475569", arrowsize=0.7];']
    shapes = {"input": 'shape=ellipse, style=filled',
              "param": 'shape=box, style=filled',
              "op": 'shape=box, style="rounded,filled"'}
    for number, node in enumerate(graph.nodes):
        fill, border = STYLE[node.kind]
        label = "<" + "<br/>".join(
            html.escape(text) if k == 0 else
            f'<font point-size="{FONT_SIZE - 2}" color="#475569">{html.escape(text)}</font>'
            for k, text in enumerate(node.lines)) + ">"
        lines.append(f'  n{number} [label={label}, {shapes[node.kind]}, fillcolor="{fill}", '
                     f'color="{border}"];')
    for source, target in graph.edges:
        # Heavy edges along the data path keep the chain of ops straight; Params hang beside it.
        weight = 1 if graph.nodes[graph.index[source]].kind == "param" else 8
        lines.append(f"  n{graph.index[source]} -> n{graph.index[target]} [weight={weight}];")
    lines.append("}")
    result = subprocess.run([dot, "-Tsvg"], input="\n".join(lines).encode("utf-8"),
                            capture_output=True, timeout=60, check=True)
    svg = result.stdout.decode("utf-8")
    # Keep only the <svg> element: the XML prolog and DOCTYPE break inline HTML embedding.
    return svg[svg.index("<svg"):]


# ---------------------------------------------------------------------- built-in layout
# A small layered ("Sugiyama") layout: ranks by longest path, dummy nodes on long edges,
# barycentre sweeps to reduce crossings, then x positions pulled toward the neighbours.
CHAR_WIDTH = 6.8       # average width of a character at FONT_SIZE, in pixels
LINE_HEIGHT = 15
PAD_X, PAD_Y = 10, 6
GAP_X, GAP_Y = 18, 34
MARGIN = 8


def _render_layered(graph):
    n = len(graph.nodes)
    if n == 0:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    successors = [[] for _ in range(n)]
    predecessors = [[] for _ in range(n)]
    for source, target in graph.edges:
        s, t = graph.index[source], graph.index[target]
        successors[s].append(t)
        predecessors[t].append(s)
    rank = _ranks(n, predecessors, successors)
    # Real nodes first, then one dummy per rank crossed by a long edge.
    widths = [max(len(text) for text in node.lines) * CHAR_WIDTH + 2 * PAD_X
              for node in graph.nodes]
    heights = [len(node.lines) * LINE_HEIGHT + 2 * PAD_Y for node in graph.nodes]
    paths = []  # each edge as the list of node indices it passes through
    for source, target in graph.edges:
        s, t = graph.index[source], graph.index[target]
        path = [s]
        for r in range(rank[s] + 1, rank[t]):
            rank.append(r)
            widths.append(2.0)
            heights.append(0.0)
            path.append(len(rank) - 1)
        path.append(t)
        paths.append(path)
    total = len(rank)
    up = [[] for _ in range(total)]
    down = [[] for _ in range(total)]
    for path in paths:
        for a, b in zip(path, path[1:]):
            down[a].append(b)
            up[b].append(a)
    rows = [[] for _ in range(max(rank) + 1)]
    for v in range(total):      # topological order of the real nodes breaks the initial ties
        rows[rank[v]].append(v)
    _order_rows(rows, up, down)
    # Params go to the right of the data nodes of their row, and data edges pull harder than
    # Param edges (as dot's edge weights do): chains of ops stay straight, Params hang beside.
    is_param = [node.kind == "param" for node in graph.nodes] + [False] * (total - n)
    rows = [[v for v in row if not is_param[v]] + [v for v in row if is_param[v]]
            for row in rows]
    x = _place_rows(rows, widths, up, down, is_param)
    row_heights = [max([heights[v] for v in row] + [LINE_HEIGHT]) for row in rows]
    row_top = [MARGIN]
    for h in row_heights[:-1]:
        row_top.append(row_top[-1] + h + GAP_Y)
    y = [row_top[rank[v]] + row_heights[rank[v]] / 2 for v in range(total)]
    shift = MARGIN - min(x[v] - widths[v] / 2 for v in range(total))
    x = [value + shift for value in x]
    width = max(x[v] + widths[v] / 2 for v in range(total)) + MARGIN
    height = row_top[-1] + row_heights[-1] + MARGIN
    return _svg_document(graph, paths, x, y, widths, heights, width, height)


def _ranks(n, predecessors, successors):
    """Longest-path ranks, then every source (Input, Param) moved down to sit just above its
    first consumer, so that a Param is drawn beside the op that uses it."""
    rank = [0] * n
    for v in range(n):  # nodes are in topological order
        if predecessors[v]:
            rank[v] = 1 + max(rank[u] for u in predecessors[v])
    for v in range(n):
        if not predecessors[v] and successors[v]:
            rank[v] = min(rank[t] for t in successors[v]) - 1
    return rank


def _order_rows(rows, up, down, sweeps=8):
    """Reorder each row by the mean position of its neighbours in the row above (downward
    sweeps) or below (upward sweeps); the classic barycentre heuristic for fewer crossings."""
    for sweep in range(sweeps):
        downward = sweep % 2 == 0
        sequence = range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1)
        for r in sequence:
            reference = rows[r - 1] if downward else rows[r + 1]
            position = {v: k for k, v in enumerate(reference)}
            neighbours = up if downward else down

            def barycentre(v, k):
                linked = [position[u] for u in neighbours[v] if u in position]
                return sum(linked) / len(linked) if linked else k

            rows[r] = [v for _, v in sorted(
                ((barycentre(v, k), k), v) for k, v in enumerate(rows[r]))]


def _place_rows(rows, widths, up, down, is_param, iterations=21):
    """x of every node. Data nodes (everything but Params) are pulled toward the mean x of
    their data neighbours in the row above (downward sweeps) or below (upward sweeps) while
    keeping their row's order and spacing; Params, which the rows list last, then sit as close
    to their consumer as the data nodes on their left allow. Pulling from one side at a time
    (the last sweep downward) keeps chains vertical: averaging both sides at once would accept
    any straight slanted line as a solution."""
    total = len(widths)
    x = [0.0] * total
    for row in rows:
        cursor = 0.0
        for v in row:
            x[v] = cursor + widths[v] / 2
            cursor += widths[v] + GAP_X
    for sweep in range(iterations):
        # Alternate downward and upward sweeps: a pull travels the whole height either way.
        downward = sweep % 2 == 0
        for row in (rows if downward else rows[::-1]):
            data = [v for v in row if not is_param[v]]
            desired = []
            for v in data:
                first, second = (up[v], down[v]) if downward else (down[v], up[v])
                linked = ([u for u in first if not is_param[u]]
                          or [u for u in second if not is_param[u]])
                desired.append(sum(x[u] for u in linked) / len(linked) if linked else x[v])
            # Left to right: as close to desired as the previous node allows; then right to
            # left, so that the row is not pushed only one way.
            for k in range(1, len(data)):
                least = desired[k - 1] + (widths[data[k - 1]] + widths[data[k]]) / 2 + GAP_X
                desired[k] = max(desired[k], least)
            for k in range(len(data) - 2, -1, -1):
                most = desired[k + 1] - (widths[data[k]] + widths[data[k + 1]]) / 2 - GAP_X
                desired[k] = min(desired[k], most)
            for v, value in zip(data, desired):
                x[v] = value
    for row in rows:
        previous = None
        for v in row:
            if is_param[v]:
                consumers = down[v]
                wanted = sum(x[u] for u in consumers) / len(consumers) if consumers else x[v]
                if previous is not None:
                    wanted = max(wanted, x[previous] + (widths[previous] + widths[v]) / 2 + GAP_X)
                x[v] = wanted
            previous = v
    return x


def _svg_document(graph, paths, x, y, widths, heights, width, height):
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
             f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
             f'font-family="{FONT}" font-size="{FONT_SIZE}">',
             '<defs><marker id="autonn-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M 0 0 L 10 5 L 0 10 z" fill="#475569"/></marker></defs>']
    for path in paths:
        s, t = path[0], path[-1]
        points = [(x[s], y[s] + heights[s] / 2)]
        points += [(x[v], y[v]) for v in path[1:-1]]
        points.append((x[t], y[t] - heights[t] / 2))
        parts.append(f'<path d="{_smooth_path(points)}" fill="none" stroke="#475569" '
                     f'stroke-width="1.1" marker-end="url(#autonn-arrow)"/>')
    for v, node in enumerate(graph.nodes):
        fill, border = STYLE[node.kind]
        w, h = widths[v], heights[v]
        if node.kind == "input":
            parts.append(f'<ellipse cx="{x[v]:.1f}" cy="{y[v]:.1f}" rx="{w / 2 + 4:.1f}" '
                         f'ry="{h / 2:.1f}" fill="{fill}" stroke="{border}" stroke-width="1.2"/>')
        else:
            radius = 6 if node.kind == "op" else 0
            parts.append(f'<rect x="{x[v] - w / 2:.1f}" y="{y[v] - h / 2:.1f}" '
                         f'width="{w:.1f}" height="{h:.1f}" rx="{radius}" fill="{fill}" '
                         f'stroke="{border}" stroke-width="1.2"/>')
        first = y[v] - (len(node.lines) - 1) * LINE_HEIGHT / 2
        for k, text in enumerate(node.lines):
            style = '' if k == 0 else f' font-size="{FONT_SIZE - 2}" fill="#475569"'
            parts.append(f'<text x="{x[v]:.1f}" y="{first + k * LINE_HEIGHT:.1f}" '
                         f'text-anchor="middle" dominant-baseline="central"{style}>'
                         f'{html.escape(text)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _smooth_path(points):
    """An SVG path through ``points``: vertical cubic curves between consecutive points."""
    (x0, y0), rest = points[0], points[1:]
    commands = [f"M {x0:.1f} {y0:.1f}"]
    for x1, y1 in rest:
        middle = (y0 + y1) / 2
        commands.append(f"C {x0:.1f} {middle:.1f} {x1:.1f} {middle:.1f} {x1:.1f} {y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(commands)


# ---------------------------------------------------------------------- feature maps
registration.provide("graph_svg", graph_svg)


def imarraysc(array, *, ax=None, spacing=None, columns=None, cmap="gray",
              background="#1e3a5f", title=None):
    """Show the channels of a feature map, or the filters of a bank, tiled into one image, each
    tile scaled to its own range (MatConvNet's ``vl_imarraysc``). Draws into ``ax`` (default:
    pyplot's current axes) and returns the axes.

    array : ndarray (NumPy or CuPy)
        (H, W): one image. (C, H, W): C tiles. (1, C, H, W), a feature map of one image: C tiles.
        (K, 3, h, w): K colour tiles (filters of an RGB input). (K, 1, h, w): K tiles.
        (N, C, H, W) otherwise: one row of C tiles per image.
    spacing : pixels between the tiles, drawn in ``background`` (default: about 1/32 of a tile,
        at least 1, so that the gaps stay visible when large maps are shown small).
    columns : tiles per row (default: a near-square grid, or C per row for a batch).
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba
    mosaic, unused = _tile(array, spacing, columns)
    if ax is None:
        ax = plt.gca()
    # Build the RGBA picture here: the gaps between tiles get the background colour, and the
    # grid cells left over after the last tile are transparent rather than a block of colour.
    if mosaic.ndim == 3:
        rgba = np.concatenate([np.nan_to_num(mosaic), np.ones(mosaic.shape[:2] + (1,))], axis=2)
        gaps = np.isnan(mosaic[..., 0])
    else:
        rgba = plt.get_cmap(cmap)(np.nan_to_num(mosaic))
        gaps = np.isnan(mosaic)
    rgba[gaps] = to_rgba(background)
    rgba[unused] = (1.0, 1.0, 1.0, 0.0)
    ax.imshow(rgba, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if title is not None:
        ax.set_title(title)
    return ax


def tile(array, *, spacing=None, columns=None):
    """The mosaic that :func:`imarraysc` shows: a float array in [0, 1] with NaN between and
    after the tiles, (rows, cols) for grey tiles or (rows, cols, 3) for colour tiles."""
    return _tile(array, spacing, columns)[0]


def _tile(array, spacing, columns):
    """The mosaic and a mask of the grid cells after the last tile."""
    array = _to_numpy(array).astype(np.float64)
    colour = False
    if array.ndim == 2:
        tiles, grid_columns = array[None], 1
    elif array.ndim == 3:
        tiles, grid_columns = array, None
    elif array.ndim == 4:
        count, channels = array.shape[:2]
        if count == 1:
            tiles, grid_columns = array[0], None
        elif channels == 3:
            tiles, grid_columns, colour = array, None, True
        elif channels == 1:
            tiles, grid_columns = array[:, 0], None
        else:
            tiles, grid_columns = array.reshape((-1,) + array.shape[2:]), channels
    else:
        raise ValueError(f"imarraysc: array must have 2, 3 or 4 dimensions, got shape "
                         f"{array.shape}")
    count = tiles.shape[0]
    columns = int(columns or grid_columns or math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    h, w = tiles.shape[-2:]
    if spacing is None:
        spacing = max(1, min(h, w) // 32)
    shape = (rows * (h + spacing) - spacing, columns * (w + spacing) - spacing)
    mosaic = np.full(shape + ((3,) if colour else ()), np.nan)
    unused = np.zeros(shape, bool)
    for k in range(rows * columns):
        r, c = divmod(k, columns)
        top, left = r * (h + spacing), c * (w + spacing)
        if k >= count:
            # the cell and the gap to its left
            unused[top:top + h, max(0, left - spacing):left + w] = True
            continue
        scaled = _scale_to_unit(tiles[k])
        if colour:
            mosaic[top:top + h, left:left + w] = scaled.transpose(1, 2, 0)
        else:
            mosaic[top:top + h, left:left + w] = scaled
    return mosaic, unused


def _scale_to_unit(values):
    """Map ``values`` linearly onto [0, 1]; a constant tile becomes mid-grey."""
    low, high = np.nanmin(values), np.nanmax(values)
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        return np.full(values.shape, 0.5)
    return (values - low) / (high - low)


def _to_numpy(array):
    if hasattr(array, "get") and not isinstance(array, np.ndarray):  # a CuPy array
        array = array.get()
    return np.asarray(array)
