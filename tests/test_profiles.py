"""`diffsweep profile install`: the repository's profiles where Snakemake finds them by name, so
that `snakemake --profile slurm` works from the repository root (docs/cluster.md)."""

import os

import pytest

from diffsweep import cli, profiles


@pytest.fixture
def user_config(tmp_path, monkeypatch, root):
    """A fresh user (HOME, XDG_CONFIG_HOME) in the repository root, as a newcomer types the command;
    no SLURM controller is asked (the executor plugin's import)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("SLURM_CONF", "/dev/null")
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    monkeypatch.chdir(root)
    return tmp_path / "xdg" / "snakemake"


def profile_values(profile: str) -> dict:
    """The values Snakemake's own command line reads from `--profile profile` (paths that exist
    in the profile folder made absolute), found as Snakemake finds it."""
    from snakemake.cli import get_profile_dir
    from snakemake.profiles import ProfileConfigFileParser

    with open(get_profile_dir(profile)[1]) as stream:
        return dict(ProfileConfigFileParser().parse(stream))


def test_snakemake_finds_the_installed_profile_by_name(user_config, root, capsys):
    from snakemake.cli import get_argument_parser, get_profile_dir

    assert get_profile_dir("slurm") is None     # what made `snakemake --profile slurm` fail
    assert cli.main(["profile", "install", "slurm"]) == 0
    assert capsys.readouterr().out.startswith(f"installed: {user_config / 'slurm'} -> {root / 'profiles' / 'slurm'}")
    assert get_profile_dir("slurm") == (user_config / "slurm", user_config / "slurm" / "config.yaml")
    # read through the link exactly as through profiles/slurm: relative paths (slurm-logdir: logs/slurm)
    # stay relative to the working directory
    assert profile_values("slurm") == profile_values("profiles/slurm")
    settings = get_argument_parser(profiles=["slurm"]).parse_args([])
    assert settings.executor == "slurm" and str(settings.slurm_logdir) == "logs/slurm"

    assert cli.main(["profile", "install", "slurm"]) == 0          # idempotent
    assert capsys.readouterr().out.startswith("already installed:")
    assert os.readlink(user_config / "slurm") == str(root / "profiles" / "slurm")


def test_without_xdg_config_home_it_goes_to_dot_config(user_config, monkeypatch, tmp_path, root):
    from snakemake.cli import get_profile_dir

    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert cli.main(["profile", "install", "default"]) == 0
    folder = tmp_path / "home" / ".config" / "snakemake" / "default"
    assert folder.resolve() == root / "profiles" / "default"
    assert get_profile_dir("default")[0] == folder


def test_another_profile_of_that_name_is_left_alone(user_config, tmp_path, capsys):
    theirs = user_config / "slurm"
    theirs.mkdir(parents=True)
    (theirs / "config.yaml").write_text("executor: slurm\njobs: 5\n")
    assert cli.main(["profile", "install", "slurm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {theirs} already exists and is not a link to" in err
    assert (theirs / "config.yaml").read_text() == "executor: slurm\njobs: 5\n"

    other = tmp_path / "other-checkout" / "profiles" / "default"
    other.mkdir(parents=True)
    (other / "config.yaml").write_text("cores: 1\n")
    (user_config / "default").symlink_to(other)
    assert cli.main(["profile", "install", "default"]) == 2
    assert f"already links to another profile ({other})" in capsys.readouterr().err
    assert os.readlink(user_config / "default") == str(other)


def test_a_dangling_link_is_replaced_and_unknown_names_are_refused(user_config, tmp_path, root, capsys):
    user_config.mkdir(parents=True)
    (user_config / "slurm").symlink_to(tmp_path / "moved-checkout" / "profiles" / "slurm")
    assert cli.main(["profile", "install", "slurm"]) == 0
    assert (user_config / "slurm").resolve() == root / "profiles" / "slurm"
    capsys.readouterr()
    for name in ("slurn", "..", "default/../slurm"):
        assert cli.main(["profile", "install", name]) == 2
        assert "profiles there: default, slurm" in capsys.readouterr().err
    assert sorted(os.listdir(user_config)) == ["slurm"]
    with pytest.raises(profiles.ProfileError, match="not installed from a checkout"):   # a non-editable install
        profiles.install("slurm", source_dir=tmp_path / "site-packages" / "profiles")


def test_the_site_folder_is_not_touched_and_dir_installs_elsewhere(user_config, tmp_path, root):
    assert cli.main(["profile", "install", "slurm", "--dir", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "slurm").resolve() == root / "profiles" / "slurm"
    assert not user_config.exists()
    assert profiles.available() == ["default", "slurm"]
