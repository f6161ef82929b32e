"""python -m autonn.demo runs end to end (on the fast 8x8 digits, one epoch)."""

import os

import pytest

pytest.importorskip("sklearn")


def test_demo_trains_saves_reloads_and_classifies(tmp_path, capsys):
    from autonn import demo
    history = demo.main(["--data", "digits", "--epochs", "1", "--out", str(tmp_path),
                         "--no-progress"])
    out = capsys.readouterr().out
    assert len(history["train"]) == 1
    assert "validation top-1 error" in out and "reloaded it and classified 12" in out
    assert f"to {tmp_path}{os.sep} (--out to change)" in out   # says where it writes
    assert (tmp_path / "digits-cnn.npz").exists() and (tmp_path / "net-epoch-1.npz").exists()
