"""Copies that never leave a partial file: write to a temporary name beside the target, rename.

Example::

    >>> partial_name("/etc/app.conf")[:len("/etc/.app.conf.psdirect-")]
    '/etc/.app.conf.psdirect-'
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
from collections.abc import Iterator


def partial_name(path: str) -> str:
    """A hidden temporary name in the same directory as ``path`` (so a rename is atomic)."""
    head, tail = posixpath.split(path)
    return posixpath.join(head, f".{tail}.psdirect-{secrets.token_hex(4)}.part")


@contextlib.contextmanager
def atomic_local_file(path: str) -> Iterator[str]:
    """Yield a temporary name for ``path``; rename it into place on success, remove it on error.

    >>> import tempfile, pathlib
    >>> d = tempfile.mkdtemp()
    >>> with atomic_local_file(f"{d}/out") as part:
    ...     _ = pathlib.Path(part).write_text("done")
    >>> sorted(os.listdir(d))
    ['out']
    """
    part = os.path.join(os.path.dirname(path) or ".", os.path.basename(partial_name(path)))
    try:
        yield part
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise
