"""Data-parallel training over MPI (``mpi4py``): ``mpirun -np K python train.py``.

Every rank holds the whole net and trains on its own share of each batch; :func:`autonn.train`
with ``distributed=True`` (or started under ``mpirun``) does the rest:

- at the start, rank 0's Params are broadcast, so every rank starts from the same values;
- during each backward pass, the Params' derivatives are summed across the ranks in buckets of
  about ``bucket_bytes``: a bucket's non-blocking all-reduce starts as soon as the backward tape
  has finished every derivative in it (:attr:`autonn.Net.on_param_ders`), so communication
  overlaps the rest of the backward pass. Each rank weights its derivative by its share of the
  batch, so the sum is the derivative of the whole batch's mean objective: K ranks with batch
  B take the steps of one process with batch K B. 'average' Params (bnorm moments) are
  averaged the same way; every rank then takes the same solver step;
- statistics (objective, errors) are summed over the ranks; only rank 0 prints, plots and
  writes checkpoints.

A rank that stops answering (killed, hung) makes the others raise :class:`DistributedTimeout`
after ``timeout`` seconds (``AUTONN_MPI_TIMEOUT``, default 300) instead of waiting forever (MPI's own collectives have no timeout:
every wait here polls a non-blocking request). With CuPy arrays, derivatives are copied to the
host for the all-reduce (a CUDA-aware MPI or NCCL would avoid the copy; not done yet).
"""

import os
import time

import numpy as np

from . import backend

BUCKET_BYTES = 4 * 2**20
TIMEOUT_SECONDS = 300.0
# what MPI launchers put in the environment of each rank (Open MPI, MPICH/Intel MPI, Slurm)
SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


class DistributedTimeout(RuntimeError):
    """A collective operation did not complete in time: another rank has probably died."""


def launched_by_mpi():
    """Whether this process is one of several ranks an MPI launcher started."""
    for name in SIZE_VARIABLES:
        try:
            if int(os.environ.get(name, "1")) > 1:
                return True
        except ValueError:
            continue
    return False


class DataParallel:
    """The ranks of an MPI communicator (``COMM_WORLD`` by default) training one net."""

    def __init__(self, comm=None, *, bucket_bytes=BUCKET_BYTES, timeout=None):
        try:
            from mpi4py import MPI
        except ImportError:
            raise ImportError("distributed training needs mpi4py and an MPI library: pip "
                              "install autonn[distributed] (mpi4py and Open MPI)") from None
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        if timeout is None:
            timeout = float(os.environ.get("AUTONN_MPI_TIMEOUT", TIMEOUT_SECONDS))
        if bucket_bytes <= 0 or timeout <= 0:
            raise ValueError(f"DataParallel: bucket_bytes and timeout must be positive, got "
                             f"{bucket_bytes} and {timeout}")
        self.bucket_bytes, self.timeout = int(bucket_bytes), float(timeout)
        self._pending = []      # (request, buffer, params) of started all-reduces
        self._bucket = []       # (param, der) waiting to fill a bucket
        self._bucket_size = 0
        self._submitted = set()
        self._weight = 1.0
        self._overlapping = False
        # one bound method, kept: a net regenerates its code when its hook is another object
        self._hook = self._from_backward

    # ------------------------------------------------------------------ shards
    def shard(self, indices):
        """This rank's part of one global batch: contiguous, as even as can be (the first
        ranks take one more when the batch does not divide)."""
        return np.array_split(np.asarray(indices), self.size)[self.rank]

    # ------------------------------------------------------------------ parameters
    def broadcast_params(self, net):
        """Give every rank rank 0's Param values (and make them contiguous host arrays)."""
        for param in net.params:
            value = np.ascontiguousarray(backend.to_numpy(param.value))
            self._wait(self.comm.Ibcast(value, root=0), f"the broadcast of '{param.name}'")
            device = backend.device_of(param.value)
            param.value = backend.to_device(value, device) if device == "gpu" else value

    def start_step(self, net, local_count, global_count, *, overlap=True):
        """Before a training step's backward pass: weight this rank's derivatives by its
        share of the batch and (``overlap``) let the net hand them over as they are finished;
        without, :meth:`finish_step` reduces them all (sub-batches: only the accumulated
        derivative of the last part is final)."""
        if self._pending or self._bucket:
            raise RuntimeError("DataParallel.start_step: the previous step's all-reduce was "
                               "not finished (call finish_step)")
        self._weight = local_count / global_count
        self._submitted = set()
        self._overlapping = overlap
        # the hook stays set between steps (setting and clearing it made the net generate its
        # code again at every step); outside a step with overlap it does nothing
        net.on_param_ders = self._hook

    def finish_step(self, net):
        """After the backward pass: reduce what the hook did not see, wait for every bucket
        and set each Param's ``der`` to the sum over the ranks."""
        self._overlapping = False
        rest = [p for p in net.params if id(p) not in self._submitted]
        self._finished(rest, [p.der for p in rest])
        self._start_bucket()
        pending, self._pending = self._pending, []
        for request, buffer, params in pending:
            self._wait(request, f"the all-reduce of {', '.join(p.name for p in params)}")
            offset = 0
            for param in params:
                size = int(np.prod(param.value.shape))
                der = buffer[offset:offset + size].reshape(param.value.shape)
                offset += size
                device = backend.device_of(param.value)
                param.der = backend.to_device(der, device) if device == "gpu" else der

    def reduce_sum(self, values):
        """Element-wise sum over the ranks of a float array (statistics)."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        total = np.empty_like(values)
        self._wait(self.comm.Iallreduce(values, total, op=self.MPI.SUM), "a statistics sum")
        return total

    def barrier(self):
        self._wait(self.comm.Ibarrier(), "a barrier")

    # ------------------------------------------------------------------ internals
    def detach(self, net):
        """Take this rank's hook off ``net`` (training is over)."""
        if net.on_param_ders is self._hook:
            net.on_param_ders = None

    def _from_backward(self, params, ders):
        """The net's hook: during a step's backward pass, these Params' derivatives are final."""
        if self._overlapping:
            self._finished(params, ders)

    def _finished(self, params, ders):
        """These Params' derivatives are final on this rank: into the bucket."""
        for param, der in zip(params, ders):
            if id(param) in self._submitted:
                continue
            self._submitted.add(id(param))
            if der is None:
                der = np.zeros(param.value.shape, param.value.dtype)
            self._bucket.append((param, der))
            self._bucket_size += int(np.prod(param.value.shape)) * param.value.dtype.itemsize
            if self._bucket_size >= self.bucket_bytes:
                self._start_bucket()

    def _start_bucket(self):
        if not self._bucket:
            return
        by_dtype = {}
        for param, der in self._bucket:
            by_dtype.setdefault(np.dtype(param.value.dtype), []).append((param, der))
        for dtype, entries in by_dtype.items():
            # summed in the Params' own dtype (float64 nets sum in float64)
            buffer = np.empty(sum(der.size for _, der in entries), dtype)
            offset = 0
            for _, der in entries:
                part = buffer[offset:offset + der.size]
                np.multiply(backend.to_numpy(der).ravel(), self._weight, out=part,
                            casting="unsafe")
                offset += der.size
            total = np.empty_like(buffer)
            request = self.comm.Iallreduce(buffer, total, op=self.MPI.SUM)
            self._pending.append((request, _Kept(total, buffer),
                                  [param for param, _ in entries]))
        self._bucket, self._bucket_size = [], 0

    def _wait(self, request, what):
        # MPI progresses a non-blocking operation inside its calls: test often at first, then
        # back off to a millisecond between tests (spinning took the core of a rank computing)
        deadline = time.monotonic() + self.timeout
        pause = 1e-5
        while not request.Test():
            if time.monotonic() > deadline:
                raise DistributedTimeout(
                    f"distributed: rank {self.rank} of {self.size} waited {self.timeout:g} s "
                    f"for {what}; another rank has probably died or stopped")
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)


class _Kept:
    """A reduced buffer, with the buffer it was reduced from kept alive until the request
    completes (MPI reads it until then)."""

    def __init__(self, total, send):
        self.total, self.send = total, send

    def __getitem__(self, index):
        return self.total[index]
