"""`make reproduce`: the seed papers' claims (docs/science.md §4) measured through the service.

Starts `decaylab serve` as `make run` does, submits the bundled small-scale studies over REST
(two at a time, so one study's last trial overlaps the next one's start), waits for them, reads
their trials back over REST, judges every claim (`service.client.claims`) and prints one table: the
claim, what the paper reports, what decaylab measured (means with 95% CIs over seeds) and
whether it holds. The same goes to `<home>/reproduce/claims.md` and `claims.json`, with one
report (`decaylab report` of all the arms of a comparison) per study group under `reports/`.

`--quick` runs a reduced version (fewer configurations, 2 seeds, half the epochs) of the
studies behind the directional claims 1, 2a and 3 (decoupled): what the slow test checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from service.client.api import ApiClient, ApiError
from service.client.claims import CLAIMS, HOLDS, Claim, Verdict, evaluate, studies_for
from service.client.quickstart import running_service
from service.client.report import write_report
from service.client.report.data import all_trials
from studies import catalog
from studies.catalog import FAMILIES
from studies.settings import Settings
from studies.spec import parse_spec_text
from studies.states import TERMINAL_STUDY_STATES, StudyState

# beside studies/catalog.py (importlib.resources would find tests/studies first under pytest)
EXAMPLES = Path(catalog.__file__).with_name("examples")
TERMINAL = tuple(TERMINAL_STUDY_STATES)
IN_FLIGHT = 2  # studies submitted at once
POLL_S = 2.0
QUICK_CLAIMS = ("1", "2a", "3a decoupled", "3b decoupled", "3c decoupled")
QUICK_COMMON: dict[str, Any] = {"seeds": 2, "task.epochs": 20}
# the reduced grids of --quick: the ends of each effect, not its shape
QUICK: dict[str, dict[str, Any]] = {
    "pwd_sparsity_pwd": {
        "space.p.choices": [0.8],
        "space.lambda.choices": [5e-2, 1e-1],
        "search.n_trials": 2,
    },
    "pwd_sparsity_decoupled": {"space.lambda.choices": [1e-2, 1e-1], "search.n_trials": 2},
    "p_sweep": {"space.p.choices": [0.6, 1.0, 1.6], "search.n_trials": 3},
}
VERDICT_STYLES = {HOLDS: "green", "does not hold": "red", "inconclusive": "yellow"}
Json = dict[str, Any]


def override(data: Json, dotted: str, value: Any) -> None:
    """Set `data[a][b][c] = value` for `dotted` = "a.b.c"."""
    *path, last = dotted.split(".")
    for key in path:
        data = data[key]
    data[last] = value


def bundled_spec(name: str, quick: bool) -> Json:
    """The bundled study `name` as plain data, reduced when `quick`."""
    path = EXAMPLES / f"{name}.yaml"
    data: Json = parse_spec_text(path.read_text(encoding="utf-8"))
    if quick:
        for dotted, value in {**QUICK_COMMON, **QUICK.get(name, {})}.items():
            override(data, dotted, value)
    return data


def run_studies(client: ApiClient, specs: Mapping[str, Json]) -> dict[str, Json]:
    """Submit the specs, at most IN_FLIGHT at once, and wait for all; {name: final detail}."""
    waiting, running, done = list(specs), dict[str, str](), dict[str, Json]()
    started = time.monotonic()
    while waiting or running:
        while waiting and len(running) < IN_FLIGHT:
            name = waiting.pop(0)
            running[name] = client.post("/studies", json=specs[name])["id"]
            print(f"  submitted {name} as study {running[name]}", flush=True)
        time.sleep(POLL_S)
        for name, study_id in list(running.items()):
            detail = client.get(f"/studies/{study_id}")
            if detail["status"] in TERMINAL:
                done[name] = detail
                del running[name]
                counts = detail["progress"]["counts"]
                print(
                    f"  {name}: {detail['status']} after {time.monotonic() - started:.0f} s "
                    f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})",
                    flush=True,
                )
    return {name: done[name] for name in specs}  # in the specs' order, not the finishing one


def fetch_trials(client: ApiClient, details: Mapping[str, Json]) -> dict[str, list[Json]]:
    """Every trial of each study, by study name."""
    return {name: all_trials(client, detail["id"]) for name, detail in details.items()}


def report_groups(details: Mapping[str, Json]) -> dict[str, list[str]]:
    """Study ids by comparison: the arms `<group>_<family>` of one claim share a report."""
    groups: dict[str, list[str]] = {}
    for name, detail in details.items():
        group = next((name[: -len(f) - 1] for f in FAMILIES if name.endswith(f"_{f}")), name)
        groups.setdefault(group, []).append(detail["id"])
    return groups


def write_reports(client: ApiClient, details: Mapping[str, Json], out_dir: Path) -> list[Path]:
    """One report (PNGs and index.html) per comparison under `out_dir`/reports."""
    return [
        write_report(client, ids, out_dir / "reports" / group)
        for group, ids in report_groups(details).items()
    ]


def print_table(verdicts: Sequence[Verdict], console: Console) -> None:
    """The verdicts as one terminal table."""
    table = Table(
        title="decaylab reproduces the seed papers (95% CIs over seeds)", show_lines=True
    )
    for header, ratio in (("claim", 1), ("paper reports", 3), ("decaylab measured", 5)):
        table.add_column(header, ratio=ratio, overflow="fold")
    table.add_column("verdict", ratio=2, overflow="fold")
    for v in verdicts:
        style = VERDICT_STYLES.get(v.verdict, "")
        verdict = f"[{style}]{v.verdict}[/{style}]" if style else v.verdict
        why = f"\n{v.reason}" if v.reason else ""
        table.add_row(
            f"{v.claim}: {v.title}", v.paper, f"{v.measured}\nrule: {v.rule}", verdict + why
        )
    console.print(table)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(verdicts: Sequence[Verdict], header: str) -> str:
    """The verdicts as one Markdown table."""
    lines = [
        "# decaylab reproduces the seed papers",
        "",
        header,
        "",
        "| claim | paper reports | decaylab measured (mean [95% CI], seeds) | rule | verdict |",
        "|---|---|---|---|---|",
    ]
    for v in verdicts:
        verdict = f"**{v.verdict}**" + (f": {v.reason}" if v.reason else "")
        cells = (f"{v.claim}: {v.title}", v.paper, v.measured, v.rule, verdict)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(
    out_dir: Path, verdicts: Sequence[Verdict], details: Mapping[str, Json], meta: Json
) -> tuple[Path, Path]:
    """claims.md and claims.json under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    studies = {
        name: {"id": d["id"], "status": d["status"], "counts": d["progress"]["counts"]}
        for name, d in details.items()
    }
    header = (
        f"{meta['generated_at']} · {'quick' if meta['quick'] else 'full'} run · "
        f"{meta['duration_s']:.0f} s · studies: "
        + ", ".join(f"{n} ({s['id'][:8]}, {s['status']})" for n, s in studies.items())
    )
    md, js = out_dir / "claims.md", out_dir / "claims.json"
    md.write_text(markdown(verdicts, header), encoding="utf-8")
    document = {**meta, "studies": studies, "claims": [v.to_dict() for v in verdicts]}
    js.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return md, js


def chosen_claims(names: Sequence[str] | None, quick: bool) -> list[Claim]:
    """The claims to judge: those named, else the quick set or all."""
    wanted = names or (QUICK_CLAIMS if quick else None)
    if wanted is None:
        return list(CLAIMS)
    unknown = sorted(set(wanted) - {c.claim for c in CLAIMS})
    if unknown:
        raise SystemExit(f"unknown claims {unknown}; choose from {[c.claim for c in CLAIMS]}")
    return [c for c in CLAIMS if c.claim in wanted]


def reproduce(client: ApiClient, claims: Sequence[Claim], quick: bool, out_dir: Path) -> int:
    """Run the claims' studies through the API, judge them, print and write the table."""
    started = time.monotonic()
    names = studies_for(claims)
    print(f"running {len(names)} bundled studies{' (quick)' if quick else ''} ...", flush=True)
    details = run_studies(client, {name: bundled_spec(name, quick) for name in names})
    verdicts = evaluate(fetch_trials(client, details), claims)
    meta = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "duration_s": time.monotonic() - started,
        "api": client.base_url,
    }
    print_table(verdicts, Console(width=160))
    md, js = write_outputs(out_dir, verdicts, details, meta)
    reports = write_reports(client, details, out_dir)
    print(f"\n{md}\n{js}\n" + "\n".join(map(str, reports)))
    print("(the studies stay in the database: decaylab ls, trials, report)")
    failed = [name for name, d in details.items() if d["status"] != StudyState.SUCCEEDED]
    if failed:
        print(f"studies that did not succeed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m service.client.reproduce`."""
    parser = argparse.ArgumentParser(
        prog="python -m service.client.reproduce", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="the reduced run of the slow test")
    parser.add_argument("--claims", nargs="+", help="only these claims (e.g. 1 2a '4 adam')")
    parser.add_argument("-o", "--output", type=Path, help="default: <home>/reproduce")
    args = parser.parse_args(argv)
    claims = chosen_claims(args.claims, args.quick)
    settings = Settings()
    out_dir = args.output or settings.home / "reproduce"
    try:
        with running_service(settings) as (client, _):
            return reproduce(client, claims, args.quick, out_dir)
    except ApiError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
