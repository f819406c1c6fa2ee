"""Atomic file output and the small JSON/array formats the workflow passes between jobs.

Every reader of a file the workflow wrote (`read_json`, `read_arrays`, `read_parquet`) raises
`UnreadableFile` naming the file when it cannot be read as that format: a results folder may be
damaged, or come from someone else.

A job killed mid-write must leave no partial file that Snakemake (or a later run) would
accept, so every writer goes to a temporary file in the target folder (`.<name>.<random>.tmp`)
and renames it. A job killed (kill -9, a node lost) before the rename leaves that temporary file
behind; the next writer of the same file removes it (`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

# When this process started writing: a temporary file last modified before it was left by an
# earlier, interrupted job (Snakemake never runs two jobs writing one output at once).
STARTED = time.time()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.
    Temporary files of `path` left by interrupted earlier jobs are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, names=[path.name])
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates the file 0600; give it the permissions any other new file would get
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temporaries(folder, names=None, older_than: float | None = None) -> list[Path]:
    """Remove the temporary files of interrupted atomic writes in `folder` (of the files `names`,
    or of any file) last modified before `older_than` (default: this process's start); return them."""
    folder, older_than = Path(folder), STARTED if older_than is None else older_than
    if not folder.is_dir():
        return []
    patterns = [f".{name}.*.tmp" for name in names] if names is not None else [".*.tmp"]
    removed = []
    for pattern in patterns:
        for stale in folder.glob(pattern):
            try:
                if stale.is_file() and stale.stat().st_mtime < older_than:
                    stale.unlink()
                    removed.append(stale)
            except FileNotFoundError:   # removed meanwhile
                pass
    return removed


def file_digest(path) -> dict:
    """{"bytes": size, "sha256": hex digest} of a file, as run records store them."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class UnreadableFile(ValueError):
    """A file that cannot be read as the format it should have; one line naming the file."""


def unreadable(path, what: str, error: BaseException) -> UnreadableFile:
    """'<path>: cannot be read as <what> (<Type>: <message on one line>)'."""
    text = " ".join(str(error).split())
    return UnreadableFile(f"{path}: cannot be read as {what} ({type(error).__name__}{': ' + text if text else ''})")


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=jsonable) + "\n")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:    # ValueError: JSONDecodeError, UnicodeDecodeError
        raise unreadable(path, "JSON", error) from None


def write_arrays(path, **arrays) -> None:
    """numpy .npz, written atomically (np.savez would append .npz to a temp name, so pass a file object)."""
    import numpy as np
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def read_arrays(path) -> dict:
    """The arrays of an .npz file (no pickled objects)."""
    import numpy as np
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except Exception as error:   # OSError, BadZipFile, EOFError, ValueError (pickles), a plain .npy, ...
        raise unreadable(path, "an .npz file of arrays", error) from None


def read_sample_set(path):
    """The samples `x` of a data set file the workflow drew (train.npz, reference.npz): an array
    of at least one finite sample; anything else raises UnreadableFile naming the file (a
    damaged or edited file would make every run that reads it fail without saying why)."""
    import numpy as np

    arrays = read_arrays(path)
    x = arrays.get("x")
    if x is None or not np.issubdtype(x.dtype, np.floating) or x.ndim < 2 or len(x) == 0:
        found = f"an array x of {x.dtype} and shape {x.shape}" if x is not None else f"arrays {sorted(arrays)}"
        raise UnreadableFile(f"{path}: holds {found}, not samples (x: floats, one row per sample); delete it to "
                             f"draw the data set again")
    bad = int((~np.isfinite(x.reshape(len(x), -1)).all(axis=1)).sum())
    if bad:
        raise UnreadableFile(f"{path}: {bad} of {len(x)} samples hold NaN or infinite values; delete it to draw "
                             f"the data set again")
    return x


def write_parquet(path, frame) -> None:
    """A DataFrame as Parquet. Its `attrs` (a table's `param_columns`) travel in the file's
    metadata (pandas >= 2.1 writes them under the key PANDAS_ATTRS); read_parquet restores them."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_parquet(path):
    """A Parquet table with the attrs it was written with (`frame.attrs["param_columns"]`)."""
    import pandas as pd
    if not Path(path).is_file():    # pyarrow would read a folder as a dataset of its files
        why = "not a file" if Path(path).exists() else "missing"
        raise UnreadableFile(f"{path}: cannot be read as a Parquet table ({why})")
    try:
        return pd.read_parquet(path)
    except Exception as error:   # OSError, pyarrow's ArrowInvalid, ...
        raise unreadable(path, "a Parquet table", error) from None


def jsonable(value):
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
