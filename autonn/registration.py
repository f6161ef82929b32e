"""The one point through which a lower layer of autonn reaches code of a higher one.

autonn's modules import one way only — backend, kernels → ops → math_ops → layer →
compiler, net → nn → wrappers, training, io, viz — and ``lint-imports`` (the contract in
pyproject.toml) checks it in CI, imports inside functions included. A few calls must still go upward, because
what the user holds is a lower object:

- an op called on a Layer builds a graph node (``ops`` → ``layer``);
- a custom op without a backward is differentiated by tracing it into a Net (``ops`` → ``net``);
- ``Net(simplenn_or_dagnn)`` converts a MatConvNet wrapper (``net`` → ``wrappers``), and
  ``Layer.from_dagnn`` reads a DagNN (``layer`` → ``dagnn``), ``Layer.from_compiled_net`` a Net
  (``layer`` → ``net``);
- Jupyter shows a Layer or a Net as a picture (``layer``, ``net`` → ``viz``);
- ``Net.load`` rebuilds a loop of ``an.For``/``an.While`` (``serialization`` → ``loops``).

Each of those is a named slot below. The upper module fills its slot when it is imported
(``import autonn`` imports them all); the lower module calls :func:`provided`. Nothing else
crosses the layers upward.
"""

SLOTS = {
    "Layer": "autonn.layer (the Layer class: an op called on a Layer builds Layer.create)",
    "traced_derivatives": "autonn.net (derivatives of a function of ops, traced into a Net)",
    "wrapper_outputs": "autonn.wrappers (the output Layers of a SimpleNN net or a DagNN)",
    "dagnn_layers": "autonn.dagnn (the output Layers of a DagNN)",
    "compiled_net_layers": "autonn.net (the output Layers read back from a Net's tape)",
    "graph_svg": "autonn.viz (the SVG picture of a Layer's graph or a Net's tape)",
    "loop_node": "autonn.loops (a loop node, an.For/an.While, rebuilt from its saved graph)",
}

_provided = {}


def provide(slot, function):
    """Fill ``slot`` (one of :data:`SLOTS`) with ``function``; the upper module calls this once,
    at import."""
    if slot not in SLOTS:
        raise KeyError(f"registration: unknown slot {slot!r}; slots are {sorted(SLOTS)}")
    _provided[slot] = function
    return function


def provided(slot):
    """What fills ``slot``; a clear error when the module that provides it was never imported."""
    try:
        return _provided[slot]
    except KeyError:
        raise RuntimeError(f"registration: {slot!r} is provided by {SLOTS[slot]}, which has "
                           f"not been imported; import autonn first") from None


def layer_class():
    """The Layer class, or None before :mod:`autonn.layer` is imported (then nothing is a
    Layer). Asked on every op call, so it is one dictionary look-up."""
    return _provided.get("Layer")
