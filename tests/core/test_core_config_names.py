"""Fields that name things (photos, files) are checked when the config is built (issue #16)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from thrifty.core.config import Config, ConfigError


@dataclass
class Named(Config):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {}, "quick": {}, "full": {}}
    photos: tuple[str, ...] = ("cat",)
    dataset: str = ""

    def validate(self) -> None:
        self.require_names("photos", ("cat", "dog"))
        self.require_file("dataset")


def test_names_are_checked_up_front() -> None:
    assert Named(photos=("dog", "cat")).photos == ("dog", "cat")
    with pytest.raises(ConfigError, match=r"^Named\.photos: expected names among cat, dog, got \('cat', 'cow'\)$"):
        Named.from_preset("quick", photos=["cat", "cow"])


def test_files_are_checked_up_front(tmp_path: Path) -> None:
    data = tmp_path / "latency.json"
    data.write_text("{}")
    assert Named(dataset=str(data)).dataset == str(data)
    with pytest.raises(ConfigError, match=r"Named\.dataset: expected the path of an existing file"):
        Named(dataset=str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match=r"Named\.dataset: expected the path of an existing file"):
        Named(dataset=str(tmp_path))  # a directory is not a file
