"""The table of block cases: one ``BlockCase`` per block of ``autonn.nn`` and option set worth
its own geometry (see block_harness.BlockCase for the fields). test_blocks.py runs every check
of block_harness on every case, and tests/test_op_knowledge.py counts the ops of their graphs as
shape-checked. Adding a block is one more case here, and its loop reference in
block_references.py.

The inputs avoid the points where a block is not differentiable, by construction: values on a
grid of spacing 0.3 (no ties in a max, no hinge exactly at its kink, no |d| = 0 in pdist),
ReLU inputs away from 0, sampling points away from pixel centres.
"""

import block_references as ref
import numpy as np
from block_harness import BlockCase

from autonn import nn


# ----------------------------------------------------------------------------- inputs
def normal(rng, *shape, scale=1.0):
    return scale * rng.standard_normal(shape)


def distinct(rng, *shape, spacing=0.3, offset=0.05):
    """Shuffled values on a grid ``offset + spacing * k``: no two equal, no value +-1, and
    every difference a non-zero multiple of ``spacing`` (so ``1 + difference`` is never 0):
    no ties in a max and no hinge at its kink."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n // 2) * spacing + offset).reshape(shape)


def away_from_zero(rng, *shape):
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 1.5, size=shape)


def positive(rng, *shape, low=0.1, high=1.0):
    return rng.uniform(low, high, size=shape)


def class_labels(rng, shape, classes):
    """Class labels in [0, classes) with the first location ignored (-1)."""
    c = rng.integers(0, classes, size=shape)
    c.flat[0] = -1
    return c


def attributes(rng, shape):
    """+1 / -1 attributes with the first one ignored (0)."""
    c = rng.choice([-1.0, 1.0], size=shape)
    c.flat[0] = 0.0
    return c


def sampling_grid(rng, n, ho, wo, height, width):
    """(y, x) grid points whose pixel coordinates lie a fraction 0.2 .. 0.8 past an integer
    (the sampler's kinks are at integers), some of them outside the image."""
    pixels = np.stack([rng.integers(-1, height, size=(n, ho, wo)),
                       rng.integers(-1, width, size=(n, ho, wo))], axis=3)
    pixels = pixels + rng.uniform(0.2, 0.8, size=pixels.shape)
    return 2 * pixels / (np.array([height, width]) - 1) - 1


def moments(rng, channels):
    return np.stack([normal(rng, channels), positive(rng, channels, low=0.5, high=2.0)], axis=1)


ROIS = np.array([[0, 0, 0, 4, 3],          # from the image corner
                 [1, 2, 1, 5, 4],
                 [0, 2.4, 1.6, 2.4, 1.6],  # one pixel (zero size before rounding)
                 [0, -3, -3, -1, -1],      # outside the image: every bin empty
                 [1, 4, 3, 9, 9]])         # across the border


def batch_and_its_moments(rng, shape):
    """x, g, b and the moments of x (bnorm's default epsilon)."""
    x = normal(rng, *shape)
    return x, normal(rng, shape[1]), normal(rng, shape[1]), ref.bnorm_moments_reference(x)


# ----------------------------------------------------------------------------- the table
def conv_case(name, x_shape, w_shape, biases, **options):
    """conv of x, w and ``biases`` biases (None: no bias); options given as tuples."""
    geometry = {key: options.get(key, default) for key, default in
                (("stride", (1, 1)), ("pad", (0, 0, 0, 0)), ("dilate", (1, 1)))}
    return BlockCase(
        name, nn.conv,
        lambda x, w, b, dzdy=None: nn.conv(x, w, b, dzdy=dzdy, **options),
        lambda rng: (normal(rng, *x_shape), normal(rng, *w_shape),
                     None if biases is None else normal(rng, biases)),
        lambda x, w, b: ref.conv_reference(x, w, b, **geometry),
        differentiable=(0, 1) if biases is None else (0, 1, 2))


def convt_case(name, x_shape, w_shape, biases, **options):
    geometry = {key: options.get(key, default) for key, default in
                (("upsample", (1, 1)), ("crop", (0, 0, 0, 0)), ("num_groups", 1))}
    return BlockCase(
        name, nn.convt,
        lambda x, w, b, dzdy=None: nn.convt(x, w, b, dzdy=dzdy, **options),
        lambda rng: (normal(rng, *x_shape), normal(rng, *w_shape), normal(rng, biases)),
        lambda x, w, b: ref.convt_reference(x, w, b, **geometry), differentiable=(0, 1, 2))


def pool_case(name, method, shape, size, stride, pad):
    values = distinct if method == "max" else normal
    return BlockCase(
        name, nn.pool,
        lambda x, dzdy=None: nn.pool(x, size, method=method, stride=stride, pad=pad, dzdy=dzdy),
        lambda rng: (values(rng, *shape),),
        lambda x: ref.pool_reference(x, size, method, stride, pad))


def single_input_case(name, block, reference, make, **options):
    """A block of one array x and options only."""
    return BlockCase(name, block, lambda x, dzdy=None: block(x, dzdy=dzdy, **options),
                     lambda rng: (make(rng),), reference)


LOSS_SCORES = (2, 4, 2, 3)
NOT_DIFFERENTIABLE = "an error count: piecewise constant, its derivative is 0"


def loss_case(kind, scores, labels, *, gradcheck=True, **options):
    return BlockCase(
        f"loss-{kind}", nn.loss,
        lambda x, c, dzdy=None: nn.loss(x, c, loss=kind, dzdy=dzdy, **options),
        lambda rng: (scores(rng), labels(rng)),
        lambda x, c: ref.loss_reference(kind, x, c, **options),
        gradcheck=gradcheck)


def categorical(rng):
    return class_labels(rng, (LOSS_SCORES[0],) + LOSS_SCORES[2:], LOSS_SCORES[1])


def attribute_labels(rng):
    return attributes(rng, LOSS_SCORES)


def pdist_case(name, p, x0_shape, *, weights=False, **options):
    def inputs(rng):
        x = distinct(rng, 2, 3, 2, 2, offset=0.05)
        # x0 on the grid shifted by half a step: no |x - x0| is 0 (pdist's kink)
        x0 = distinct(rng, *x0_shape, offset=0.2)
        return (x, x0, positive(rng, 2, 1, 2, 2)) if weights else (x, x0)

    def call(x, x0, *instance_weights, dzdy=None):
        return nn.pdist(x, x0, p, instance_weights=(instance_weights or [None])[0], dzdy=dzdy,
                        **options)

    def reference(x, x0, *instance_weights):
        return ref.pdist_reference(x, x0, p, instance_weights=(instance_weights or [None])[0],
                                   **options)
    return BlockCase(name, nn.pdist, call, inputs, reference, differentiable=(0, 1))


def lstm_case(name, N, m, d, *, columns=False, clip_grad=None, params=False, **fields):
    """lstm's two outputs side by side, [h' c'] along axis 1 (dzdy split back into the pair
    (dh', dc')): x (N, m), h and c (N, d), or their (N, k, 1, 1) forms and a (4d, 1) b with
    ``columns``; W and b from nn.lstm_params (noise 0.5) with ``params``."""
    def call(x, h, c, W, b, dzdy=None):
        if dzdy is None:
            return np.concatenate(nn.lstm(x, h, c, W, b, clip_grad=clip_grad), axis=1)
        return nn.lstm(x, h, c, W, b, clip_grad=clip_grad, dzdy=(dzdy[:, :d], dzdy[:, d:]))

    def inputs(rng):
        tail = (1, 1) if columns else ()
        if params:
            W, b = (p.value.astype(np.float64) for p in nn.lstm_params(d, m, noise=0.5, rng=rng))
        else:
            W, b = normal(rng, 4 * d, m + d, scale=0.7), normal(rng, 4 * d)
        return (normal(rng, N, m, *tail), normal(rng, N, d, *tail),
                normal(rng, N, d, *tail, scale=2.0), W, b.reshape(-1, 1) if columns else b)
    return BlockCase(name, nn.lstm_params if params else nn.lstm, call, inputs,
                     ref.lstm_reference, differentiable=(0, 1, 2, 3, 4), graph_params=(3, 4),
                     op="lstm", **fields)


CASES = [
    # conv: groups, stride, 4-side pad, dilation, no bias, fully connected, empty filters
    conv_case("conv-plain", (2, 3, 5, 4), (4, 3, 3, 2), 4),
    conv_case("conv-groups-stride-pad-dilate", (2, 4, 6, 5), (4, 2, 3, 2), 4,
              stride=(2, 1), pad=(1, 2, 0, 1), dilate=(1, 2)),
    conv_case("conv-no-bias-int-options", (1, 2, 5, 5), (3, 2, 3, 3), None, stride=(2, 2),
              pad=(1, 1, 1, 1)),
    conv_case("conv-fully-connected", (3, 4, 3, 2), (5, 4, 3, 2), 5),
    BlockCase("conv-empty-filters-identity", nn.conv,
              lambda x, w, b, dzdy=None: nn.conv(x, w, b, stride=2, pad=(1, 0, 1, 1), dzdy=dzdy),
              lambda rng: (normal(rng, 2, 3, 4, 5), None, normal(rng, 3)),
              lambda x, w, b: ref.conv_identity_reference(x, b, (2, 2), (1, 0, 1, 1)),
              differentiable=(0, 2), graph_params=(2,)),
    # convt: groups, upsampling, 4-side crop
    convt_case("convt-plain", (2, 3, 3, 3), (3, 2, 3, 3), 2),
    convt_case("convt-groups-upsample-crop", (2, 4, 3, 3), (4, 2, 3, 2), 4, upsample=(2, 1),
               crop=(1, 0, 1, 1), num_groups=2),
    # pool
    pool_case("pool-max-stride-pad", "max", (2, 2, 6, 5), (3, 2), (2, 1), (1, 2, 0, 1)),
    pool_case("pool-avg-stride-pad", "avg", (2, 2, 6, 5), (3, 2), (2, 1), (1, 2, 0, 1)),
    pool_case("pool-max-square", "max", (1, 3, 4, 4), (2, 2), (2, 2), (0, 0, 0, 0)),
    # activations
    single_input_case("relu-plain", nn.relu, ref.relu_reference,
                      lambda rng: away_from_zero(rng, 2, 3, 4, 5)),
    single_input_case("relu-leak", nn.relu, lambda x: ref.relu_reference(x, 0.1),
                      lambda rng: away_from_zero(rng, 2, 3, 4, 5), leak=0.1),
    BlockCase("maxout", nn.maxout, lambda x, dzdy=None: nn.maxout(x, 3, dzdy=dzdy),
              lambda rng: (distinct(rng, 2, 6, 3, 2),), lambda x: ref.maxout_reference(x, 3)),
    single_input_case("sigmoid", nn.sigmoid, ref.sigmoid_reference,
                      lambda rng: normal(rng, 2, 3, 4, 5, scale=3.0)),
    single_input_case("softmax-nchw", nn.softmax, ref.softmax_reference,
                      lambda rng: normal(rng, 2, 5, 3, 2, scale=2.0)),
    single_input_case("softmax-nc", nn.softmax, ref.softmax_reference,
                      lambda rng: normal(rng, 4, 6, scale=2.0)),
    # normalisation
    BlockCase("normalize-depth5", nn.normalize,
              lambda x, dzdy=None: nn.normalize(x, (5, 1.0, 0.3, 0.75), dzdy=dzdy),
              lambda rng: (normal(rng, 2, 6, 3, 2),),
              lambda x: ref.lrn_reference(x, 5, 1.0, 0.3, 0.75)),
    BlockCase("lrn-depth2", nn.lrn,
              lambda x, dzdy=None: nn.lrn(x, (2, 2.0, 0.5, 0.6), dzdy=dzdy),
              lambda rng: (normal(rng, 2, 4, 2, 3),),
              lambda x: ref.lrn_reference(x, 2, 2.0, 0.5, 0.6)),
    BlockCase("bnorm-batch-statistics", nn.bnorm,
              lambda x, g, b, dzdy=None: nn.bnorm(x, g, b, dzdy=dzdy),
              lambda rng: (normal(rng, 3, 4, 2, 3, scale=2.0) + 1, normal(rng, 4),
                           normal(rng, 4)),
              lambda x, g, b: ref.bnorm_reference(x, g, b),
              differentiable=(0, 1, 2), graph_params=(1, 2),
              tolerance={np.float32: (1e-4, 1e-4)}),
    BlockCase("bnorm-nc-epsilon", nn.bnorm,
              lambda x, g, b, dzdy=None: nn.bnorm(x, g, b, epsilon=1e-2, dzdy=dzdy),
              lambda rng: (normal(rng, 6, 3), normal(rng, 3), normal(rng, 3)),
              lambda x, g, b: ref.bnorm_reference(x, g, b, epsilon=1e-2),
              differentiable=(0, 1, 2), graph_params=(1, 2),
              tolerance={np.float32: (1e-4, 1e-4)}),
    BlockCase("bnorm-no-gain-or-bias", nn.bnorm,
              lambda x, g, b, dzdy=None: nn.bnorm(x, g, b, dzdy=dzdy),
              lambda rng: (normal(rng, 2, 3, 2, 2), None, None),
              lambda x, g, b: ref.bnorm_reference(x),
              tolerance={np.float32: (1e-4, 1e-4)},
              in_graph="in a graph bnorm(x) creates its gain and bias Params and must know "
                       "their size, which an Input does not tell "
                       "(test_bnorm_channel_inference_refuses_unknown_inputs)"),
    BlockCase("bnorm-given-moments", nn.bnorm,
              lambda x, g, b, m, dzdy=None: nn.bnorm(x, g, b, moments=m, dzdy=dzdy),
              # the moments of this batch: the graph (mode 'normal') computes them itself
              lambda rng: batch_and_its_moments(rng, (2, 3, 2, 2)),
              lambda x, g, b, m: ref.bnorm_reference(x, g, b, moments=m),
              differentiable=(0, 1, 2), graph_params=(1, 2),
              gradcheck="with given moments the backward is MatConvNet's batch-statistics "
                        "derivative, not this forward's (SPEC section 1; "
                        "test_bnorm_backward_with_given_moments_is_the_batch_statistics_one)"),
    BlockCase("bnorm-frozen-moments", nn.bnorm,
              lambda x, g, b, m, dzdy=None: nn.bnorm(x, g, b, moments=m, frozen=True,
                                                     dzdy=dzdy),
              lambda rng: (normal(rng, 2, 3, 2, 2), normal(rng, 3), normal(rng, 3),
                           moments(rng, 3)),
              lambda x, g, b, m: ref.bnorm_reference(x, g, b, moments=m),
              differentiable=(0, 1, 2), graph_params=(1, 2)),
    BlockCase("spnorm", nn.spnorm,
              lambda x, dzdy=None: nn.spnorm(x, (3, 4, 0.5, 0.6), dzdy=dzdy),
              lambda rng: (normal(rng, 2, 2, 4, 5),),
              lambda x: ref.spnorm_reference(x, 3, 4, 0.5, 0.6)),
    single_input_case("normalizelp-channels", nn.normalizelp,
                      lambda x: ref.normalizelp_reference(x),
                      lambda rng: normal(rng, 2, 4, 3, 2)),
    single_input_case("normalizelp-spatial-p4", nn.normalizelp,
                      lambda x: ref.normalizelp_reference(x, 4, 0.5, spatial=True),
                      lambda rng: normal(rng, 2, 3, 2, 3), p=4, epsilon=0.5, spatial=True),
    single_input_case("normalizelp-dimensions-batch-height", nn.normalizelp,
                      lambda x: ref.normalizelp_reference(x, 2, 1e-3, dimensions=(0, 2)),
                      lambda rng: normal(rng, 3, 2, 4, 2), epsilon=1e-3, dimensions=(0, 2)),
    BlockCase("noffset", nn.noffset,
              lambda x, dzdy=None: nn.noffset(x, (0.3, 0.5), dzdy=dzdy),
              lambda rng: (normal(rng, 2, 3, 2, 3),),
              lambda x: ref.noffset_reference(x, 0.3, 0.5)),
    # losses: every type; the error counts have no gradcheck
    loss_case("classerror", lambda rng: normal(rng, *LOSS_SCORES), categorical,
              gradcheck=NOT_DIFFERENTIABLE),
    loss_case("topkerror", lambda rng: normal(rng, *LOSS_SCORES), categorical, topk=2,
              gradcheck=NOT_DIFFERENTIABLE),
    loss_case("log", lambda rng: positive(rng, *LOSS_SCORES), categorical),
    loss_case("softmaxlog", lambda rng: normal(rng, *LOSS_SCORES), categorical),
    loss_case("mhinge", lambda rng: distinct(rng, *LOSS_SCORES), categorical),
    loss_case("mshinge", lambda rng: distinct(rng, *LOSS_SCORES), categorical),
    loss_case("binaryerror", lambda rng: normal(rng, *LOSS_SCORES), attribute_labels,
              threshold=0.1, gradcheck=NOT_DIFFERENTIABLE),
    loss_case("binarylog", lambda rng: positive(rng, *LOSS_SCORES, low=0.1, high=0.9),
              attribute_labels),
    loss_case("logistic", lambda rng: normal(rng, *LOSS_SCORES), attribute_labels),
    loss_case("hinge", lambda rng: distinct(rng, *LOSS_SCORES), attribute_labels),
    BlockCase("loss-softmaxlog-weighted-per-image-labels", nn.loss,
              lambda x, c, w, dzdy=None: nn.loss(x, c, instance_weights=w, normalise=False,
                                                 dzdy=dzdy),
              lambda rng: (normal(rng, 3, 4, 2, 2), np.array([2, -1, 0]),
                           positive(rng, 3, 1, 2, 2)),
              lambda x, c, w: ref.loss_reference("softmaxlog", x, c, weights=w,
                                                 normalise=False)),
    BlockCase("loss-log-nc", nn.loss,
              lambda x, c, dzdy=None: nn.loss(x, c, loss="log", dzdy=dzdy),
              lambda rng: (positive(rng, 5, 4), np.array([0, 3, -1, 1, 3])),
              lambda x, c: ref.loss_reference("log", x, c)),
    BlockCase("softmaxloss", nn.softmaxloss,
              lambda x, c, dzdy=None: nn.softmaxloss(x, c, dzdy=dzdy),
              lambda rng: (normal(rng, 2, 5, 2, 2), class_labels(rng, (2, 2, 2), 5)),
              lambda x, c: ref.loss_reference("softmaxlog", x, c), op="loss"),
    # p-distance: p = 2, 1 and < 1 branches, broadcast x0, weights and aggregation
    pdist_case("pdist-p2-broadcast-x0", 2, (1, 3, 1, 1)),
    pdist_case("pdist-p1-no-root", 1, (2, 3, 2, 2), no_root=True),
    pdist_case("pdist-p0.5", 0.5, (1, 3, 1, 1)),
    pdist_case("pdist-p3-weights-aggregate", 3, (2, 3, 1, 1), weights=True, aggregate=True),
    # lstm (AutoNN's vl_nnlstm): (N, k) and (N, k, 1, 1) states, lstm_params' values, clipping
    lstm_case("lstm-plain", 3, 4, 5),
    lstm_case("lstm-column-states-and-bias", 2, 3, 4, columns=True),
    lstm_case("lstm-from-lstm_params", 4, 2, 3, params=True),
    lstm_case("lstm-clip-grad", 3, 4, 5, clip_grad=(0.05, 0.1, 0.2, 0.3, 0.4),
              gradcheck="clipped derivatives are not the forward's "
                        "(test_lstm_clip_grad_clamps_each_derivative_as_vl_nnlstm)"),
    # dropout with a given mask: deterministic
    BlockCase("dropout-given-mask", nn.dropout,
              lambda x, mask, dzdy=None: nn.dropout(x, rate=0.5, mask=mask, dzdy=dzdy),
              lambda rng: (normal(rng, 2, 3, 2, 3),
                           (rng.random((2, 3, 2, 3)) >= 0.5) / 0.5),
              ref.dropout_reference),
    # data movement
    BlockCase("crop-four-sides", nn.crop,
              lambda x, dzdy=None: nn.crop(x, (1, 0, 2, 1), dzdy=dzdy),
              lambda rng: (normal(rng, 2, 3, 5, 6),),
              lambda x: ref.crop_reference(x, (1, 0, 2, 1))),
    BlockCase("crop-pair", nn.crop,
              lambda x, dzdy=None: nn.crop(x, (0, 2), dzdy=dzdy),
              lambda rng: (normal(rng, 1, 2, 3, 6),),
              lambda x: ref.crop_reference(x, (0, 0, 2, 2))),
    BlockCase("concat-channels", nn.concat,
              lambda a, b, c, dzdy=None: nn.concat([a, b, c], dzdy=dzdy),
              lambda rng: (normal(rng, 2, 3, 2, 2), normal(rng, 2, 1, 2, 2),
                           normal(rng, 2, 2, 2, 2)),
              lambda a, b, c: ref.concat_reference([a, b, c]), differentiable=(0, 1, 2)),
    BlockCase("concat-batch-axis", nn.concat,
              lambda a, b, dzdy=None: nn.concat([a, b], axis=0, dzdy=dzdy),
              lambda rng: (normal(rng, 2, 3, 2, 2), normal(rng, 1, 3, 2, 2)),
              lambda a, b: ref.concat_reference([a, b], axis=0), differentiable=(0, 1)),
    BlockCase("concat-height-input-sizes", nn.concat,
              lambda a, b, dzdy=None: nn.concat([a, b], 2, [(2, 3, 2, 2), 1], dzdy=dzdy),
              lambda rng: (normal(rng, 2, 3, 2, 2), normal(rng, 2, 3, 1, 2)),
              lambda a, b: ref.concat_reference([a, b], axis=2), differentiable=(0, 1)),
    # ROI pooling, spatial transformer
    BlockCase("roipool-max", nn.roipool,
              lambda x, rois, dzdy=None: nn.roipool(x, rois, subdivisions=(2, 3), dzdy=dzdy),
              lambda rng: (distinct(rng, 2, 3, 5, 7), ROIS),
              lambda x, rois: ref.roipool_reference(x, rois, "max", (2, 3))),
    BlockCase("roipool-avg", nn.roipool,
              lambda x, rois, dzdy=None: nn.roipool(x, rois, method="avg", subdivisions=2,
                                                    dzdy=dzdy),
              lambda rng: (normal(rng, 2, 3, 5, 7), ROIS),
              lambda x, rois: ref.roipool_reference(x, rois, "avg", (2, 2))),
    BlockCase("bilinearsampler-two-grids-per-image", nn.bilinearsampler,
              lambda x, grid, dzdy=None: nn.bilinearsampler(x, grid, dzdy=dzdy),
              lambda rng: (normal(rng, 2, 2, 3, 4), sampling_grid(rng, 4, 3, 2, 3, 4)),
              ref.bilinearsampler_reference, differentiable=(0, 1)),
    BlockCase("bilinearsampler-one-grid-per-image", nn.bilinearsampler,
              lambda x, grid, dzdy=None: nn.bilinearsampler(x, grid, dzdy=dzdy),
              lambda rng: (normal(rng, 1, 3, 4, 3), sampling_grid(rng, 1, 2, 4, 4, 3)),
              ref.bilinearsampler_reference, differentiable=(0, 1)),
    BlockCase("affinegrid-matrices", nn.affinegrid,
              lambda theta, dzdy=None: nn.affinegrid(theta, (3, 4), dzdy=dzdy),
              lambda rng: (normal(rng, 2, 2, 3),),
              lambda theta: ref.affinegrid_reference(theta, (3, 4))),
    BlockCase("affinegrid-matconvnet-layout", nn.affinegrid,
              lambda theta, dzdy=None: nn.affinegrid(theta, (2, 3), dzdy=dzdy),
              lambda rng: (normal(rng, 2, 6, 1, 1),),
              lambda theta: ref.affinegrid_reference(theta, (2, 3))),
]
