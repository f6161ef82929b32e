"""The error a malformed file raises, whichever reader finds it.

Every loader — :meth:`autonn.Net.load`, :func:`autonn.io.load_matconvnet`,
:func:`autonn.io.load_torch_state_dict` — raises :class:`FormatError` (a ``ValueError``) naming
the file and what is wrong with it, and never returns half of a model. A missing file is still
a ``FileNotFoundError``.
"""

import contextlib
import pickle
import struct
import zipfile


class FormatError(ValueError):
    """A file that is not what its reader expects: truncated, corrupted, hostile."""


class RefusedCode(FormatError, pickle.UnpicklingError):
    """A pickle inside a file names code to run (a global other than the few a reader allows)."""


class UnknownOp(FormatError, KeyError):
    """A saved graph names an op that is not registered (a custom op whose module has not been
    imported, or a made-up name)."""

    __str__ = BaseException.__str__  # KeyError's would quote the message


# What the parsing libraries raise on bytes they cannot make sense of.
_PARSE_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError, EOFError,
                 OverflowError, RecursionError, MemoryError, UnicodeDecodeError, struct.error,
                 zipfile.BadZipFile, zipfile.LargeZipFile, pickle.UnpicklingError)


@contextlib.contextmanager
def reading(where):
    """Turn any parsing error raised inside the block into a :class:`FormatError` that starts
    with ``where`` (``"Net.load('model.npz')"``)."""
    try:
        yield
    except FormatError:
        raise
    except _PARSE_ERRORS as error:
        raise FormatError(_message(where, error)) from None


def _message(where, error):
    if isinstance(error, KeyError):  # str() of a KeyError is the repr of its key
        key = error.args[0] if error.args else None
        text = key if isinstance(key, str) and " " in key else f"no entry {key!r}"
    else:
        text = str(error) or type(error).__name__
    return text if text.startswith(where) else f"{where}: {text}"
