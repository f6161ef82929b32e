"""AutoNN's decompilation tests, ported: ``matlab/xtest/nndecompile.m`` of vlfeat/autonn.

A net is compiled, read back into Layers with ``Layer.from_compiled_net`` and compiled again;
the two nets must be equal (the original compares their ``saveobj`` structs with the source
lines erased: here the steps, the slots, the constants and the Params). Done for a diamond and
for LeNet with batch normalisation and a loss (NCHW: images are (N, 1, 28, 28)). Each case runs
in float32 and float64 (the Params' data type), and the two nets are also evaluated on the
same data: equal values and derivatives.
"""

import numpy as np

import autonn as an
from autonn import nn


def test_diamond(t):
    a = an.Input()
    b = np.sqrt(a)
    c = np.abs(a)
    d = b + c
    e = np.exp(d)
    an.workspace_names()
    check_decompiles(t, e, {"a": t.rand(2, 3, 4, 4) / t.range})


def test_lenet(t):
    images = an.Input("images")
    labels = an.Input("labels")
    options = {"init": "gaussian", "dtype": t.dtype}
    x = nn.conv(images, size=(5, 5, 1, 20), **options)
    x = nn.bnorm(x)
    x = nn.pool(x, 2, stride=2)
    x = nn.conv(x, size=(5, 5, 20, 50), **options)
    x = nn.bnorm(x)
    x = nn.pool(x, 2, stride=2)
    x = nn.conv(x, size=(4, 4, 50, 500), **options)
    x = nn.bnorm(x)
    x = nn.relu(x)
    x = nn.conv(x, size=(1, 1, 500, 10), **options)
    loss = nn.loss(x, labels)
    feed = {"images": t.randn(3, 1, 28, 28) / t.range, "labels": np.array([1, 7, 3])}
    check_decompiles(t, loss, feed)


def check_decompiles(t, layer, feed):
    net1 = an.Net(layer)                                    # compile
    decompiled = an.Layer.from_compiled_net(net1)           # decompile
    net2 = an.Net(*decompiled)                              # compile again
    assert saved_form(net1) == saved_form(net2)
    for param1, param2 in zip(net1.params, net2.params):
        assert param1 is param2                             # the same Params, values shared
    if t.device == "gpu":
        net1.to("gpu")
        net2.to("gpu")
    feed = {k: t.to_device(v) for k, v in feed.items()}
    values, ders = [], []
    for net in (net1, net2):
        net.eval(feed)
        values.append(net.value(net.outputs[0]))
        ders.append([net.der(p) for p in net.params] + [net.der(name) for name in net.inputs
                                                        if name != "labels"])
    t.eq(values[0], values[1])
    for der1, der2 in zip(*ders):
        t.eq(der1, der2)


def saved_form(net):
    """What the original's ``saveobj`` holds, less the source lines."""
    tape = net.tape

    def step(s):
        return (s.name, s.op.name, tuple(s.inputs), tuple(s.outputs), repr(s.options))

    return {
        "forward": [step(s) for s in tape.forward],
        "backward": [step(s) + (s.targets,) for s in tape.backward],
        "vars": list(tape.names),
        "constants": [(slot, repr(value)) for slot, value in tape.constants],
        "params": [(p.name, p.value.dtype, p.value.tobytes(), p.learning_rate, p.weight_decay,
                    p.train_method) for p in net.params],
        "inputs": sorted(net.inputs),
    }
