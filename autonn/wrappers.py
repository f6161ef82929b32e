"""``Net(simplenn_net)`` and ``Net(dag)``: the two MatConvNet wrappers as implicit graphs.

Both wrappers build ordinary autonn Layers and run on autonn's own compiled tape, so a converted
network gives exactly the values and derivatives of the wrapper's own ``run``/``eval``.
:class:`autonn.Net` reaches :func:`to_output_layers` through :mod:`autonn.registration`.
"""

from . import dagnn, registration, simplenn


def to_output_layers(network):
    """The output Layers of a SimpleNN network (a dict with ``'layers'`` or a list of layer
    dicts) or of a :class:`autonn.dagnn.DagNN`."""
    if isinstance(network, dagnn.DagNN):
        return dagnn.to_layers(network)
    if simplenn.is_simplenn(network):
        return simplenn.to_layers(network)
    raise TypeError(f"Net: cannot convert a {type(network).__name__} into a network; give "
                    f"Layers, a SimpleNN net (dict with 'layers') or an autonn.dagnn.DagNN")


registration.provide("wrapper_outputs", to_output_layers)
