"""autonn.viz: graph pictures (Graphviz and the built-in layout) and feature-map mosaics."""

import shutil
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

import autonn as an
from autonn import nn, viz

SVG = "{http://www.w3.org/2000/svg}"
ENGINES = ["python"] + (["dot"] if shutil.which("dot") else [])


def small_cnn():
    images, labels = an.Input("images"), an.Input("labels")
    x = nn.conv(images, size=(3, 3, 1, 4))
    x = nn.pool(nn.relu(x), 2, stride=2)
    objective = nn.loss(nn.conv(x, size=(3, 3, 4, 5)), labels)
    return objective


def svg_texts(svg):
    """Every piece of text the picture shows, whichever engine drew it."""
    root = ElementTree.fromstring(svg)
    return [''.join(element.itertext()) for element in root.iter(f"{SVG}text")]


@pytest.mark.parametrize("engine", ENGINES)
def test_graph_svg_of_layers_shows_inputs_params_ops_and_inferred_shapes(engine):
    objective = small_cnn()
    objective.sequential_names()
    svg = viz.graph_svg(objective, input_sizes={"images": (2, 1, 10, 10), "labels": (2,)},
                        engine=engine)
    texts = " | ".join(svg_texts(svg))
    for expected in ("images", "labels", "conv1_filters", "conv1 = conv", "pool1 = pool",
                     "2×4×8×8", "2×4×4×4", "4×1×3×3", "scalar"):
        assert expected in texts, (expected, texts)


@pytest.mark.parametrize("engine", ENGINES)
def test_graph_svg_draws_one_edge_per_distinct_input(engine):
    a, b = an.Input("a"), an.Input("b")
    c = np.sqrt(np.maximum(a, 0) + a * b / 2)
    svg = viz.graph_svg(c, engine=engine)
    root = ElementTree.fromstring(svg)
    if engine == "dot":
        edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    else:
        edges = list(root.iter(f"{SVG}path"))[1:]  # the first path is the arrowhead marker
    # a->maximum, a->multiply, b->multiply, multiply->divide, maximum->add, divide->add,
    # add->sqrt
    assert len(edges) == 7


@pytest.mark.parametrize("engine", ENGINES)
def test_graph_svg_of_a_net_shows_the_tape_steps_and_evaluated_shapes(engine):
    net = an.Net(small_cnn())
    net.eval({"images": np.random.randn(3, 1, 10, 10).astype(np.float32),
              "labels": np.array([0, 1, 4])})
    texts = " | ".join(svg_texts(viz.graph_svg(net, engine=engine)))
    for step in net.tape.forward:
        assert f"{net.tape.names[step.outputs[0]]} = {step.op.name}" in texts
    assert "3×4×8×8" in texts


def test_layer_and_net_render_as_svg_in_jupyter():
    objective = small_cnn()
    assert objective._repr_svg_().startswith("<svg")
    assert an.Net(objective)._repr_svg_().startswith("<svg")


def test_graph_svg_escapes_names_and_handles_multi_output_ops():
    split = an.Op("viz_test_split", lambda x: (x[:1], x[1:]), num_outputs=2,
                  shape=lambda shape: ((1,) + shape[1:], (shape[0] - 1,) + shape[1:]))
    x = an.Input("x<&>")
    head, tail = split(x)
    svg = viz.graph_svg([head * 2, tail], input_sizes={"x<&>": (5, 3)}, engine="python")
    assert "x&lt;&amp;&gt;" in svg
    texts = " | ".join(svg_texts(svg))
    assert "output 0" in texts and "1×3" in texts and "4×3" in texts
    ElementTree.fromstring(svg)  # well-formed XML


def test_graph_svg_rejects_what_is_not_a_graph():
    with pytest.raises(TypeError, match="graph_svg"):
        viz.graph_svg(np.zeros(3))
    with pytest.raises(ValueError, match="engine"):
        viz.graph_svg(an.Input(), engine="neato")


def test_tile_scales_each_channel_to_its_own_range_with_gaps():
    maps = np.stack([np.arange(4.0).reshape(2, 2), 100 + 10 * np.arange(4.0).reshape(2, 2)])
    mosaic = viz.tile(maps[None], spacing=1)          # (1, 2, 2, 2): two tiles side by side
    assert mosaic.shape == (2, 5)
    np.testing.assert_allclose(mosaic[:, :2], [[0, 1 / 3], [2 / 3, 1]])
    np.testing.assert_allclose(mosaic[:, 3:], [[0, 1 / 3], [2 / 3, 1]])
    assert np.isnan(mosaic[:, 2]).all()


def test_tile_shapes_for_filter_banks_and_batches():
    assert viz.tile(np.random.randn(10, 3, 5, 5)).shape == (3 * 6 - 1, 4 * 6 - 1, 3)  # colour
    assert viz.tile(np.random.randn(6, 1, 4, 4), columns=3).shape == (2 * 5 - 1, 3 * 5 - 1)
    assert viz.tile(np.random.randn(2, 5, 4, 4)).shape == (2 * 5 - 1, 5 * 5 - 1)  # row per image
    assert viz.tile(np.ones((3, 3)))[1, 1] == 0.5     # a constant tile is mid-grey
    with pytest.raises(ValueError, match="imarraysc"):
        viz.tile(np.zeros((1, 1, 1, 2, 2)))


def test_imarraysc_draws_into_the_given_axes():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots()
    returned = viz.imarraysc(np.random.randn(1, 6, 8, 8), ax=axes, title="maps")
    assert returned is axes and axes.get_title() == "maps"
    assert axes.images[0].get_array().shape == (2 * 9 - 1, 3 * 9 - 1, 4)   # RGBA
    viz.imarraysc(np.random.randn(5, 3, 5, 5), ax=axes)  # colour tiles, one cell left over
    picture = axes.images[-1].get_array()
    assert picture.shape == (2 * 6 - 1, 3 * 6 - 1, 4)
    assert (picture[6:, 12:, 3] == 0).all() and (picture[:5, :5, 3] == 1).all()
    plt.close(figure)


def test_tile_default_spacing_grows_with_the_tiles():
    assert viz.tile(np.random.randn(1, 2, 64, 64)).shape == (64, 2 * 64 + 2)   # 64 // 32
    assert viz.tile(np.random.randn(1, 2, 8, 8)).shape == (8, 2 * 8 + 1)       # at least 1
