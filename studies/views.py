"""The SQL views a person queries in psql or sqlite3, and the README's example queries.

Migration 0002 creates the views (their SQL is frozen there); this module names their columns
and holds EXAMPLE_QUERIES, which the README prints verbatim and a test runs on SQLite and
PostgreSQL. `python -m studies.views` prints the README section.

dl_trial_summary: one row per trial, typed parameters and final metrics; `p_bucket` is the
lower edge of p's 0.25-wide bucket (0.8 -> 0.75), `lam_decade` the power of ten at or below λ
(3e-4 -> 1e-4; 0 for λ = 0), `sparsity_1e_08` the final sparsity at |w| < 1e-8, and so on.
dl_epoch_metrics: one row per (trial, epoch, metric name), with the trial's core parameters.
"""

from __future__ import annotations

TRIAL_SUMMARY = "dl_trial_summary"
EPOCH_METRICS = "dl_epoch_metrics"

TRIAL_SUMMARY_COLUMNS = (
    "study_id", "study", "study_status", "trial_id", "trial", "state", "config_id", "replicate",
    "seed", "family", "p", "p_bucket", "lam", "lam_decade", "schedule", "until", "start", "lr",
    "epochs_done", "val_acc", "val_loss", "train_acc", "train_loss", "test_acc",
    "pruned_val_acc", "sparsity", "sparsity_1e_10", "sparsity_1e_08", "sparsity_1e_06",
    "sparsity_1e_04", "sparsity_1e_03", "zero_frac", "weight_norm", "angular_update",
    "best_val_acc", "diverged_epoch", "decayed_param_count", "non_decayed_param_count", "node",
    "started_at", "finished_at",
)  # fmt: skip
EPOCH_METRICS_COLUMNS = (
    "study_id", "study", "trial", "state", "family", "p", "lam", "schedule", "seed", "epoch",
    "name", "value",
)  # fmt: skip

# title -> SQL; each runs as written on SQLite and PostgreSQL (the study is named quickstart)
EXAMPLE_QUERIES: dict[str, str] = {
    "Mean final validation accuracy and sparsity by decay schedule and p bucket": """\
SELECT schedule, p_bucket, COUNT(*) AS trials,
       AVG(val_acc) AS mean_val_acc, AVG(sparsity) AS mean_sparsity
FROM dl_trial_summary
WHERE study = 'quickstart' AND state = 'completed'
GROUP BY schedule, p_bucket
ORDER BY schedule, p_bucket;""",
    "The sparsest trials within one point of the best validation accuracy": """\
SELECT trial, family, p, lam, schedule, val_acc, sparsity, sparsity_1e_08
FROM dl_trial_summary
WHERE study = 'quickstart' AND state = 'completed'
  AND val_acc >= (SELECT MAX(val_acc) - 0.01 FROM dl_trial_summary
                  WHERE study = 'quickstart' AND state = 'completed')
ORDER BY sparsity DESC, trial
LIMIT 10;""",
    "Validation-accuracy curves averaged per decay schedule": """\
SELECT schedule, epoch, COUNT(*) AS trials, AVG(value) AS mean_val_acc
FROM dl_epoch_metrics
WHERE study = 'quickstart' AND name = 'val_acc'
GROUP BY schedule, epoch
ORDER BY schedule, epoch;""",
    "The first epoch at which each trial had half its decayed weights below 1e-6": """\
SELECT trial, p, lam, MIN(epoch) AS first_half_sparse_epoch
FROM dl_epoch_metrics
WHERE study = 'quickstart' AND name = 'sparsity' AND value >= 0.5
GROUP BY trial, p, lam
ORDER BY first_half_sparse_epoch, trial;""",
    "Spread over seeds of each configuration, best mean first": """\
SELECT config_id, family, p, lam, schedule, COUNT(*) AS seeds,
       AVG(val_acc) AS mean_val_acc, MIN(val_acc) AS min_val_acc, MAX(val_acc) AS max_val_acc
FROM dl_trial_summary
WHERE study = 'quickstart' AND state = 'completed'
GROUP BY config_id, family, p, lam, schedule
ORDER BY mean_val_acc DESC, config_id
LIMIT 10;""",
}


def readme_fragment() -> str:
    """The README section "Query your sweeps with SQL", with EXAMPLE_QUERIES verbatim."""
    lines = [
        "## Query your sweeps with SQL",
        "",
        "Every result lives in plain SQL tables beside Optuna's, in SQLite",
        "(`sqlite3 .decaylab/decaylab.db`) or PostgreSQL (`psql $DECAYLAB_DATABASE_URL`, without",
        "the `+psycopg` driver part). Two views make the common questions one SELECT:",
        "",
        f"- `{TRIAL_SUMMARY}`: one row per trial: `study`, `trial`, `state`, `seed`, the typed",
        "  parameters (`family`, `p`, `lam`, `schedule`, `until`, `start` (the spec's `from`),",
        "  `lr`), `p_bucket` (lower edge of p's 0.25-wide bucket), `lam_decade` (the power of",
        "  ten at or below λ), every final metric (`val_acc`, `test_acc`, `sparsity`,",
        "  `sparsity_1e_10` ... `sparsity_1e_03`, `weight_norm`, ...) and the parameter counts.",
        f"- `{EPOCH_METRICS}`: one row per trial, epoch and metric: `study`, `trial`, `state`,",
        "  `family`, `p`, `lam`, `schedule`, `seed`, `epoch`, `name`, `value`.",
        "",
        "These queries run as written on both databases (replace `quickstart` with your",
        "study's name):",
    ]
    for title, sql in EXAMPLE_QUERIES.items():
        lines += ["", f"**{title}**", "", "```sql", sql, "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(readme_fragment(), end="")
