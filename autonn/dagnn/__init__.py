"""DagNN: MatConvNet's explicit-graph wrapper, on autonn's graph and tape.

A :class:`DagNN` holds named layers, each a *block* (``Conv``, ``Pooling``, ``ReLU``, ...) reading
named variables and parameters and writing named variables, as MatConvNet's ``dagnn.DagNN``::

    dag = DagNN()
    dag.add_layer('conv1', Conv(size=(5, 5, 1, 20)), 'input', 'x1', ['conv1f', 'conv1b'])
    dag.add_layer('relu1', ReLU(), 'x1', 'x2')
    dag.add_layer('loss', Loss(), ['x2', 'label'], 'objective')
    dag.init_params()
    dag.eval({'input': images, 'label': labels}, derivatives={'objective': 1.0})
    dag.vars[dag.get_var_index('x1')].value, dag.params[0].der

``eval`` translates the graph into autonn Layers (:func:`to_layers`), compiles it once into a
tape (recompiled only when the graph changes) and runs it; values and derivatives are then copied
into ``vars`` and ``params``. ``an.Net(dag)`` and ``an.Layer.from_dagnn(dag)`` give the same graph.

Conventions are autonn's (SPEC section 0): NCHW data, conv filters (K, C/G, kh, kw), convt filters
(C, K, kh, kw), 0-based labels; block options are MatConvNet's in snake_case (``pool_size``,
``has_bias``, ``num_groups``, ``no_root``...). Sizes given to blocks as ``size`` keep
MatConvNet's order ``(kh, kw, cin, cout)`` as ``nn.conv(size=...)`` does. ``var_sizes`` returns
NCHW shapes. Receptive fields are 0-based (see :mod:`autonn.receptive_fields`).

Where things are: the container (:class:`DagNN`, ``eval``, ``var_sizes``, editing, conversion)
in :mod:`autonn.dagnn.container`; the blocks (:class:`Block` and its subclasses, :data:`BLOCKS`)
in :mod:`autonn.dagnn.blocks`. Which op a block computes is declared on the op
(``Op.matconvnet_types``); sizes and receptive fields come from the ops' own rules.
"""

from .. import registration
from .blocks import (  # noqa: F401  (the public names, as an.dagnn.Conv)
    BLOCKS,
    LRN,
    AffineGridGenerator,
    BatchNorm,
    BilinearSampler,
    Block,
    Concat,
    Conv,
    ConvTranspose,
    Crop,
    DropOut,
    Loss,
    PDist,
    Pooling,
    ReLU,
    ROIPooling,
    Scale,
    Sigmoid,
    SoftMax,
    SpatialNorm,
    Sum,
    block_from_simplenn,
    crop_like_op,
)
from .container import DagNN, LayerEntry, ParamEntry, Var, to_layers  # noqa: F401

registration.provide("dagnn_layers", to_layers)
