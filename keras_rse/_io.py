"""Atomic file writes and hashes shared by training, the zoo and evaluation reports.

A run can be killed at any moment; writing to a temporary name and renaming
means a reader sees either the old file or the complete new one, never half.
"""

import hashlib
import os


def atomic_write_text(path, text):
    """Writes ``text`` to ``path`` through a temporary file and a rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_save(save_fn, path):
    """Calls ``save_fn(tmp_path)`` then renames: a killed run never leaves half a file."""
    root, ext = os.path.splitext(path)
    if path.endswith(".weights.h5"):
        root, ext = path[: -len(".weights.h5")], ".weights.h5"
    tmp = f"{root}.tmp{os.getpid()}{ext}"
    save_fn(tmp)
    os.replace(tmp, path)


def sha256_of(path):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
