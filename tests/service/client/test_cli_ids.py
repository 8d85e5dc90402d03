"""`decaylab` takes a unique prefix of a study id, as git and docker take short ids.

A real uvicorn server over a real SQLite database, 40 studies seeded through the repository (so
some one-character prefixes are shared: ids are hex, 40 > 16), and the installed `decaylab`
command run as a person runs it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from api_harness import served
from factories import database, make_study, make_trial

from service.client.api import ApiClient, ApiError

DECAYLAB = str(Path(sys.executable).with_name("decaylab"))
STUDIES = 40
FRONT = ((0.64, 0.38), (0.63, 0.65), (0.60, 0.30))


@dataclass(frozen=True)
class Live:
    url: str
    ids: list[str]

    def shared_prefix(self) -> str:
        """A one-character prefix at least two ids start with."""
        firsts = [i[0] for i in self.ids]
        return next(c for c in firsts if firsts.count(c) > 1)

    def unique_prefix(self, study_id: str) -> str:
        """The shortest prefix of `study_id` that no other id starts with."""
        others = [i for i in self.ids if i != study_id]
        return next(
            study_id[:n]
            for n in range(1, len(study_id) + 1)
            if not any(o.startswith(study_id[:n]) for o in others)
        )

    def unused_prefix(self) -> str:
        """Two hex digits no id starts with."""
        return next(
            f"{n:02x}" for n in range(256) if not any(i.startswith(f"{n:02x}") for i in self.ids)
        )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("ids")
    url = f"sqlite:///{root / 'decaylab.sqlite'}"
    with database(url) as sessions, sessions.begin() as session:
        ids = [make_study(session, name=f"study-{n}").id for n in range(STUDIES)]
        for acc, sparsity in FRONT:  # the last study has trials: two objectives, one dominated
            final = {"val_acc": acc, "sparsity": sparsity, "test_acc": acc - 0.01}
            make_trial(session, ids[-1], final=final)
    with served(root / "home", url) as served_url:
        yield Live(served_url, ids)


def decaylab(live: Live, *args: str) -> subprocess.CompletedProcess[str]:
    command = [DECAYLAB, "--api", live.url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_a_unique_prefix_names_its_study(live: Live) -> None:
    study_id = live.ids[7]
    prefix = live.unique_prefix(study_id)
    shown = decaylab(live, "show", prefix)
    assert shown.returncode == 0, shown.stderr
    assert f"study-7 {study_id}: queued" in shown.stdout
    upper = decaylab(live, "trials", study_id[:12].upper())  # ids are not case-sensitive
    assert upper.returncode == 0, upper.stderr
    assert "trials 1–0 of 0" in upper.stdout


def test_an_ambiguous_prefix_is_an_error_naming_the_matches(live: Live) -> None:
    prefix = live.shared_prefix()
    matches = [i for i in live.ids if i.startswith(prefix)]
    shown = decaylab(live, "show", prefix)
    assert shown.returncode == 1
    assert shown.stdout == ""
    message = shown.stderr.strip()
    assert message.startswith(f"error: '{prefix}' is ambiguous: {len(matches)} study ids start")
    assert message.endswith("give more characters")
    assert sum(i in message for i in matches) == min(len(matches), 5)
    assert len(message.splitlines()) == 1  # one line, no traceback


def test_an_unknown_prefix_or_id_is_an_error(live: Live) -> None:
    unknown = decaylab(live, "best", live.unused_prefix())
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        f"error: no study id starts with '{live.unused_prefix()}' (see `decaylab ls`)"
    )
    whole = "00000000-0000-4000-8000-000000000000"  # a whole id goes to the route as it is
    missing = decaylab(live, "show", whole)
    assert missing.returncode == 1
    assert f"GET /studies/{whole}: 404" in missing.stderr


def test_prefixes_are_found_on_every_page(live: Live) -> None:
    client = ApiClient(live.url)
    assert sorted(client.study_ids(page_size=7)) == sorted(live.ids)
    oldest = live.ids[0]  # newest first: the oldest study is on the last page
    assert client.resolve_study_id(live.unique_prefix(oldest), page_size=7) == oldest
    with pytest.raises(ApiError, match="cannot be empty"):
        client.resolve_study_id("  ")


def test_pareto_takes_a_prefix_and_prints_each_metric_once(live: Live) -> None:
    study_id = live.ids[-1]
    shown = decaylab(live, "pareto", live.unique_prefix(study_id))
    assert shown.returncode == 0, shown.stderr
    assert "Pareto front: 2 of 3 completed trials" in shown.stdout
    header = next(line for line in shown.stdout.splitlines() if "number" in line)
    names = [cell.strip() for cell in header.strip("┃ ").split("┃")]
    assert names.count("val_acc") == names.count("sparsity") == names.count("test_acc") == 1
    assert names[:2] == ["val_acc", "sparsity"]  # the objectives first
