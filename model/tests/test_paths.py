"""Paths in what we commit are relative to the repository, or names only."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowers_model.paths import portable, portable_paths, repository_root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "clone" / ".git").mkdir(parents=True)
    (tmp_path / "clone" / "model" / "runs").mkdir(parents=True)
    return tmp_path / "clone"


def test_the_repository_is_found_from_a_subfolder(repo: Path) -> None:
    assert repository_root(repo / "model" / "runs") == repo.resolve()
    assert repository_root(repo.parent) == repo.parent.resolve()  # no checkout: the folder itself


def test_inside_the_repository_a_path_is_relative_to_it(repo: Path) -> None:
    assert portable(repo / "model" / "runs" / "lite0", repo) == "model/runs/lite0"


def test_outside_it_only_the_name_is_kept(repo: Path) -> None:
    assert portable(repo.parent / "shared" / "datasets" / "oxford102", repo) == "oxford102"


def test_config_paths_are_made_portable_and_the_rest_kept(repo: Path) -> None:
    cfg = {"data_dir": str(repo.parent / "data"), "out_dir": str(repo / "model" / "runs" / "a"), "init_from": ""}
    cfg["lr"] = 1
    assert portable_paths(cfg, ("data_dir", "out_dir", "init_from"), repo) == {
        "data_dir": "data",
        "out_dir": "model/runs/a",
        "init_from": "",
        "lr": 1,
    }
