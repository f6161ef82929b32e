"""``train``: MatConvNet's ``cnn_train`` for autonn nets.

One call runs epochs of stochastic training and validation::

    m = an.models.lenet()
    net = an.Net(m['objective'], m['top1err'], m['top5err'])
    history = an.train(net, an.datasets.mnist_5k(), an.solvers.SGD(0.01), epochs=10,
                       batch_size=100, exp_dir='data/mnist-lenet')

Every output of the net is a statistic: the first is the objective that is minimised, the others
(errors) are only recorded. When the net outputs no error of its own and its objective is a
categorical loss (softmaxlog, log, mhinge, mshinge) on some scores, ``train`` records the top-1
and top-5 errors of those scores as ``top1err`` and ``top5err``, as ``cnn_train``'s default
error function does (``top5err`` only for a dataset of more than 5 classes: with fewer it
would always be 0). Each epoch records, for 'train' and 'val', the mean of every output
over the images, the number of images, the time and images/s. A progress bar shows the running
values; a plot of the curves is saved as ``net-train.png`` in the experiment folder and, in
Jupyter, drawn live under the cell.

Checkpoints (``exp_dir``): after each epoch ``net-epoch-K.npz`` (``Net.save``: graph and Params)
then ``state-epoch-K.npz`` (solver state, history, the random state; arrays and JSON, no pickle),
each written to a temporary file and renamed into place, so a crash leaves either a complete
checkpoint or none. ``resume=True`` restores the last complete epoch into the given net and
continues; with the same arguments the result equals an uninterrupted run.

Randomness: the order and jitter of the training batches of epoch K come from a generator seeded
with ``(seed, K)``; dropout draws from NumPy's global generator, which ``train`` seeds at the start
and whose state each checkpoint saves and ``resume`` restores.
"""

import json
import os
import re
import sys
import time

import numpy as np

from . import backend
from .net import Net
from .nn.losses import loss, loss_op

CHECKPOINT = re.compile(r"^state-epoch-(\d+)\.npz$")


def train(net, dataset, solver, *, epochs=10, batch_size=100, num_sub_batches=1, exp_dir=None,
          resume=False, seed=0, val=True, progress=True, plot=True,
          inputs=("images", "labels"), on_epoch_end=None, distributed=None):
    """Train ``net`` on ``dataset`` with ``solver``; returns the history.

    Parameters
    ----------
    net : Net
        Its first output is the objective; the others (top-1/top-5 errors) are recorded. A net
        with a categorical loss and no error outputs gets ``top1err`` and ``top5err`` computed
        from the loss's scores (unless compiled with ``conserve_memory``, which releases them).
    dataset : autonn.datasets.Dataset
        Anything with ``batches(split, batch_size, rng=...)`` and ``num_images(split)``.
    solver : autonn.solvers.Solver
    epochs : total number of epochs (with ``resume``, including those already done).
    batch_size : images per solver step.
    num_sub_batches : split each batch into this many parts evaluated one after the other with
        ``accumulate_param_ders`` (less memory, same step: each part's derivatives are weighted
        by its share of the batch).
    exp_dir : folder for checkpoints, the history and the plot (created); None keeps nothing.
    resume : continue from the last complete checkpoint in ``exp_dir``.
    seed : seeds the batch order, the jitter and NumPy's global generator (dropout).
    val : also evaluate the 'val' split (test mode) after each epoch.
    progress : show a tqdm progress bar (``tqdm.auto``; plain lines without tqdm).
    plot : save the curves to ``exp_dir/net-train.png`` after each epoch and, in Jupyter,
        show them updated in place (needs matplotlib).
    inputs : the names of the net's image and label Inputs.
    on_epoch_end : optional ``callback(epoch, history)`` after each epoch (1-based epoch).
    distributed : data-parallel training over MPI (:mod:`autonn.distributed`): True, False, or
        None for "when started by an MPI launcher with several ranks" (``mpirun -np K``).
        ``batch_size`` is then each rank's: K ranks take the steps of one process with batch
        ``K * batch_size``; the history holds the statistics over all ranks; only rank 0
        shows progress, plots and writes checkpoints (which every rank reads on ``resume``).

    Returns
    -------
    dict with 'train' and 'val' lists (one dict per epoch) of the outputs' means (by output
    name) and ``num_images``, ``time``, ``images_per_second``.
    """
    _check_arguments(net, dataset, solver, epochs, batch_size, num_sub_batches, inputs)
    if resume and exp_dir is None:
        raise ValueError("train: resume=True needs exp_dir, the folder of the checkpoints")
    parallel = _data_parallel(distributed)
    leader = parallel is None or parallel.rank == 0
    if exp_dir is not None and leader:
        os.makedirs(exp_dir, exist_ok=True)
    history = {"train": [], "val": []}
    np.random.seed(seed % 2 ** 32)
    start = 0
    if resume:
        if leader:
            _remove_temporaries(exp_dir)
        if parallel is not None:
            parallel.barrier()
        start = _last_checkpoint(exp_dir, epochs)
        if start:
            history = _restore(net, solver, exp_dir, start)
    if parallel is not None:
        parallel.broadcast_params(net)
    bar = _ProgressReporter(progress and leader)
    plotter = _Plotter(plot and leader, exp_dir if leader else None)
    for epoch in range(start, epochs):
        solver.epoch = epoch
        rng = np.random.default_rng([seed, epoch])
        history["train"].append(_run_epoch(net, dataset, solver, "train", batch_size,
                                           num_sub_batches, rng, inputs, bar, epoch, epochs,
                                           parallel))
        if val and dataset.num_images("val"):
            history["val"].append(_run_epoch(net, dataset, None, "val", batch_size, 1, rng,
                                             inputs, bar, epoch, epochs, parallel))
        bar.epoch_summary(epoch, epochs, history)
        if exp_dir is not None and leader:
            _save_checkpoint(net, solver, exp_dir, epoch + 1, history)
        plotter.update(history)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, history)
    plotter.close()
    if parallel is not None:
        parallel.detach(net)
    return history


# ---------------------------------------------------------------------- one epoch
def _data_parallel(distributed):
    if distributed is None:
        from .distributed import launched_by_mpi
        distributed = launched_by_mpi()
    if not distributed:
        return None
    from .distributed import DataParallel
    return DataParallel()


def _batches(dataset, split, batch_size, rng, parallel):
    """``(images, labels, images in the whole batch)``: all of each batch, or with
    ``parallel`` this rank's part of batches ``size`` times larger."""
    if parallel is None:
        for images, labels in dataset.batches(split, batch_size, rng=rng):
            yield images, labels, len(labels)
        return
    total, step = dataset.num_images(split), batch_size * parallel.size
    batches = dataset.batches(split, step, rng=rng, shard=(parallel.rank, parallel.size))
    for k, (images, labels) in enumerate(batches):
        yield images, labels, min(step, total - k * step)


def _run_epoch(net, dataset, solver, split, batch_size, num_sub_batches, rng, inputs, bar,
               epoch, epochs, parallel=None):
    """Train (solver given) or evaluate one pass over ``split``; returns its statistics."""
    image_name, label_name = inputs
    scores = _error_scores(net, dataset)
    names = [output.name for output in net.outputs]
    if scores is not None:
        names += list(scores[1])
    sums = np.zeros(len(names))
    count = 0
    total = dataset.num_images(split)
    started = time.perf_counter()
    with bar.epoch_bar(f"epoch {epoch + 1}/{epochs} {split}", total) as update:
        for images, labels, in_batch in _batches(dataset, split, batch_size, rng, parallel):
            n = len(labels)
            if solver is None:
                if n:
                    net.eval({image_name: images, label_name: labels}, mode="test")
                    values = _statistics(net, scores, labels)
                else:  # a rank with no part of a short last batch
                    values = np.zeros(len(names))
            else:
                values = _train_step(net, solver, images, labels, num_sub_batches, inputs,
                                     scores, parallel, in_batch)
            sums += values * n
            count += n
            elapsed = time.perf_counter() - started
            update(in_batch, {name: sums[k] / max(count, 1) for k, name in enumerate(names)},
                   count / max(elapsed, 1e-9))
    elapsed = time.perf_counter() - started
    if parallel is not None:  # every rank's images: sums, counts, the slowest rank's time
        reduced = parallel.reduce_sum(np.concatenate([sums, [count]]))
        sums, count = reduced[:-1], int(reduced[-1])
        elapsed = float(parallel.reduce_sum([elapsed])[0]) / parallel.size
    stats = {name: float(sums[k] / max(count, 1)) for k, name in enumerate(names)}
    stats.update(num_images=count, time=elapsed, images_per_second=count / max(elapsed, 1e-9))
    return stats


def _train_step(net, solver, images, labels, num_sub_batches, inputs, scores, parallel=None,
                in_batch=None):
    """Forward and backward over the batch (in parts), then one solver step. Returns the
    batch means of the statistics. With ``parallel``, this rank's derivatives are weighted by
    its share of the ``in_batch`` images and summed over the ranks before the step (during
    the backward pass when the batch is not split into parts)."""
    image_name, label_name = inputs
    n = len(labels)
    if parallel is not None and n == 0:
        raise ValueError(f"train: a rank got no image of a batch of {in_batch}; use "
                         f"batch_size >= 1 per rank and more images than ranks")
    parts = np.array_split(np.arange(n), min(num_sub_batches, n))
    values = np.zeros(len(net.outputs) + (0 if scores is None else len(scores[1])))
    seeds = [None] * len(net.outputs)
    if parallel is not None:
        parallel.start_step(net, n, in_batch, overlap=len(parts) == 1)
    for k, part in enumerate(parts):
        # Weighting each part's objective by its share makes the accumulated derivative the
        # derivative of the whole batch's mean objective, even when parts differ in size.
        seeds[0] = len(part) / n
        feed = ({image_name: images, label_name: labels} if len(parts) == 1 else
                {image_name: images[part], label_name: labels[part]})
        net.eval(feed, der_output=seeds, accumulate_param_ders=k > 0)
        values += _statistics(net, scores, feed[label_name]) * (len(part) / n)
    if len(parts) > 1:
        # 'average' Params (bnorm moments) report their target, not a derivative, so the
        # seeds do not scale it: the parts' reports were summed, make it their mean. A new
        # array, never an in-place change: a der may alias other arrays.
        for param in net.params:
            if param.train_method == "average" and param.der is not None:
                param.der = param.der / len(parts)
    if parallel is not None:
        parallel.finish_step(net)
    solver.step(net)
    return values


# cnn_train's default error function: the statistics recorded beside the objective, and the
# loss types that compute them from the scores.
ERRORS = {"top1err": dict(loss="classerror"), "top5err": dict(loss="topkerror", topk=5)}
CATEGORICAL_OBJECTIVES = ("softmaxlog", "log", "mhinge", "mshinge")


def _error_scores(net, dataset=None):
    """``(scores, errors)``: the scores whose errors train records itself (see the module
    docstring) and which of :data:`ERRORS` (top-k only for more than k classes: with k
    classes or fewer it is always 0); or None."""
    error_losses = {options["loss"] for options in ERRORS.values()}
    if net.conserve_memory or any(output.op is loss_op and output.options.get("loss") in
                                  error_losses for output in net.outputs):
        return None
    objective = net.outputs[0]
    if objective.op is not loss_op or objective.options.get("loss") not in CATEGORICAL_OBJECTIVES:
        return None
    try:
        net.value(objective.inputs[0])
    except (KeyError, ValueError):      # not a variable of the compiled net
        return None
    classes = getattr(dataset, "num_classes", None)
    errors = {name: options for name, options in ERRORS.items()
              if classes is None or options.get("topk", 1) < classes}
    return objective.inputs[0], errors


def _statistics(net, scores, labels):
    """The batch means of the outputs, then (with ``scores``) the top-1 and top-5 errors."""
    values = [float(backend.to_numpy(net.value(output))) for output in net.outputs]
    if scores is not None:
        x = net.value(scores[0])
        c = backend.to_device(np.asarray(labels), backend.device_of(x))
        values += [float(backend.to_numpy(loss(x, c, **options)))
                   for options in scores[1].values()]
    return np.array(values)


# ---------------------------------------------------------------------- checkpoints
def _save_checkpoint(net, solver, exp_dir, epoch, history):
    """``net-epoch-K.npz`` then ``state-epoch-K.npz``: the state file marks a complete epoch."""
    net_path = os.path.join(exp_dir, f"net-epoch-{epoch}.npz")
    _atomic_write(net_path, net.save)
    arrays = {f"solver/{key}": value for key, value in solver.state_dict().items()}
    kind, keys, position, has_gauss, cached = np.random.get_state()
    arrays["random/keys"] = keys
    arrays["__json__"] = np.array(json.dumps({
        "epoch": epoch, "history": history, "solver": type(solver).__name__,
        "random": {"kind": kind, "position": int(position), "has_gauss": int(has_gauss),
                   "cached_gaussian": float(cached)}}))

    def write_state(path):
        with open(path, "wb") as file:
            np.savez(file, **arrays)

    _atomic_write(os.path.join(exp_dir, f"state-epoch-{epoch}.npz"), write_state)
    _atomic_write(os.path.join(exp_dir, "history.json"),
                  lambda path: _write_text(path, json.dumps(history, indent=1)))


def _restore(net, solver, exp_dir, epoch):
    """Load checkpoint ``epoch`` into ``net`` and ``solver``; returns the history."""
    saved = Net.load(os.path.join(exp_dir, f"net-epoch-{epoch}.npz"))
    values = {param.name: param.value for param in saved.params}
    mine = {param.name: param for param in net.params}
    if set(values) != set(mine):
        raise ValueError(f"train: the checkpoint net-epoch-{epoch}.npz in {exp_dir} has Params "
                         f"{sorted(values)}, the net has {sorted(mine)}; resume with the same "
                         f"model or use another exp_dir")
    for name, param in mine.items():
        if values[name].shape != param.value.shape:
            raise ValueError(f"train: Param '{name}' is {values[name].shape} in the checkpoint "
                             f"net-epoch-{epoch}.npz and {param.value.shape} in the net")
        param.value = (backend.to_device(values[name], "gpu")
                       if backend.is_gpu_array(param.value) else values[name])
    with np.load(os.path.join(exp_dir, f"state-epoch-{epoch}.npz"), allow_pickle=False) as data:
        info = json.loads(str(data["__json__"]))
        if info["solver"] != type(solver).__name__:
            raise ValueError(f"train: the checkpoint in {exp_dir} was written by a "
                             f"{info['solver']} solver, not {type(solver).__name__}")
        solver.load_state_dict({key[len("solver/"):]: data[key] for key in data.files
                                if key.startswith("solver/")})
        random = info["random"]
        np.random.set_state((random["kind"], data["random/keys"], random["position"],
                             random["has_gauss"], random["cached_gaussian"]))
    return info["history"]


def _last_checkpoint(exp_dir, epochs):
    done = [int(m.group(1)) for name in os.listdir(exp_dir)
            if (m := CHECKPOINT.match(name))
            and os.path.exists(os.path.join(exp_dir, f"net-epoch-{m.group(1)}.npz"))]
    done = [k for k in done if k <= epochs]
    return max(done, default=0)


def _atomic_write(path, write):
    """Write through ``write(temporary path)`` then rename: readers never see half a file."""
    temporary = f"{path}{TEMPORARY_SUFFIX}{os.getpid()}"
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:  # a full disk, a read-only folder: say which file
        raise OSError(error.errno, f"train: cannot write the checkpoint file {path}: "
                                   f"{error.strerror or error}") from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


TEMPORARY_SUFFIX = ".tmp-"


def _remove_temporaries(exp_dir):
    """The half-written files of a run that was killed while it wrote a checkpoint (a
    SIGKILL skips _atomic_write's clean-up): ``resume`` removes them."""
    for name in os.listdir(exp_dir):
        stem, _, pid = name.rpartition(TEMPORARY_SUFFIX)
        if stem and pid.isdigit():
            os.remove(os.path.join(exp_dir, name))


def _write_text(path, text):
    with open(path, "w") as file:
        file.write(text)


def _write_bytes(path, data):
    with open(path, "wb") as file:
        file.write(data)


# ---------------------------------------------------------------------- progress and plots
class _ProgressReporter:
    """A tqdm bar per pass (tqdm.auto renders in notebooks); plain lines without tqdm."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.tqdm = None
        if enabled:
            try:
                from tqdm.auto import tqdm
                self.tqdm = tqdm
            except ImportError:
                self.tqdm = None

    def epoch_bar(self, description, total):
        return _Bar(self, description, total)

    def write(self, text):
        if not self.enabled:
            return
        if self.tqdm is not None:
            self.tqdm.write(text)
        else:
            print(text, flush=True)

    def epoch_summary(self, epoch, epochs, history):
        parts = []
        for split in ("train", "val"):
            if len(history[split]) == epoch + 1:
                stats = history[split][-1]
                values = " ".join(f"{k} {v:.4f}" for k, v in stats.items()
                                  if k not in ("num_images", "time", "images_per_second"))
                parts.append(f"{split}: {values} ({stats['images_per_second']:.0f} im/s)")
        self.write(f"epoch {epoch + 1}/{epochs}  " + "  ".join(parts))


class _Bar:
    def __init__(self, reporter, description, total):
        self.reporter, self.description, self.total = reporter, description, total
        self.bar = None

    def __enter__(self):
        if self.reporter.enabled and self.reporter.tqdm is not None:
            self.bar = self.reporter.tqdm(total=self.total, desc=self.description,
                                          unit="im", leave=False, dynamic_ncols=True)
        return self.update

    def update(self, n, means, rate):
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()}, refresh=False)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


class _Plotter:
    """Curves of every output (train solid, val dashed) against the epoch: saved to
    ``exp_dir/net-train.png`` and, in Jupyter, shown and updated in place. Draws on a bare
    ``Figure`` with the Agg canvas, so the user's pyplot backend is never changed."""

    def __init__(self, enabled, exp_dir):
        self.enabled = enabled
        self.exp_dir = exp_dir
        self.in_jupyter = _in_jupyter()
        self.handle = None
        if enabled:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                self.enabled = False
        if not self.in_jupyter and exp_dir is None:
            self.enabled = False  # nowhere to show or save it

    def update(self, history):
        if not self.enabled or not history["train"]:
            return
        import io
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        figure = plot_history(history)
        FigureCanvasAgg(figure)
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=80)
        if self.exp_dir is not None:
            path = os.path.join(self.exp_dir, "net-train.png")
            _atomic_write(path, lambda p: _write_bytes(p, png.getvalue()))
        if self.in_jupyter:
            # A PNG rather than the Figure: a bare Figure only renders as a picture once
            # pyplot's inline backend has registered its formatters.
            from IPython.display import Image, display
            picture = Image(data=png.getvalue(), format="png")
            if self.handle is None:
                self.handle = display(picture, display_id=True)
            else:
                self.handle.update(picture)

    def close(self):
        self.handle = None


def plot_history(history):
    """A matplotlib Figure with one panel per statistic ('objective', then the errors)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    names = [k for k in history["train"][0] if k not in ("num_images", "time",
                                                         "images_per_second")]
    errors = [n for n in names if n != names[0]]
    panels = [[names[0]]] + ([errors] if errors else [])
    figure = Figure(figsize=(5 * len(panels), 3.6))
    for k, panel in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), k + 1)
        for j, name in enumerate(panel):
            for split, style in (("train", "-"), ("val", "--")):
                values = [stats[name] for stats in history.get(split, [])]
                if values:
                    axes.plot(range(1, len(values) + 1), values, style, marker=".",
                              color=f"C{j}", label=f"{name} {split}")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title("energy" if k == 0 else "error")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _in_jupyter():
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _check_arguments(net, dataset, solver, epochs, batch_size, num_sub_batches, inputs):
    if not isinstance(net, Net):
        raise TypeError(f"train: net must be an autonn Net, got {type(net).__name__}")
    if not hasattr(dataset, "batches") or not hasattr(dataset, "num_images"):
        raise TypeError(f"train: dataset must have batches() and num_images() (see "
                        f"autonn.datasets), got {type(dataset).__name__}")
    if not hasattr(solver, "step"):
        raise TypeError(f"train: solver must have step(net) (see autonn.solvers), got "
                        f"{type(solver).__name__}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("num_sub_batches", num_sub_batches)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"train: {name} must be a positive integer, got {value!r}")
    if len(inputs) != 2 or any(name not in net.inputs for name in inputs):
        raise ValueError(f"train: inputs {tuple(inputs)} must name the net's image and label "
                         f"Inputs; the net's inputs are {sorted(net.inputs)}")
