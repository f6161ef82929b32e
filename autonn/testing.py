"""Hypothesis strategies for autonn, and ``check_op`` to property-test a layer's derivatives.

::

    from autonn import testing
    from hypothesis import given

    @given(testing.arrays(testing.shapes(min_dims=2, max_dims=2)))
    def test_my_layer(x):
        an.gradcheck(my_layer, x)

    testing.check_op(my_layer, testing.arrays((3, 4)), bias=0.5)   # many inputs, one call

Hypothesis is a test dependency (``pip install autonn[test]``), imported only by this module.
"""

import numpy as np

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("autonn.testing needs Hypothesis: pip install autonn[test]") from error

from .gradient_check import gradcheck


def shapes(min_dims=1, max_dims=4, min_side=1, max_side=5):
    """Array shapes (tuples of ints)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def feature_map_shapes(max_batch=3, max_channels=4, min_size=1, max_size=8):
    """NCHW shapes ``(N, C, H, W)``."""
    return st.tuples(st.integers(1, max_batch), st.integers(1, max_channels),
                     st.integers(min_size, max_size), st.integers(min_size, max_size))


def arrays(shape, dtype=np.float64, low=-2.0, high=2.0, integer_valued=False):
    """Finite arrays of ``shape`` (a tuple or a strategy of tuples) with values in
    ``[low, high]``. Values are rounded away from exact ties only by chance: gradcheck handles
    kinks, so ties are a feature, not a bug. ``integer_valued=True`` draws whole numbers only
    (as floats), where zeros and ties are common: ReLU's kinks, max-pooling's ties, several at
    once."""
    dtype = np.dtype(dtype)
    if integer_valued:
        elements = st.integers(int(np.ceil(low)), int(np.floor(high))).map(float)
    else:
        elements = st.floats(low, high, allow_nan=False, allow_infinity=False,
                             width=32 if dtype == np.float32 else 64)
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def conv_geometries(draw, max_size=8, max_kernel=4, max_channels=4, groups=True,
                    dilation=True, max_stride=3):
    """Valid convolution geometries as a dict: ``x_shape`` (N,C,H,W), ``w_shape``
    (K, C/G, kh, kw), ``stride`` (sh, sw), ``pad`` (top, bottom, left, right), ``dilate``
    (dh, dw) and ``groups``. The dilated window always fits the padded input, sometimes exactly.
    """
    num_groups = draw(st.integers(1, 2)) if groups else 1
    channels = num_groups * draw(st.integers(1, max(1, max_channels // num_groups)))
    filters = num_groups * draw(st.integers(1, max(1, max_channels // num_groups)))
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    dh, dw = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    extent_h, extent_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    # the input must be at least the window minus the padding (the exact fit is allowed)
    height = draw(st.integers(max(1, extent_h - pad[0] - pad[1]),
                              max(max_size, extent_h - pad[0] - pad[1])))
    width = draw(st.integers(max(1, extent_w - pad[2] - pad[3]),
                             max(max_size, extent_w - pad[2] - pad[3])))
    batch = draw(st.integers(1, 2))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    return {"x_shape": (batch, channels, height, width),
            "w_shape": (filters, channels // num_groups, kh, kw),
            "stride": stride, "pad": pad, "dilate": (dh, dw), "groups": num_groups}


def check_op(op, *inputs, max_examples=20, gradcheck_options=None, **options):
    """Property-test ``op``'s derivatives: gradcheck at many generated inputs.

    Each of ``inputs`` is a shape (arrays of that shape are generated), a Hypothesis strategy,
    or a fixed value. ``options`` go to the op; ``gradcheck_options`` to :func:`gradcheck`.
    Raises the first failing gradcheck report (with Hypothesis' minimal example).
    """
    strategies = [_as_strategy(x) for x in inputs]
    gradcheck_options = dict(gradcheck_options or {})

    @settings(max_examples=max_examples, deadline=None, database=None)
    @given(st.tuples(*strategies))
    def property_test(values):
        gradcheck(op, *values, **gradcheck_options, **options)

    property_test()


def _as_strategy(x):
    if isinstance(x, st.SearchStrategy):
        return x
    if isinstance(x, tuple) and all(isinstance(n, (int, np.integer)) for n in x):
        return arrays(x)
    return st.just(x)
