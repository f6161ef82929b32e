"""Loop references for every block of ``autonn.nn``, written from the MatConvNet manual's
formulas (chapters 4 and 6, H x W x C x N renamed NCHW) and sharing no code with autonn.

Each function takes NumPy arrays (any float dtype; the sums run in float64 Python scalars or
float64 arrays) and returns the block's forward output as a float64 array (a float for the
scalar losses). They are slow on purpose: one output element at a time, exactly as the formula
reads, so that a mistake in the vectorised kernels cannot be repeated here.
"""

import math

import numpy as np


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


# ----------------------------------------------------------------------------- conv (4.1)
def conv_reference(x, w, b=None, stride=(1, 1), pad=(0, 0, 0, 0), dilate=(1, 1)):
    """y[n,k,oy,ox] = b[k] + sum_{c,i,j} w[k,c,i,j] x[n, g*C/G + c, oy*sh-pt+i*dh, ox*sw-pl+j*dw]
    with x zero outside the image and g = k // (K/G) the group of filter k (manual 4.1)."""
    x, w, b = _f64(x), _f64(w), _f64(b)
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    G, (sh, sw), (pt, pb, pl, pr), (dh, dw) = C // Cg, stride, pad, dilate
    Kg = K // G
    Ho = (H + pt + pb - (dh * (kh - 1) + 1)) // sh + 1
    Wo = (W + pl + pr - (dw * (kw - 1) + 1)) // sw + 1
    y = np.zeros((N, K, Ho, Wo))
    for n in range(N):
        for k in range(K):
            g = k // Kg
            for oy in range(Ho):
                for ox in range(Wo):
                    total = 0.0 if b is None else b[k]
                    for c in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                u, v = oy * sh - pt + i * dh, ox * sw - pl + j * dw
                                if 0 <= u < H and 0 <= v < W:
                                    total += w[k, c, i, j] * x[n, g * Cg + c, u, v]
                    y[n, k, oy, ox] = total
    return y


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
    out[n, g*K+k, y*uh - ct + i, x*uw - cl + j], g = c // (C/G); then the crop and the bias."""
    x, w, b = _f64(x), _f64(w), _f64(b)
    N, C, H, W = x.shape
    _, K, kh, kw = w.shape
    (uh, uw), (ct, cb, cl, cr), G = upsample, crop, num_groups
    Ho, Wo = uh * (H - 1) + kh - ct - cb, uw * (W - 1) + kw - cl - cr
    y = np.zeros((N, K * G, Ho, Wo))
    for n in range(N):
        for c in range(C):
            g = c // (C // G)
            for yy in range(H):
                for xx in range(W):
                    for k in range(K):
                        for i in range(kh):
                            for j in range(kw):
                                u, v = yy * uh - ct + i, xx * uw - cl + j
                                if 0 <= u < Ho and 0 <= v < Wo:
                                    y[n, g * K + k, u, v] += x[n, c, yy, xx] * w[c, k, i, j]
    if b is not None:
        for k in range(K * G):
            y[:, k] += b[k]
    return y


# ----------------------------------------------------------------------------- pool (4.3)
def pool_reference(x, size, method="max", stride=(1, 1), pad=(0, 0, 0, 0)):
    """Max or mean over each window clipped to the input: padding takes no part (max pads with
    -inf, avg divides by the number of unpadded elements, manual 4.3)."""
    x = _f64(x)
    N, C, H, W = x.shape
    (ph, pw), (sh, sw), (pt, pb, pl, pr) = size, stride, pad
    Ho, Wo = (H + pt + pb - ph) // sh + 1, (W + pl + pr - pw) // sw + 1
    y = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    cells = [x[n, c, u, v]
                             for u in range(oy * sh - pt, oy * sh - pt + ph)
                             for v in range(ox * sw - pl, ox * sw - pl + pw)
                             if 0 <= u < H and 0 <= v < W]
                    y[n, c, oy, ox] = max(cells) if method == "max" else sum(cells) / len(cells)
    return y


# ----------------------------------------------------------------------------- activations (4.4)
def relu_reference(x, leak=0.0):
    """y = x where x > 0, leak * x elsewhere."""
    return np.vectorize(lambda v: v if v > 0 else leak * v, otypes=[np.float64])(_f64(x))


def sigmoid_reference(x):
    """y = 1 / (1 + e^-x)."""
    return np.vectorize(lambda v: 1 / (1 + math.exp(-v)) if v > -700 else 0.0,
                        otypes=[np.float64])(_f64(x))


def softmax_reference(x):
    """y_k = e^(x_k - m) / sum_t e^(x_t - m) over the channels, m = max_t x_t (manual 6.5.4)."""
    x = _f64(x)
    x4 = x.reshape(x.shape + (1,) * (4 - x.ndim))
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
    """y = g_k (x - mu_k) / sqrt(sigma_k^2 + epsilon) + b_k with the batch mean and (biased)
    variance of channel k over N, H, W (manual 4.5.2); given moments [mu, sigma] replace them."""
    x, g, b, moments = _f64(x), _f64(g), _f64(b), _f64(moments)
    x4 = x.reshape(x.shape + (1,) * (4 - x.ndim))
    N, C, H, W = x4.shape
    y = np.zeros(x4.shape)
    for k in range(C):
        if moments is None:
            values = [x4[n, k, i, j] for n in range(N) for i in range(H) for j in range(W)]
            mu = sum(values) / len(values)
            sigma = math.sqrt(sum((v - mu) ** 2 for v in values) / len(values) + epsilon)
        else:
            mu, sigma = moments[k]
        gain = 1.0 if g is None else g[k]
        bias = 0.0 if b is None else b[k]
        for n in range(N):
            for i in range(H):
                for j in range(W):
                    y[n, k, i, j] = gain * (x4[n, k, i, j] - mu) / sigma + bias
    return y.reshape(x.shape)


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


def normalizelp_reference(x, p=2, epsilon=0.01, spatial=False):
    """y = x / (sum x^p + epsilon)^(1/p), the sum over the channels of each pixel, or over the
    pixels of each channel when spatial (vl_nnnormalizelp)."""
    x = _f64(x)
    x4 = x.reshape(x.shape + (1,) * (4 - x.ndim))
    N, C, H, W = x4.shape
    y = np.zeros(x4.shape)
    for n in range(N):
        if spatial:
            for c in range(C):
                mass = (sum(x4[n, c, i, j] ** p for i in range(H) for j in range(W))
                        + epsilon) ** (1 / p)
                y[n, c] = x4[n, c] / mass
        else:
            for i in range(H):
                for j in range(W):
                    mass = (sum(x4[n, c, i, j] ** p for c in range(C)) + epsilon) ** (1 / p)
                    y[n, :, i, j] = x4[n, :, i, j] / mass
    return y.reshape(x.shape)


def noffset_reference(x, a, b):
    """y = x - a L^b with L = max(sum_c x_c^2, 1e-8) at each pixel (vl_nnnoffset)."""
    x = _f64(x)
    x4 = x.reshape(x.shape + (1,) * (4 - x.ndim))
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
    0, add nothing), divided by N when normalise."""
    x = _f64(x)
    x = x.reshape(x.shape + (1,) * (4 - x.ndim))
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
                        np.broadcast_to(weights, (N, 1, H, W))[n, 0, i, j])
                    total += w * per_location_loss(kind, x[n, :, i, j], label, **options)
                else:
                    labels = np.reshape(c, x.shape)
                    w = (np.ones(C) if weights is None else
                         np.broadcast_to(np.reshape(weights, x.shape), x.shape)[n, :, i, j])
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
