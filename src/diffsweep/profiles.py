"""The repository's Snakemake profiles (profiles/<name>) installed where Snakemake finds a profile
given by name, so that `snakemake --profile slurm` works as on any cluster.

Snakemake resolves `--profile NAME` that is no existing path by looking for a folder NAME in the
working directory, then in the user's Snakemake config folder, then in the site's
(snakemake.cli.get_profile_dir; on Linux $XDG_CONFIG_HOME/snakemake, else ~/.config/snakemake,
then /etc/xdg/snakemake). `install` puts a symbolic link to the profile in the user's folder: the
profile stays the repository's (a `git pull` updates it), and Snakemake reads it exactly as
`--profile profiles/NAME` (it resolves a value relative to the profile folder only where that path
exists there, which no value of ours does; relative paths like `logs/slurm` stay relative to the
working directory either way).
"""

from __future__ import annotations

import os
from pathlib import Path

# The checkout's profiles/ (diffsweep is installed editable: `pip install -e .`).
PROFILES = Path(__file__).resolve().parents[2] / "profiles"


class ProfileError(Exception):
    """A profile that cannot be installed; the message is one line naming the path."""


def user_profile_dir() -> Path:
    """The user's Snakemake config folder, as Snakemake itself computes it."""
    from snakemake.common import get_appdirs

    return Path(get_appdirs().user_config_dir)


def available(source_dir: Path = PROFILES) -> list[str]:
    return sorted(p.name for p in source_dir.iterdir() if (p / "config.yaml").is_file()) if source_dir.is_dir() else []


def install(name: str, target_dir: Path | None = None, source_dir: Path = PROFILES) -> tuple[Path, bool]:
    """Link `target_dir/name` (default: the user's Snakemake config folder) to the profile
    `source_dir/name`. Returns (the link, whether it was made now); a link that is already there
    is kept (idempotent). Anything else of that name (another profile, a link elsewhere) is left
    alone: ProfileError. A dangling link (a moved or deleted checkout) is no profile and is replaced."""
    source = source_dir / name
    if not source_dir.is_dir():
        raise ProfileError(f"no profiles folder at {source_dir}: diffsweep is not installed from a checkout of the "
                           f"repository (pip install -e .)")
    if name in ("", ".", "..") or os.sep in name or not (source / "config.yaml").is_file():
        names = ", ".join(available(source_dir)) or "none"
        raise ProfileError(f"no profile '{name}' in {source_dir} (profiles there: {names})")
    source = source.resolve()
    link = (target_dir or user_profile_dir()) / name
    if link.is_symlink():
        if link.resolve() == source:
            return link, False
        if link.exists():
            raise ProfileError(f"{link} already links to another profile ({os.readlink(link)}); left as it is "
                               f"(remove the link to install {source} instead)")
        link.unlink()
    elif link.exists():
        raise ProfileError(f"{link} already exists and is not a link to {source}; left as it is (remove or rename "
                           f"it to install this profile)")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(source, target_is_directory=True)
    return link, True
