"""The driver's guards, without Ray: the operator's DECAYLAB_DOWNLOAD=0 holds against a study
that asks to download, and a driver refuses a database that is not the service's."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import make_spec

import workers.data
from studies.settings import DriverSettings
from workers.data import DatasetUnavailable
from workers.run import StudyRun, check_database


class DownloadAttempted(Exception):
    """Raised in place of torchvision's download, which would reach the internet."""


@pytest.mark.parametrize(
    ("study_asks", "operator_allows", "downloads"),
    [(False, False, False), (True, False, False), (False, True, True), (True, True, True)],
)
def test_only_the_operator_lets_a_study_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    study_asks: bool, operator_allows: bool, downloads: bool,
) -> None:  # fmt: skip
    def download(name: str, data_dir: Path) -> None:
        raise DownloadAttempted(name)

    monkeypatch.setattr(workers.data, "_torchvision_download", download)
    task = {"dataset": "fashion_mnist", "model": "mlp", "epochs": 1, "download": study_asks}
    spec = make_spec(task=task)
    settings = DriverSettings(home=tmp_path, data_dir=tmp_path / "empty", download=operator_allows)
    run = StudyRun("id", "optuna-name", spec, settings, "sqlite://")
    with pytest.raises(DownloadAttempted if downloads else DatasetUnavailable) as caught:
        run._trainable()
    if not downloads:
        assert "DECAYLAB_DOWNLOAD=1" in str(caught.value)


def test_a_driver_refuses_a_database_that_is_not_the_services(tmp_path: Path) -> None:
    expected = "postgresql+psycopg://decaylab@db/decaylab"
    fallback = DriverSettings(
        home=tmp_path, database_url="", database_url_file=None, expected_database_url=expected
    )
    with pytest.raises(SystemExit, match="DECAYLAB_DATABASE_URL_FILE") as caught:
        check_database(fallback)  # the node lacks the URL: not SQLite under home instead
    assert "sqlite:///" in str(caught.value) and expected in str(caught.value)
    own = DriverSettings(
        home=tmp_path, database_url="postgresql+psycopg://decaylab:pw@db/decaylab",
        expected_database_url=expected,
    )  # fmt: skip
    check_database(own)
    check_database(DriverSettings(home=tmp_path, database_url="", expected_database_url=""))
