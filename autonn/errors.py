"""The error a malformed file raises, whichever reader finds it.

Every loader — :meth:`autonn.Net.load`, :func:`autonn.io.load_matconvnet`,
:func:`autonn.io.load_torch_state_dict` — raises :class:`FormatError` (a ``ValueError``) naming
the file and what is wrong with it, and never returns half of a model. A missing file is still
a ``FileNotFoundError``.
"""

import contextlib
import errno
import pickle
import struct
import tokenize
import zipfile
import zlib


class FormatError(ValueError):
    """A file that is not what its reader expects: truncated, corrupted, hostile."""


class RefusedCode(FormatError, pickle.UnpicklingError):
    """A pickle inside a file names code to run (a global other than the few a reader allows)."""


class UnknownOp(FormatError, KeyError):
    """A saved graph names an op that is not registered (a custom op whose module has not been
    imported, or a made-up name)."""

    __str__ = BaseException.__str__  # KeyError's would quote the message


# What the parsing libraries raise on bytes they cannot make sense of (zipfile: an unknown
# compression method is NotImplementedError, a bad deflate stream zlib.error; NumPy parses an
# .npy header with tokenize and ast: TokenError, SyntaxError).
_PARSE_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError, EOFError,
                 OverflowError, RecursionError, MemoryError, UnicodeDecodeError, struct.error,
                 zipfile.BadZipFile, zipfile.LargeZipFile, pickle.UnpicklingError, zlib.error,
                 NotImplementedError, tokenize.TokenError, SyntaxError)


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
    except OSError as error:
        # a seek to an offset the file's own tables give, before its start: the file is wrong,
        # not the disk (which keeps its OSError)
        if error.errno != errno.EINVAL:
            raise
        raise FormatError(f"{where}: an offset in the file points outside it ({error})") \
            from None


# A zip member may inflate to this many times its compressed size (or to SMALL_MEMBER_BYTES,
# whichever is more) before it is refused unread: real arrays compress 1-10x, a zip bomb 1000x.
MAX_INFLATION = 64
SMALL_MEMBER_BYTES = 4 * 2**20


def check_zip_members(archive, where):
    """Refuse an archive with a member far larger than its bytes on disk (before anything is
    inflated) or encrypted (which no writer of model files does). Returns the members'
    ``ZipInfo``."""
    members = archive.infolist()
    for info in members:
        if info.flag_bits & 0x1:
            raise FormatError(f"{where}: member {info.filename!r} is encrypted")
        if info.file_size > max(SMALL_MEMBER_BYTES, MAX_INFLATION * info.compress_size):
            raise FormatError(f"{where}: member {info.filename!r} would inflate from "
                              f"{info.compress_size} to {info.file_size} bytes")
    return members


def _message(where, error):
    if isinstance(error, KeyError):  # str() of a KeyError is the repr of its key
        key = error.args[0] if error.args else None
        text = key if isinstance(key, str) and " " in key else f"no entry {key!r}"
    elif isinstance(error, (tokenize.TokenError, SyntaxError)):
        text = f"an array's .npy header is malformed ({error})"
    else:
        text = str(error) or type(error).__name__
    return text if text.startswith(where) else f"{where}: {text}"
