"""The text helpers every table of autonn shares (net.summary, simplenn.display, DagNN.print)."""

from autonn.formatting import bytes_text, shape_text, text_table, value_shape_text


def test_bytes_count_in_powers_of_1024_with_or_without_a_space():
    assert bytes_text(512) == "512 B" and bytes_text(2048) == "2.0 KB"
    assert bytes_text(3 * 1024 ** 2, space=False) == "3.0MB"
    assert bytes_text(5 * 1024 ** 4) == "5120.0 GB"


def test_shapes_print_with_times_signs_and_say_scalar_or_unknown():
    assert shape_text((2, 3, 8, 8)) == "2×3×8×8"
    assert shape_text(()) == "scalar" and shape_text((), scalar="1") == "1"
    assert shape_text(None) == "" and value_shape_text(None, unknown="-") == "-"


def test_tables_align_left_under_a_rule():
    assert text_table(["a", "bb"], [["xyz", 1]]) == ["a    bb", "---  --", "xyz  1 "]
