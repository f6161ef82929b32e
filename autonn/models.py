"""Ready graphs: LeNet, the practical's character CNN, VGG-style, ResNet, AlexNet-style, NIN,
and a character-level LSTM language model (:func:`lstm_language_model`, AutoNN's
``rnn_lstm_shakespeare``; its Inputs and outputs are described there).

Each function builds a graph on two named Inputs, ``images`` (N, C, H, W) and ``labels`` (N,),
and returns a dict of Layers::

    images, labels   the Inputs
    prediction       class scores (N, num_classes, 1, 1)
    objective        softmax log-loss, averaged over the batch
    top1err          fraction of images whose best score is not the label
    top5err          fraction whose label is not among the 5 best scores (num_classes > 5)

Train with ``net = an.Net(m['objective'], m['top1err'], m['top5err'])`` (or
``an.Net(*m['outputs'])``) and deploy with ``an.Net(m['prediction'])``: the Params are shared.

Every model takes ``seed`` (filters are drawn from their own generator, so building a model does
not touch NumPy's global random state and the same seed gives the same net) and most take
``num_classes``, ``channels`` and ``input_size``. Filters are initialised with He's rule
(Gaussian, std sqrt(2 / fan-in)) for layers followed by a ReLU and Xavier's (MatConvNet's
default) otherwise; biases start at zero. All models expect mean-subtracted images of roughly
unit range, as :mod:`autonn.datasets` produces them.
"""

import math

import numpy as np

from . import nn
from .layer import Input, Param
from .loops import For

__all__ = ["alexnet", "character_cnn", "lenet", "lstm_language_model", "nin", "resnet",
           "sample_text", "vgg"]

RESNET_BLOCKS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
                 152: ("bottleneck", (3, 8, 36, 3))}
VGG_CONVS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3),
             19: (2, 2, 4, 4, 4)}


def lenet(*, num_classes=10, channels=1, input_size=28, batch_norm=False, seed=0):
    """LeNet as MatConvNet's ``cnn_mnist``: conv 5x5x20, max-pool 2, conv 5x5x50, max-pool 2,
    conv 4x4x500 (fully connected), ReLU, conv 1x1 (classifier); ``batch_norm`` adds bnorm
    after the first three convolutions (``cnn_mnist``'s batchNormalization option).

    ``input_size`` is 28 for MNIST-sized images; other sizes get a last-but-one filter that
    covers whatever the pooling left (at least 1x1).
    """
    builder = _Builder(seed, "lenet", channels, input_size)
    x = builder.conv(builder.images, 5, 20, relu=False, batch_norm=batch_norm)
    x = builder.pool(x, 2, stride=2)
    x = builder.conv(x, 5, 50, relu=False, batch_norm=batch_norm)
    x = builder.pool(x, 2, stride=2)
    x = builder.conv(x, builder.size, 500, batch_norm=batch_norm)
    scores = builder.conv(x, 1, num_classes, relu=False, init="xavier")
    return builder.finish(scores, num_classes)


def character_cnn(*, num_classes=26, channels=1, input_size=32, batch_norm=False, seed=0):
    """The practical's character CNN (``initializeCharacterCNN.m``), for 32x32 letters:
    conv 5x5x20, max-pool 2, conv 5x5x50, max-pool 2, conv 4x4x500, ReLU, conv 2x2x26.

    Being fully convolutional it also runs on a wide image (a whole sentence) and gives one
    column of scores per 4-pixel step, as in Part 4.5 of the practical.
    """
    builder = _Builder(seed, "character_cnn", channels, input_size)
    x = builder.conv(builder.images, 5, 20, relu=False, batch_norm=batch_norm)
    x = builder.pool(x, 2, stride=2)
    x = builder.conv(x, 5, 50, relu=False, batch_norm=batch_norm)
    x = builder.pool(x, 2, stride=2)
    x = builder.conv(x, 4, 500, batch_norm=batch_norm)
    scores = builder.conv(x, builder.size, num_classes, relu=False, init="xavier")
    return builder.finish(scores, num_classes)


def vgg(*, depth=16, width=64, fc_width=4096, num_classes=1000, channels=3, input_size=224,
        batch_norm=True, dropout=0.5, seed=0):
    """VGG-style network (Simonyan and Zisserman): five stages of 3x3 convolutions (padding 1)
    with ``width``, 2, 4, 8, 8 x ``width`` channels, each followed by max-pool 2, then two
    fully-connected layers of ``fc_width`` (with dropout) and the classifier.

    depth : 11, 13, 16 or 19 (VGG's configurations A, B, D, E), or a tuple of convolutions per
        stage (fewer stages for small images, e.g. ``(1, 1, 1)`` for 32x32).
    batch_norm : bnorm after every convolution (without it a deep VGG trains poorly from
        scratch).
    """
    convs = VGG_CONVS.get(depth, depth) if isinstance(depth, int) else tuple(depth)
    if isinstance(convs, int):
        raise ValueError(f"vgg: depth must be one of {sorted(VGG_CONVS)} or a tuple of "
                         f"convolutions per stage, got {depth!r}")
    builder = _Builder(seed, "vgg", channels, input_size)
    x = builder.images
    for stage, count in enumerate(convs):
        stage_width = width * min(2 ** stage, 8)
        for _ in range(count):
            x = builder.conv(x, 3, stage_width, pad=1, batch_norm=batch_norm)
        x = builder.pool(x, 2, stride=2)
    x = builder.conv(x, builder.size, fc_width, batch_norm=batch_norm)
    x = builder.dropout(x, dropout)
    x = builder.conv(x, 1, fc_width, batch_norm=batch_norm)
    x = builder.dropout(x, dropout)
    scores = builder.conv(x, 1, num_classes, relu=False, init="xavier")
    return builder.finish(scores, num_classes)


def resnet(*, depth=18, width=64, num_classes=1000, channels=3, input_size=224,
           small_input=False, seed=0):
    """ResNet (He et al.) with basic (two 3x3 convolutions) or bottleneck (1x1, 3x3, 1x1 with a
    4x expansion) blocks, batch normalisation after every convolution, identity shortcuts, and
    1x1 projections (with bnorm) where the shape changes.

    depth : 18, 34 (basic), 50, 101, 152 (bottleneck), or a pair ``('basic' | 'bottleneck',
        blocks per stage)``, e.g. ``('basic', (1, 1, 1))`` for a small net.
    small_input : for 32x32-like images use a 3x3 stem without max-pooling (the CIFAR variant)
        instead of ImageNet's 7x7/2 convolution and 3x3/2 max-pool.
    """
    if isinstance(depth, int):
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"resnet: depth must be one of {sorted(RESNET_BLOCKS)} or a pair "
                             f"(kind, blocks per stage), got {depth!r}")
        kind, blocks = RESNET_BLOCKS[depth]
    else:
        kind, blocks = depth
    if kind not in ("basic", "bottleneck"):
        raise ValueError(f"resnet: block kind must be 'basic' or 'bottleneck', got {kind!r}")
    builder = _Builder(seed, "resnet", channels, input_size)
    if small_input:
        x = builder.conv(builder.images, 3, width, pad=1, batch_norm=True)
    else:
        x = builder.conv(builder.images, 7, width, stride=2, pad=3, batch_norm=True)
        x = builder.pool(x, 3, stride=2, pad=1)
    for stage, count in enumerate(blocks):
        for block in range(count):
            stride = 2 if stage > 0 and block == 0 else 1
            planes = width * 2 ** stage
            if kind == "basic":
                x = builder.basic_block(x, planes, stride)
            else:
                x = builder.bottleneck_block(x, planes, stride)
    x = builder.global_average(x)
    scores = builder.conv(x, 1, num_classes, relu=False, init="xavier")
    return builder.finish(scores, num_classes)


def alexnet(*, width=1.0, num_classes=1000, channels=3, input_size=227, batch_norm=False,
            dropout=0.5, seed=0):
    """AlexNet-style network (Krizhevsky et al., MatConvNet's ``cnn_imagenet_init``
    'alexnet'): conv 11x11/4 x96, LRN, max-pool 3/2, conv 5x5 x256, LRN, max-pool 3/2,
    conv 3x3 x384, x384, x256, max-pool 3/2, two fully-connected layers of 4096 with dropout,
    classifier. ``width`` scales every layer's channels; ``batch_norm`` replaces LRN with
    bnorm after every convolution (MatConvNet's 'alexnet-bnorm')."""
    def channels_of(n):
        return max(1, int(round(n * width)))

    builder = _Builder(seed, "alexnet", channels, input_size)
    x = builder.images
    for filters, size, stride, pad, lrn_and_pool in ((96, 11, 4, 0, True), (256, 5, 1, 2, True),
                                                      (384, 3, 1, 1, False),
                                                      (384, 3, 1, 1, False),
                                                      (256, 3, 1, 1, None)):
        x = builder.conv(x, size, channels_of(filters), stride=stride, pad=pad,
                         batch_norm=batch_norm)
        if lrn_and_pool and not batch_norm:
            # MatConvNet's alexnet: depth 5, kappa 1, alpha 1e-4/5, beta 0.75.
            x = nn.normalize(x, (5, 1.0, 0.0001 / 5, 0.75))
        if lrn_and_pool is not False:  # True: LRN and pool; None: pool only (conv5)
            x = builder.pool(x, 3, stride=2)
    for _ in range(2):
        x = builder.conv(x, builder.size, channels_of(4096), batch_norm=batch_norm)
        x = builder.dropout(x, dropout)
    scores = builder.conv(x, 1, num_classes, relu=False, init="xavier")
    return builder.finish(scores, num_classes)


def nin(*, num_classes=10, channels=3, input_size=32, batch_norm=False, dropout=0.5, seed=0):
    """Network in Network (Lin et al., MatConvNet's ``cnn_cifar_init_nin``): three mlpconv
    stages (a 5x5, 5x5, 3x3 convolution followed by two 1x1 convolutions), max-pool then
    average-pool 3/2 with dropout between stages, and global average pooling of the class
    maps instead of fully-connected layers."""
    builder = _Builder(seed, "nin", channels, input_size)
    x = builder.images
    for stage, (size, widths) in enumerate(((5, (192, 160, 96)), (5, (192, 192, 192)),
                                            (3, (192, 192, num_classes)))):
        for k, filters in enumerate(widths):
            last = stage == 2 and k == 2
            x = builder.conv(x, size if k == 0 else 1, filters, pad=(size // 2 if k == 0 else 0),
                             relu=not last, batch_norm=batch_norm and not last,
                             init="xavier" if last else "he")
        if stage < 2:
            x = builder.pool(x, 3, stride=2, pad=(0, 1, 0, 1),
                             method="max" if stage == 0 else "avg")
            x = builder.dropout(x, dropout)
    scores = builder.global_average(x)
    return builder.finish(scores, num_classes)


def lstm_language_model(num_characters, steps, *, hidden=100, clip_grad=10, seed=0):
    """A character-level LSTM language model, AutoNN's ``rnn_lstm_shakespeare`` ('lstm').

    An LSTM of ``hidden`` units reads ``steps`` characters in an :func:`autonn.For` loop (one
    loop step in the net, whatever ``steps``), starting from zero states; a 1x1 convolution
    (the same at every step) projects each hidden state to ``num_characters`` scores, and a
    softmax log-loss compares the scores of step t with the character that follows input t.

    Inputs (:class:`autonn.datasets.NextCharacters` yields them):
      ``text``    one-hot float32 (N, steps, num_characters), batch first; step t is
                  ``text[:, t]``
      ``targets`` int64 (N, steps), the code of the character after each input character

    Returns a dict of Layers: ``text``, ``targets``, ``prediction`` (the scores of every
    step, time first: (steps * N, num_characters, 1, 1)), ``objective`` (softmax log-loss
    averaged over the N * steps characters: its exp is the perplexity per character),
    ``top1err`` (the fraction of characters mispredicted), ``outputs`` (both, for ``an.Net``;
    train with ``an.train(net, data, solver, inputs=model['inputs'])``), ``inputs`` (the two
    names), ``params`` (the LSTM's W and b, the projection's filters and biases) and
    ``step``: the graph of one step on its own Inputs ``char`` (N, num_characters), ``h``
    and ``c`` (N, hidden), with the Layers ``scores``, ``h_next`` and ``c_next``, sharing the
    Params, for :func:`sample_text`.

    clip_grad : vl_nnlstm's clipGrad (10 in AutoNN's example), or None.
    seed : the initial Params come from their own generator (NumPy's global one is untouched).
    """
    for name, value in (("num_characters", num_characters), ("steps", steps),
                        ("hidden", hidden)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"lstm_language_model: {name} must be a positive int, got "
                             f"{value!r}")
    rng = np.random.default_rng(seed)
    W, b = nn.lstm_params(hidden, num_characters, rng=rng)
    W.name, b.name = "lstm_W", "lstm_b"
    bound = math.sqrt(3.0 / hidden)    # Xavier's rule, as the models' classifiers
    filters = Param(rng.uniform(-bound, bound, (num_characters, hidden, 1, 1)).astype(np.float32),
                    name="projection_filters")
    biases = Param(np.zeros(num_characters, np.float32), name="projection_biases",
                   weight_decay=0.0)

    def project(h):
        return nn.conv(h.reshape((-1, hidden, 1, 1)), filters, biases)

    text, targets = Input(name="text"), Input(name="targets")
    # zero initial states of a batch size known at run time (AutoNN's zeros(d, size(text, 2)))
    zeros = np.zeros_like(text[:, 0, :1]) + np.zeros((1, hidden), np.float32)
    h, _ = For(lambda h, c, t: nn.lstm(text[:, t], h, c, W, b, clip_grad=clip_grad),
               zeros, zeros, count=steps, concatenate=(0, None))
    h.name = "hidden_states"
    scores = project(h)                 # time first: row t * N + n is step t of sample n
    scores.name = "prediction"
    labels = targets.T.reshape(-1)      # the same order
    objective = nn.loss(scores, labels, loss="softmaxlog")
    objective.name = "objective"
    top1err = nn.loss(scores, labels, loss="classerror")
    top1err.name = "top1err"

    char, h_in, c_in = Input(name="char"), Input(name="h"), Input(name="c")
    h_next, c_next = nn.lstm(char, h_in, c_in, W, b)
    step_scores = project(h_next)
    step_scores.name, h_next.name, c_next.name = "scores", "h_next", "c_next"
    return {"text": text, "targets": targets, "prediction": scores, "objective": objective,
            "top1err": top1err, "outputs": [objective, top1err], "inputs": ("text", "targets"),
            "params": [W, b, filters, biases],
            "step": {"char": char, "h": h_in, "c": c_in, "scores": step_scores,
                     "h_next": h_next, "c_next": c_next, "hidden": hidden,
                     "num_characters": num_characters}}


def sample_text(model, vocabulary, seed_text, length, *, temperature=1.0, rng=None):
    """Text drawn from a :func:`lstm_language_model`: the LSTM reads ``seed_text`` from zero
    states (as each training sample starts), then ``length`` characters are drawn one after
    the other, each from the softmax of the scores divided by ``temperature`` (0: always the
    most likely character) and fed back as the next input. Runs in test mode; returns the
    ``length`` drawn characters (without the seed).

    vocabulary : the model's characters, ``vocabulary[code]`` (``CharacterText.vocabulary``).
    rng : a ``numpy.random.Generator`` or seed.
    """
    from .net import Net
    step = model["step"]
    if len(vocabulary) != step["num_characters"]:
        raise ValueError(f"sample_text: the vocabulary has {len(vocabulary)} characters, the "
                         f"model {step['num_characters']}")
    if not seed_text:
        raise ValueError("sample_text: seed_text must hold at least one character (the model "
                         "predicts the character after each input)")
    unknown = sorted(set(seed_text) - set(vocabulary))
    if unknown:
        raise ValueError(f"sample_text: the seed has characters outside the vocabulary: "
                         f"{''.join(unknown)!r}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"sample_text: length must be a non-negative int, got {length!r}")
    if not temperature >= 0:
        raise ValueError(f"sample_text: temperature must be >= 0, got {temperature!r}")
    rng = np.random.default_rng(rng)
    net = Net(step["scores"], step["h_next"], step["c_next"])
    eye = np.eye(len(vocabulary), dtype=np.float32)
    h = c = np.zeros((1, step["hidden"]), np.float32)
    drawn, code = [], None
    # the seed's characters, then each drawn one but the last, are fed in turn
    for k in range(len(seed_text) + length - 1):
        if k < len(seed_text):
            code = vocabulary.index(seed_text[k])
        net.eval({"char": eye[[code]], "h": h, "c": c}, mode="test")
        scores = np.asarray(net.value("scores"), np.float64).ravel()
        h, c = net.value("h_next"), net.value("c_next")
        if k >= len(seed_text) - 1:
            if temperature == 0:
                code = int(np.argmax(scores))
            else:
                p = np.exp((scores - scores.max()) / temperature)
                code = int(rng.choice(len(p), p=p / p.sum()))
            drawn.append(vocabulary[code])
    return "".join(drawn)


# ---------------------------------------------------------------------- building blocks
class _Builder:
    """Creates the Params of one model from one seeded generator and tracks the spatial size
    (Layers carry no shapes before a Net runs, and fully-connected layers need it)."""

    def __init__(self, seed, model, channels, input_size):
        if not isinstance(input_size, (int, np.integer)) or input_size < 1:
            raise ValueError(f"{model}: input_size must be a positive integer, got "
                             f"{input_size!r}")
        self.rng = np.random.default_rng(seed)
        self.model = model
        self.images = Input("images")
        self.labels = Input("labels")
        self.channels = int(channels)
        self.size = int(input_size)

    def conv(self, x, size, filters, *, stride=1, pad=0, relu=True, batch_norm=False,
             init="he"):
        """Convolution (+ bnorm) (+ ReLU); ``size`` is the square filter size."""
        fan_in = size * size * self.channels
        if init == "he":
            std = math.sqrt(2.0 / fan_in)
            initial = lambda shape: self.rng.standard_normal(shape) * std  # noqa: E731
        else:
            bound = math.sqrt(3.0 / fan_in)
            initial = lambda shape: self.rng.uniform(-bound, bound, shape)  # noqa: E731
        new_size = (self.size + 2 * pad - size) // stride + 1
        if new_size < 1:
            raise ValueError(f"{self.model}: a {size}x{size} filter (stride {stride}, pad {pad})"
                             f" does not fit the {self.size}x{self.size} feature map; use a "
                             f"larger input_size")
        # With bnorm right after, a bias would be cancelled by the mean subtraction.
        x = nn.conv(x, size=(size, size, self.channels, filters), stride=stride, pad=pad,
                    init=initial, has_bias=not batch_norm)
        self.channels, self.size = filters, new_size
        if batch_norm:
            x = nn.bnorm(x)
        return nn.relu(x) if relu else x

    def pool(self, x, size, *, stride, pad=0, method="max"):
        pads = (pad,) * 4 if isinstance(pad, int) else pad
        self.size = (self.size + pads[0] + pads[1] - size) // stride + 1
        if self.size < 1:
            raise ValueError(f"{self.model}: the feature map is too small for a {size}x{size} "
                             f"pooling; use a larger input_size")
        return nn.pool(x, size, stride=stride, pad=pad, method=method)

    def dropout(self, x, rate):
        return nn.dropout(x, rate=rate) if rate else x

    def global_average(self, x):
        self.size = 1
        return x.mean(axis=(2, 3), keepdims=True)

    def basic_block(self, x, planes, stride):
        shortcut = self._shortcut(x, planes, stride)
        y = self.conv(x, 3, planes, stride=stride, pad=1, batch_norm=True)
        y = self.conv(y, 3, planes, pad=1, relu=False, batch_norm=True)
        return nn.relu(y + shortcut)

    def bottleneck_block(self, x, planes, stride):
        shortcut = self._shortcut(x, 4 * planes, stride)
        y = self.conv(x, 1, planes, batch_norm=True)
        y = self.conv(y, 3, planes, stride=stride, pad=1, batch_norm=True)
        y = self.conv(y, 1, 4 * planes, relu=False, batch_norm=True)
        return nn.relu(y + shortcut)

    def _shortcut(self, x, out_channels, stride):
        if stride == 1 and self.channels == out_channels:
            return x
        channels, size = self.channels, self.size
        projection = self.conv(x, 1, out_channels, stride=stride, relu=False, batch_norm=True,
                               init="xavier")
        # The block's own convolutions start again from the block's input.
        self.channels, self.size = channels, size
        return projection

    def finish(self, scores, num_classes):
        if self.channels != num_classes:
            raise ValueError(f"{self.model}: the classifier has {self.channels} outputs, "
                             f"expected num_classes={num_classes}")
        if self.size != 1:
            raise ValueError(f"{self.model}: the classifier's output is {self.size}x"
                             f"{self.size}, not 1x1; adjust input_size")
        scores.name = "prediction"
        objective = nn.loss(scores, self.labels, loss="softmaxlog")
        objective.name = "objective"
        top1err = nn.loss(scores, self.labels, loss="classerror")
        top1err.name = "top1err"
        model = {"images": self.images, "labels": self.labels, "prediction": scores,
                 "objective": objective, "top1err": top1err}
        outputs = [objective, top1err]
        if num_classes > 5:
            top5err = nn.loss(scores, self.labels, loss="topkerror", topk=5)
            top5err.name = "top5err"
            model["top5err"] = top5err
            outputs.append(top5err)
        model["outputs"] = outputs
        return model
