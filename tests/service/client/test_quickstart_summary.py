"""The words `make run` ends with: the sparsest front trial within 1.5 points of the best."""

from __future__ import annotations

from typing import Any

import pytest

from service.client.quickstart import headline


def trial(number: int, val_acc: float, sparsity: float, **params: Any) -> dict[str, Any]:
    settings = {"p": 0.8, "lambda": 0.0178, "schedule": "full", "until": None, "from": None}
    return {
        "number": number,
        **settings,
        **params,
        "final_metrics": {"val_acc": val_acc, "sparsity": sparsity, "test_acc": val_acc},
    }


def test_a_sparse_trial_close_to_the_best_is_the_headline() -> None:
    front = [
        trial(3, 0.655, 0.02, p=1.85, **{"lambda": 0.01}),
        trial(9, 0.645, 0.571, p=0.65, schedule="early", until=0.4),  # 1.0 points below
        trial(4, 0.630, 0.90),  # sparser, but 2.5 points below
    ]
    assert headline(front) == (
        "Sparse and accurate: trial 9 (p = 0.65, lambda = 0.0178, decay on for the first 40% of"
        " training) reaches 64.5% validation accuracy, 1.0 points below the best trial's 65.5%"
        " (trial 3), with 57.1% of its weights at zero."
    )


@pytest.mark.parametrize(
    ("close_sparsity", "starts"),
    [(0.499, "No trial is 50% sparse within 1.5 points of the best: trial 2 "), (0.5, "Sparse")],
)
def test_the_threshold_is_half_the_weights(close_sparsity: float, starts: str) -> None:
    front = [trial(1, 0.65, 0.0), trial(2, 0.6351, close_sparsity), trial(5, 0.60, 0.95)]
    assert headline(front).startswith(starts)


def test_the_best_trial_alone_is_its_own_headline() -> None:
    words = headline([trial(0, 0.64, 0.75, schedule="none", p=None)])
    assert words == (
        "Sparse and accurate: trial 0 (lambda = 0.0178, decay never on) reaches 64.0% validation"
        " accuracy, 0.0 points below the best trial's 64.0% (trial 0), with 75.0% of its"
        " weights at zero."
    )
