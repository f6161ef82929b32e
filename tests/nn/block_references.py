"""Loop references for every block of ``autonn.nn``, written from the MatConvNet manual's
formulas (chapters 4 and 6, H x W x C x N renamed NCHW) and sharing no code with autonn. The
block harness (block_harness, test_blocks) and the per-block tests use these same functions.

Each function takes NumPy arrays (any float dtype; the sums run in float64 Python scalars or
float64 arrays) and returns the block's forward output as a float64 array (a float for the
scalar losses); the ``*_derivatives_reference`` functions return derivatives, by the same
loops. They are slow on purpose: one output element at a time, exactly as the formula reads,
so that a mistake in the vectorised kernels cannot be repeated here. conv and convt alone
take the batch and the channel sum as array products, so that the kernels' tests can afford
them at the sizes that reach every code path of the kernels.
"""

import math

import numpy as np


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _nchw(a):
    """``a`` with trailing axes of size 1 up to 4 (an (N, C) array is (N, C, 1, 1))."""
    return np.reshape(a, np.shape(a) + (1,) * (4 - np.ndim(a)))


# ----------------------------------------------------------------------------- conv (4.1)
def conv_reference(x, w, b=None, stride=(1, 1), pad=(0, 0, 0, 0), dilate=(1, 1)):
    """y[n,k,oy,ox] = b[k] + sum_{c,i,j} w[k,c,i,j] x[n, g*C/G + c, oy*sh-pt+i*dh, ox*sw-pl+j*dw]
    with x zero outside the image and g = k // (K/G) the group of filter k (manual 4.1)."""
    x, w, b = _f64(x), _f64(w), _f64(b)
    padded, output_size, taps = _conv_taps(x, w, stride, pad, dilate)
    y = np.zeros((x.shape[0], w.shape[0]) + output_size)
    for k, channels, oy, ox, i, j, u, v in taps:
        y[:, k, oy, ox] += padded[:, channels, u, v] @ w[k, :, i, j]
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def conv_derivatives_reference(x, w, dy, stride=(1, 1), pad=(0, 0, 0, 0), dilate=(1, 1)):
    """dx and dw of <dy, conv(x, w)>, by the loops of conv_reference: each output's derivative
    goes back to the input values and the filter taps that made it."""
    x, w, dy = _f64(x), _f64(w), _f64(dy)
    padded, _, taps = _conv_taps(x, w, stride, pad, dilate)
    dpadded, dw = np.zeros(padded.shape), np.zeros(w.shape)
    for k, channels, oy, ox, i, j, u, v in taps:
        dpadded[:, channels, u, v] += np.outer(dy[:, k, oy, ox], w[k, :, i, j])
        dw[k, :, i, j] += dy[:, k, oy, ox] @ padded[:, channels, u, v]
    pt, _, pl, _ = pad
    return dpadded[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]], dw


def _conv_taps(x, w, stride, pad, dilate):
    """x zero-padded, the output size (Ho, Wo), and an iterator over the taps
    (k, channels, oy, ox, i, j, u, v): at output pixel (oy, ox), tap (i, j) of filter k reads
    the padded pixel (u, v) of its group's channels (a slice)."""
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = stride, pad, dilate
    padded = np.zeros((N, C, H + pt + pb, W + pl + pr))
    padded[:, :, pt:pt + H, pl:pl + W] = x
    Ho = (H + pt + pb - (dh * (kh - 1) + 1)) // sh + 1
    Wo = (W + pl + pr - (dw * (kw - 1) + 1)) // sw + 1
    filters_per_group = K // (C // Cg)
    taps = ((k, slice(g * Cg, (g + 1) * Cg), oy, ox, i, j, oy * sh + i * dh, ox * sw + j * dw)
            for k in range(K) for g in [k // filters_per_group]
            for oy in range(Ho) for ox in range(Wo) for i in range(kh) for j in range(kw))
    return padded, (Ho, Wo), taps


def conv_identity_reference(x, b=None, stride=(1, 1), pad=(0, 0, 0, 0)):
    """MatConvNet's empty filter bank: y[n,c,oy,ox] = x[n, c, oy*sh-pt, ox*sw-pl] + b[c] (a 1 x 1
    identity filter per channel; padding reads 0)."""
    x, b = _f64(x), _f64(b)
    N, C, H, W = x.shape
    (sh, sw), (pt, pb, pl, pr) = stride, pad
    Ho, Wo = (H + pt + pb - 1) // sh + 1, (W + pl + pr - 1) // sw + 1
    y = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    u, v = oy * sh - pt, ox * sw - pl
                    value = x[n, c, u, v] if 0 <= u < H and 0 <= v < W else 0.0
                    y[n, c, oy, ox] = value + (0.0 if b is None else b[c])
    return y


# ----------------------------------------------------------------------------- convt (4.2)
def convt_reference(x, w, b=None, upsample=(1, 1), crop=(0, 0, 0, 0), num_groups=1):
    """The transpose of conv, as a scatter: every input pixel adds x[n,c,y,x] w[c,k,i,j] to
    out[n, g*K+k, y*uh + i, x*uw + j], g = c // (C/G); then the crop (top, bottom, left,
    right) and the bias."""
    x, w, b = _f64(x), _f64(w), _f64(b)
    N, C, H, W = x.shape
    _, K, kh, kw = w.shape
    (uh, uw), (ct, cb, cl, cr), G = upsample, crop, num_groups
    full = np.zeros((N, K * G, uh * (H - 1) + kh, uw * (W - 1) + kw))
    for c in range(C):
        g = c // (C // G)
        for yy in range(H):
            for xx in range(W):
                for i in range(kh):
                    for j in range(kw):
                        full[:, g * K:(g + 1) * K, yy * uh + i, xx * uw + j] += np.outer(
                            x[:, c, yy, xx], w[c, :, i, j])
    y = full[:, :, ct:full.shape[2] - cb, cl:full.shape[3] - cr]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


# ----------------------------------------------------------------------------- pool (4.3)
def pool_reference(x, size, method="max", stride=(1, 1), pad=(0, 0, 0, 0)):
    """Max or mean over each window clipped to the input: padding takes no part (max pads with
    -inf, avg divides by the number of unpadded elements, manual 4.3)."""
    x = _f64(x)
    windows, output_shape = _pool_windows(x.shape, size, stride, pad)
    y = np.zeros(output_shape)
    for out, rows, cols in windows:
        window = x[out[:2] + (rows, cols)]
        y[out] = window.max() if method == "max" else window.mean()
    return y


def pool_derivatives_reference(x, dzdy, size, method="max", stride=(1, 1), pad=(0, 0, 0, 0)):
    """dx of <dzdy, pool(x)>: max credits each output's derivative to the first maximum of
    its window in row-major order (MatConvNet's tie rule), avg shares it out over the
    window's unpadded elements."""
    x, dzdy = _f64(x), _f64(dzdy)
    windows, _ = _pool_windows(x.shape, size, stride, pad)
    dx = np.zeros(x.shape)
    for out, rows, cols in windows:
        n, c = out[:2]
        window = x[n, c, rows, cols]
        if method == "max":
            r, s = np.unravel_index(np.argmax(window), window.shape)
            dx[n, c, rows.start + r, cols.start + s] += dzdy[out]
        else:
            dx[n, c, rows, cols] += dzdy[out] / window.size
    return dx


def _pool_windows(shape, size, stride, pad):
    """Every ((n, c, oy, ox), rows, cols), the slices of the window of output (oy, ox) clipped
    to the image, and the output shape."""
    N, C, H, W = shape
    (ph, pw), (sh, sw), (pt, pb, pl, pr) = size, stride, pad
    Ho, Wo = (H + pt + pb - ph) // sh + 1, (W + pl + pr - pw) // sw + 1
    windows = [((n, c, oy, ox), slice(max(oy * sh - pt, 0), min(oy * sh - pt + ph, H)),
                slice(max(ox * sw - pl, 0), min(ox * sw - pl + pw, W)))
               for n in range(N) for c in range(C) for oy in range(Ho) for ox in range(Wo)]
    return windows, (N, C, Ho, Wo)


# ----------------------------------------------------------------------------- activations (4.4)
def relu_reference(x, leak=0.0):
    """y = x where x > 0, leak * x elsewhere."""
    return np.vectorize(lambda v: v if v > 0 else leak * v, otypes=[np.float64])(_f64(x))


def maxout_reference(x, units):
    """AutoNN's vl_nnmaxout: y[n, b, i, j] = max over u < units of x[n, b*units + u, i, j]."""
    x = _f64(x)
    N, C, H, W = x.shape
    y = np.empty((N, C // units, H, W))
    for n, b, i, j in np.ndindex(*y.shape):
        y[n, b, i, j] = max(x[n, b * units + u, i, j] for u in range(units))
    return y


def sigmoid_reference(x):
    """y = 1 / (1 + e^-x)."""
    return np.vectorize(lambda v: 1 / (1 + math.exp(-v)) if v > -700 else 0.0,
                        otypes=[np.float64])(_f64(x))


def softmax_reference(x):
    """y_k = e^(x_k - m) / sum_t e^(x_t - m) over the channels, m = max_t x_t (manual 6.5.4)."""
    x = _f64(x)
    x4 = _nchw(x)
    y = np.zeros(x4.shape)
    for n in range(x4.shape[0]):
        for i in range(x4.shape[2]):
            for j in range(x4.shape[3]):
                m = max(x4[n, :, i, j])
                e = [math.exp(v - m) for v in x4[n, :, i, j]]
                y[n, :, i, j] = [v / sum(e) for v in e]
    return y.reshape(x.shape)


# ----------------------------------------------------------------------------- normalisation (4.5)
def lrn_reference(x, depth, kappa, alpha, beta):
    """y_k = x_k (kappa + alpha sum_{t in G(k)} x_t^2)^-beta, G(k) = [k - floor((depth-1)/2),
    k + ceil((depth-1)/2)] clipped to the channels."""
    x = _f64(x)
    N, C, H, W = x.shape
    y = np.zeros(x.shape)
    for k in range(C):
        lo, hi = k - (depth - 1) // 2, k + math.ceil((depth - 1) / 2)
        for n in range(N):
            for i in range(H):
                for j in range(W):
                    s = sum(x[n, t, i, j] ** 2 for t in range(max(lo, 0), min(hi, C - 1) + 1))
                    y[n, k, i, j] = x[n, k, i, j] * (kappa + alpha * s) ** (-beta)
    return y


def bnorm_reference(x, g=None, b=None, moments=None, epsilon=1e-4):
    """y = g_k (x - mu_k) / sigma_k + b_k, with the batch moments of
    :func:`bnorm_moments_reference` (manual 4.5.2) or the given moments [mu, sigma]."""
    x, g, b = _f64(x), _f64(g), _f64(b)
    moments = bnorm_moments_reference(x, epsilon) if moments is None else _f64(moments)
    x4 = _nchw(x)
    N, C, H, W = x4.shape
    y = np.zeros(x4.shape)
    for k in range(C):
        mu, sigma = moments[k]
        gain = 1.0 if g is None else g[k]
        bias = 0.0 if b is None else b[k]
        for n in range(N):
            for i in range(H):
                for j in range(W):
                    y[n, k, i, j] = gain * (x4[n, k, i, j] - mu) / sigma + bias
    return y.reshape(x.shape)


def bnorm_derivatives_reference(x, g, dzdy, moments=None, epsilon=1e-4):
    """(dx, dg, db) of <dzdy, bnorm(x, g, b)> with the moments treated as the batch's own
    (manual 6.5.2; MatConvNet's vl_nnbnorm, also when it is given the moments): with
    M = N H W, xhat = (x - mu) / sigma, dg_k = sum dzdy xhat, db_k = sum dzdy and
    dx = g_k / sigma_k (dzdy - db_k / M - xhat dg_k / M), by loops over channel k."""
    x, dzdy = _f64(x), _f64(dzdy)
    moments = bnorm_moments_reference(x, epsilon) if moments is None else _f64(moments)
    x4, dy4 = _nchw(x), _nchw(dzdy)
    N, C, H, W = x4.shape
    mass = N * H * W
    dx, dg, db = np.zeros(x4.shape), np.zeros(C), np.zeros(C)
    for k in range(C):
        mu, sigma = moments[k]
        gain = 1.0 if g is None else float(_f64(g)[k])
        for n, i, j in np.ndindex(N, H, W):
            dg[k] += dy4[n, k, i, j] * (x4[n, k, i, j] - mu) / sigma
            db[k] += dy4[n, k, i, j]
        for n, i, j in np.ndindex(N, H, W):
            xhat = (x4[n, k, i, j] - mu) / sigma
            dx[n, k, i, j] = gain / sigma * (dy4[n, k, i, j] - db[k] / mass - xhat * dg[k] / mass)
    return dx.reshape(x.shape), dg, db


def bnorm_moments_reference(x, epsilon=1e-4):
    """(C, 2) [mu_k, sigma_k]: the mean of channel k over N, H, W and sigma_k =
    sqrt(var_k + epsilon), var_k the biased variance."""
    x4 = _nchw(_f64(x))
    N, C, H, W = x4.shape
    moments = np.zeros((C, 2))
    for k in range(C):
        values = [x4[n, k, i, j] for n in range(N) for i in range(H) for j in range(W)]
        mu = sum(values) / len(values)
        moments[k] = mu, math.sqrt(sum((v - mu) ** 2 for v in values) / len(values) + epsilon)
    return moments


def spnorm_reference(x, ph, pw, alpha, beta):
    """n^2 = mean of x^2 over the ph x pw window starting floor((ph-1)/2) rows and
    floor((pw-1)/2) columns before the pixel, cropped to the image; y = x (1 + alpha n^2)^-beta
    (manual 4.5.3)."""
    x = _f64(x)
    N, C, H, W = x.shape
    y = np.zeros(x.shape)
    top, left = (ph - 1) // 2, (pw - 1) // 2
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    cells = [x[n, c, u, v] ** 2 for u in range(i - top, i - top + ph)
                             for v in range(j - left, j - left + pw) if 0 <= u < H and 0 <= v < W]
                    n2 = sum(cells) / len(cells)
                    y[n, c, i, j] = x[n, c, i, j] * (1 + alpha * n2) ** (-beta)
    return y


def normalizelp_reference(x, p=2, epsilon=0.01, spatial=False, dimensions=None):
    """y = x / (sum x^p + epsilon)^(1/p), the sum over the channels of each pixel, over the
    pixels of each channel when spatial, or over the NCHW axes ``dimensions``
    (vl_nnnormalizelp): each group of elements that agree on the other axes has one norm."""
    x = _f64(x)
    if dimensions is None:
        dimensions = (2, 3) if spatial else (1,)
    dimensions = tuple(np.atleast_1d(dimensions))
    kept = [axis for axis in range(x.ndim) if axis not in dimensions]
    y = np.zeros(x.shape)
    groups = {}
    for index in np.ndindex(*x.shape):
        groups.setdefault(tuple(index[axis] for axis in kept), []).append(index)
    for members in groups.values():
        mass = (sum(x[index] ** p for index in members) + epsilon) ** (1 / p)
        for index in members:
            y[index] = x[index] / mass
    return y


def noffset_reference(x, a, b):
    """y = x - a L^b with L = max(sum_c x_c^2, 1e-8) at each pixel (vl_nnnoffset)."""
    x = _f64(x)
    x4 = _nchw(x)
    N, C, H, W = x4.shape
    y = np.zeros(x4.shape)
    for n in range(N):
        for i in range(H):
            for j in range(W):
                energy = max(sum(x4[n, c, i, j] ** 2 for c in range(C)), 1e-8)
                for c in range(C):
                    y[n, c, i, j] = x4[n, c, i, j] - a * energy ** b
    return y.reshape(x.shape)


# ----------------------------------------------------------------------------- losses (4.6)
CATEGORICAL_LOSSES = ("classerror", "topkerror", "log", "softmaxlog", "mhinge", "mshinge")
ATTRIBUTE_LOSSES = ("binaryerror", "binarylog", "logistic", "hinge")


def per_location_loss(kind, scores, c, topk=5, threshold=0.0):
    """The loss at one location: scores (C,) and a class c, or attributes c (C,) of +-1 (0:
    ignored), as vl_nnloss defines them."""
    if kind == "classerror":
        return float(int(np.argmax(scores)) != c)
    if kind == "topkerror":
        order = sorted(range(len(scores)), key=lambda k: (-scores[k], k))
        return float(c not in order[:topk])
    if kind == "log":
        return -math.log(max(scores[c], 1e-8))
    if kind == "softmaxlog":
        m = max(scores)
        return m + math.log(sum(math.exp(v - m) for v in scores)) - scores[c]
    if kind == "mhinge":
        return max(0.0, 1 - scores[c])
    if kind == "mshinge":
        others = [v for k, v in enumerate(scores) if k != c]
        return max(0.0, 1 - scores[c] + max(others)) if others else 0.0
    terms = []
    for x, a in zip(scores, c):
        if a == 0:
            terms.append(0.0)
        elif kind == "binaryerror":
            terms.append(float(np.sign(x - threshold) != a))
        elif kind == "binarylog":
            terms.append(-math.log(max(a * (x - 0.5) + 0.5, 1e-8)))
        elif kind == "logistic":
            terms.append(math.log1p(math.exp(-a * x)))
        else:
            terms.append(max(0.0, 1 - a * x))
    return terms


def loss_reference(kind, x, c, weights=None, normalise=True, **options):
    """Sum over the locations of weight x per-location loss (ignored labels, c < 0 or attribute
    0, add nothing), divided by N when normalise. The weights broadcast against (N, 1, H, W)
    (classes) or x (attributes) once given trailing axes to 4-D, so (N,) weighs whole images."""
    x = _nchw(_f64(x))
    N, C, H, W = x.shape
    total = 0.0
    for n in range(N):
        for i in range(H):
            for j in range(W):
                if kind in CATEGORICAL_LOSSES:
                    label = int(c[n]) if c.ndim == 1 else int(np.reshape(c, (N, H, W))[n, i, j])
                    if label < 0:
                        continue
                    w = 1.0 if weights is None else float(
                        np.broadcast_to(_nchw(weights), (N, 1, H, W))[n, 0, i, j])
                    total += w * per_location_loss(kind, x[n, :, i, j], label, **options)
                else:
                    labels = np.reshape(c, x.shape)
                    w = (np.ones(C) if weights is None else
                         np.broadcast_to(_nchw(weights), x.shape)[n, :, i, j])
                    terms = per_location_loss(kind, x[n, :, i, j], labels[n, :, i, j], **options)
                    total += sum(wk * t for wk, t in zip(w, terms))
    return total / N if normalise else total


def pdist_reference(x, x0, p, no_root=False, instance_weights=None, aggregate=False):
    """y_ij = (sum_c |x_c - x0_c|^p)^(1/p) (without the root when no_root), times the instance
    weights, summed when aggregate (manual 4.6.3)."""
    x = _f64(x)
    x0 = np.broadcast_to(_f64(x0), x.shape)
    N, C, H, W = x.shape
    y = np.zeros((N, 1, H, W))
    for n in range(N):
        for i in range(H):
            for j in range(W):
                s = sum(abs(x[n, c, i, j] - x0[n, c, i, j]) ** p for c in range(C))
                y[n, 0, i, j] = s if no_root else s ** (1 / p)
    if instance_weights is not None:
        y = y * np.broadcast_to(_f64(instance_weights), y.shape)
    return y.sum() if aggregate else y


# ----------------------------------------------------------------------------- lstm (AutoNN)
def _logistic(v):
    return 1 / (1 + math.exp(-v))


def lstm_reference(x, h, c, W, b):
    """vl_nnlstm, unit by unit: z_k = W[k*d + j] . [x_n; h_n] + b[k*d + j] for the gates
    k = i, f, o, g; c'_nj = f c_nj + i g, h'_nj = o tanh(c'_nj) with i, f, o the logistic of
    their z and g = tanh(z_g). Returns [h' c'] (the two outputs along axis 1)."""
    x, h, c, W, b = (_f64(a) for a in (x, h, c, W, b))
    N, d = x.shape[0], W.shape[0] // 4
    xh = np.concatenate([x.reshape(N, -1), h.reshape(N, -1)], axis=1)
    cells, biases = c.reshape(N, d), b.ravel()
    out = np.zeros((N, 2 * d))
    for n in range(N):
        for j in range(d):
            z = [sum(W[k * d + j, t] * xh[n, t] for t in range(xh.shape[1])) + biases[k * d + j]
                 for k in range(4)]
            i, f, o, g = _logistic(z[0]), _logistic(z[1]), _logistic(z[2]), math.tanh(z[3])
            cell = f * cells[n, j] + i * g
            out[n, j], out[n, d + j] = o * math.tanh(cell), cell
    return out.reshape((N, 2 * d) + h.shape[2:])


def lstm_derivatives_reference(x, h, c, W, b, dh_next, dc_next, clip=None):
    """vl_nnlstm's backward as its MATLAB code reads (d x N there, N x d here): (dx, dh, dc, dW,
    db), each clamped to [-clip_k, clip_k] by the 5 values of ``clip`` (its clipGrad)."""
    x, h, c, W, b, dh_next, dc_next = (_f64(a) for a in (x, h, c, W, b, dh_next, dc_next))
    N, d = x.shape[0], W.shape[0] // 4
    m = W.shape[1] - d
    xh = np.concatenate([x.reshape(N, -1), h.reshape(N, -1)], axis=1).T    # (m + d) x N
    cp, dhn, dcn = c.reshape(N, d).T, dh_next.reshape(N, d).T, dc_next.reshape(N, d).T
    lxh = W @ xh + b.reshape(-1, 1)
    ig, fg, og = (1 / (1 + np.exp(-lxh[k * d:(k + 1) * d])) for k in range(3))
    gg = np.tanh(lxh[3 * d:])
    tanh_cn = np.tanh(fg * cp + ig * gg)
    dcn_full = dcn + og * dhn * (1 - tanh_cn * tanh_cn)
    dcp = dcn_full * fg
    dgates = np.concatenate([dcn_full * gg * ig * (1 - ig), dcn_full * cp * fg * (1 - fg),
                             dhn * tanh_cn * og * (1 - og), dcn_full * ig * (1 - gg * gg)])
    dxh = W.T @ dgates
    ders = [dxh[:m].T.reshape(x.shape), dxh[m:].T.reshape(h.shape), dcp.T.reshape(c.shape),
            dgates @ xh.T, dgates.sum(axis=1).reshape(b.shape)]
    if clip is not None:
        ders = [np.clip(der, -limit, limit) for der, limit in zip(ders, clip)]
    return tuple(ders)


# ----------------------------------------------------------------------------- data movement
def dropout_reference(x, mask):
    """Inverted dropout with a given (already scaled) mask: y = x * mask."""
    x, mask = _f64(x), _f64(mask)
    y = np.zeros(x.shape)
    for index in np.ndindex(*x.shape):
        y[index] = x[index] * mask[index]
    return y


def crop_reference(x, crop):
    """y[n, c, i, j] = x[n, c, top + i, left + j] for (top, bottom, left, right) crops."""
    x = _f64(x)
    top, bottom, left, right = crop
    N, C, H, W = x.shape
    y = np.zeros((N, C, H - top - bottom, W - left - right))
    for n, c, i, j in np.ndindex(*y.shape):
        y[n, c, i, j] = x[n, c, top + i, left + j]
    return y


def concat_reference(xs, axis=1):
    """The arrays one after the other along ``axis``."""
    xs = [_f64(x) for x in xs]
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    y = np.zeros(shape)
    start = 0
    for x in xs:
        for index in np.ndindex(*x.shape):
            target = list(index)
            target[axis] += start
            y[tuple(target)] = x[index]
        start += x.shape[axis]
    return y


# ----------------------------------------------------------------------------- ROI, sampling
def roipool_reference(x, rois, method="max", subdivisions=(1, 1), scale=1.0):
    """Fast R-CNN's bins: ROI [n, x1, y1, x2, y2] (0-based, inclusive) covers rows
    round(y1) .. round(y2) (round half up, at least one row), likewise columns; bin (i, j) spans
    rows [floor(i h / sh), ceil((i+1) h / sh)) from the top, clipped to the image; max or mean
    per channel, 0 for an empty bin."""
    x = _f64(x)
    _, C, H, W = x.shape
    sh, sw = subdivisions
    out = np.zeros((len(rois), C, sh, sw))
    for r, (n, x1, y1, x2, y2) in enumerate(np.asarray(rois, dtype=np.float64)):
        def rnd(v):
            return math.floor(v * scale + 0.5)
        top, left = rnd(y1), rnd(x1)
        h, w = max(rnd(y2) - top + 1, 1), max(rnd(x2) - left + 1, 1)
        for i in range(sh):
            for j in range(sw):
                rows = range(top + math.floor(i * h / sh), top + math.ceil((i + 1) * h / sh))
                cols = range(left + math.floor(j * w / sw), left + math.ceil((j + 1) * w / sw))
                cells = [(u, v) for u in rows for v in cols if 0 <= u < H and 0 <= v < W]
                if not cells:
                    continue
                values = np.array([x[int(n), :, u, v] for u, v in cells])
                out[r, :, i, j] = values.max(axis=0) if method == "max" else values.mean(axis=0)
    return out


def bilinearsampler_reference(x, grid):
    """y[n, c, i, j] = sum_{u, v} x[m, c, u, v] max(0, 1 - |py - u|) max(0, 1 - |px - v|) with
    (py, px) = ((grid_y + 1) (H - 1) / 2, (grid_x + 1) (W - 1) / 2) and m = n // (N / Nx)."""
    x, grid = _f64(x), _f64(grid)
    Nx, C, H, W = x.shape
    N, Ho, Wo, _ = grid.shape
    y = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        m = n // (N // Nx)
        for i in range(Ho):
            for j in range(Wo):
                py = (grid[n, i, j, 0] + 1) / 2 * (H - 1)
                px = (grid[n, i, j, 1] + 1) / 2 * (W - 1)
                for u in range(H):
                    for v in range(W):
                        weight = max(0, 1 - abs(py - u)) * max(0, 1 - abs(px - v))
                        y[n, :, i, j] += weight * x[m, :, u, v]
    return y


def affinegrid_reference(theta, size):
    """grid[n, i, j] = A_n (h_i, w_j, 1) with h = linspace(-1, 1, Ho), w = linspace(-1, 1, Wo)
    and A_n = [[c1, c2, c5], [c3, c4, c6]] (MatConvNet's (N, 6) layout read in that order)."""
    theta = _f64(theta)
    if theta.shape[1:] != (2, 3):
        c = theta.reshape(theta.shape[0], 6)
        theta = np.stack([c[:, [0, 1, 4]], c[:, [2, 3, 5]]], axis=1)
    Ho, Wo = size
    h = np.linspace(-1, 1, Ho) if Ho > 1 else np.ones(1)
    w = np.linspace(-1, 1, Wo) if Wo > 1 else np.ones(1)
    grid = np.zeros((theta.shape[0], Ho, Wo, 2))
    for n in range(theta.shape[0]):
        for i in range(Ho):
            for j in range(Wo):
                for d in range(2):
                    grid[n, i, j, d] = (theta[n, d, 0] * h[i] + theta[n, d, 1] * w[j]
                                        + theta[n, d, 2])
    return grid
