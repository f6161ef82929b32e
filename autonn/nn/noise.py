"""Inverted dropout, MatConvNet's ``vl_nndropout``.

In a graph the random mask is its own node (``dropout_mask``, no derivative) feeding the node that
applies it (``dropout``): the backward pass then reads the very mask the forward pass drew, and
the tape can keep or free it like any other value. In test mode the applying node is the
identity and the mask node returns a plain 1.
"""

from ..backend import array_module
from ..ops import Op
from ._arguments import (
    any_layer,
    as_flag,
    as_real,
    check_devices,
    check_dzdy,
    check_float_array,
    check_same_dtype,
    check_shape,
    takes_name,
)


@takes_name
def dropout(x, *, rate=0.5, mask=None, return_mask=False, dzdy=None):
    """Inverted dropout: ``y = x * mask``, ``mask = [u >= rate] / (1 - rate)``, u uniform in [0, 1).

    Each element is kept with probability ``1 - rate`` and scaled so that ``E[y] = x``;
    ``dz/dx = dz/dy * mask``. A given ``mask`` (as returned with ``return_mask=True``, already
    scaled) is reused; the eager backward needs it. In a graph's test mode dropout is the
    identity.

    x : any shape; returns y, or ``(y, mask)`` with ``return_mask``.
    """
    rate = as_real("dropout", "rate", rate, nonnegative=True)
    if rate >= 1:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate!r}")
    return_mask = as_flag("dropout", "return_mask", return_mask)
    if any_layer(x, mask):
        if mask is None:
            mask = dropout_mask_op(x, rate=rate)
        y = dropout_op(x, mask, dzdy=dzdy)
        return (y, mask) if return_mask else y
    check_float_array("dropout", "x", x)
    if mask is not None:
        check_float_array("dropout", "mask", mask)
        check_shape("dropout", "mask", mask, x.shape)
        check_same_dtype("dropout", x=x, mask=mask)
        check_devices("dropout", x=x, mask=mask)
    if dzdy is not None:
        check_dzdy("dropout", dzdy, x.shape, like=x)
        if mask is None:
            raise ValueError("dropout: the backward pass needs the mask of the forward pass; "
                             "call dropout(x, return_mask=True) and pass mask=")
        return dropout_op(x, mask, dzdy=dzdy)[0]
    if mask is None:
        mask = dropout_mask_forward(x, rate=rate)
    y = dropout_op(x, mask)
    return (y, mask) if return_mask else y


def dropout_mask_forward(x, *, rate=0.5):
    xp = array_module(x)
    keep = xp.random.random_sample(x.shape) >= rate
    return keep.astype(x.dtype) * x.dtype.type(1 / (1 - rate))


def dropout_mask_forward_test(x, *, rate=0.5):
    return x.dtype.type(1)


dropout_mask_op = Op("dropout_mask", dropout_mask_forward, differentiable=False,
                     forward_test=dropout_mask_forward_test, input_names=("x",),
                     shape=lambda x_shape, **options: tuple(x_shape),
                     receptive_field="elementwise",
                     doc="The scaled random mask of inverted dropout (test mode: 1).")


def dropout_apply_forward(x, mask):
    return x * mask


def dropout_apply_forward_test(x, mask):
    return x


def dropout_apply_backward(x, mask, dzdy):
    # The mask is a random draw, not a function of anything: it gets no derivative.
    return dzdy * mask, None


dropout_op = Op("dropout", dropout_apply_forward, dropout_apply_backward,
                backward_needs_inputs=(1,), forward_test=dropout_apply_forward_test,
                shape=lambda x_shape, mask_shape: tuple(x_shape), receptive_field="elementwise",
                matconvnet_types=("dropout", "dagnn.DropOut"), input_names=("x", "mask"),
                doc=dropout.__doc__)
