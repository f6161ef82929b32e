from .conv import conv, convt  # noqa: F401  (Kernels I)
from .pool import pool  # noqa: F401  (Kernels I)
