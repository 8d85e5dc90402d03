"""The driver of one study, and the Ray Job entrypoint: `python -m workers.run <study_id>`.

Loads the spec from the database, runs it as an Optuna search on Ray Tune, and leaves the study
`succeeded`, `failed` or `cancelled` (SIGTERM or SIGINT: what `ray job stop` sends). With
`--resume` a study whose driver died goes on from the database: finished configurations count
toward the budget, configurations the dead driver left running are run again.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import optuna
import ray
from ray import tune
from sqlalchemy.orm import Session, sessionmaker

from studies import repository
from studies.db import make_engine, session_factory
from studies.search_space import make_sampler
from studies.settings import DriverSettings, apply_ray_environment
from studies.spec import StudySpec
from studies.states import RESULT_TRIAL_STATES, StudyState, TrialState
from workers.data import load_dataset
from workers.recorder import SqlRecorder
from workers.tune_adapter import (
    CANCEL,
    CancelStopper,
    StudySearcher,
    make_scheduler,
    run_trial,
    trial_dirname,
)

log = logging.getLogger("decaylab.run")
DRIVER_LOST = "driver lost: the study's driver died while this trial ran"


def _on_signal(signum: int, frame: FrameType | None) -> None:
    log.warning("signal %s: cancelling the study", signal.Signals(signum).name)
    CANCEL.set()


@dataclass
class StudyRun:
    """Everything one driver needs to run one study."""

    study_id: str
    optuna_study_name: str
    spec: StudySpec
    settings: DriverSettings
    database_url: str
    # None trains for real; bench/orchestration.py runs a fixed-cost trainable through the engine
    trainable: Callable[[dict[str, Any]], None] | None = None

    def _trainable(self) -> Callable[[dict[str, Any]], None]:
        """The Tune function trainable, with the dataset sent to the cluster once."""
        if self.trainable is not None:
            return self.trainable
        spec, settings = self.spec, self.settings
        data = load_dataset(
            spec.task.dataset,
            data_dir=settings.data_dir,
            val_fraction=spec.task.val_fraction,
            # the operator's DECAYLAB_DOWNLOAD decides: a study's `task.download: true` cannot
            # override a 0 (a download reaches the internet and fills the shared data directory)
            download=settings.download,
        )
        return tune.with_parameters(run_trial, data=data)

    def tuner(self, searcher: StudySearcher, num_samples: int) -> tune.Tuner:
        """The Tuner: resources, the dataset once through the object store, ASHA, the recorder."""
        spec, settings = self.spec, self.settings
        resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
        trainable = tune.with_resources(self._trainable(), resources)
        recorder = SqlRecorder(self.database_url, self.study_id, epochs=spec.task.epochs)
        return tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=make_scheduler(spec),
                num_samples=num_samples,
                max_concurrent_trials=spec.search.max_concurrent,
                reuse_actors=True,
                trial_name_creator=trial_dirname,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=self.optuna_study_name,
                storage_path=str((settings.home / "ray-results").resolve()),
                callbacks=[recorder],
                stop=CancelStopper(),
                failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
                verbose=1,
            ),
        )


def check_database(settings: DriverSettings) -> None:
    """Stop unless this node's database is the service's.

    A database URL with a password never travels with the job (the Jobs API shows it to anyone):
    the node holds it, and the service sends the URL less its password to check it against.
    """
    expected, own = settings.expected_database_url, settings.public_database_url()
    if expected and own != expected:
        raise SystemExit(
            f"this node's database is {own}, the service's {expected}: set DECAYLAB_DATABASE_URL "
            "or DECAYLAB_DATABASE_URL_FILE in the environment of the Ray node that runs drivers"
        )


def execute(run: StudyRun, *, resume: bool) -> StudyState:
    """Run the study to its end; returns the final status."""
    searcher = StudySearcher(
        run.spec,
        storage=optuna.storages.RDBStorage(run.database_url),
        study_name=run.optuna_study_name,
        sampler=make_sampler(run.spec),
    )
    if resume:
        lost = searcher.recover_lost_trials()
        log.info("resume: %d configuration(s) left running by a dead driver run again", lost)
    remaining = searcher.remaining_configurations()
    if remaining and not CANCEL.is_set():
        # an upper bound: a suggestion that repeats a configuration takes an ask but no sample,
        # and the searcher ends the run once its asks are spent
        run.tuner(searcher, remaining * run.spec.seeds).fit()
    return StudyState.CANCELLED if CANCEL.is_set() else StudyState.SUCCEEDED


def _begin(sessions: sessionmaker[Session], study_id: str, settings: DriverSettings) -> StudyRun:
    """End trials a dead driver left running, load the spec, and mark the study running."""
    with sessions() as session:
        study = repository.get_study(session=session, study_id=study_id)
        _fail_running_trials(session, study_id, DRIVER_LOST)
        session.commit()  # first, so that no trial stays running if the spec does not load
        spec = StudySpec.model_validate(study.spec)
        repository.set_study_status(session=session, study_id=study_id, status=StudyState.RUNNING)
        run = StudyRun(
            study_id, study.optuna_study_name, spec, settings, settings.resolved_database_url()
        )
        session.commit()
    return run


def _fail_running_trials(session: Session, study_id: str, error: str) -> None:
    repository.mark_running_trials(
        session=session, study_id=study_id, state=TrialState.FAILED, error=error
    )


def _end(sessions: sessionmaker[Session], study_id: str, status: str, error: str | None) -> str:
    """Record how the study ended; a study in which no trial produced a result has failed."""
    with sessions() as session:
        if status == StudyState.CANCELLED:
            repository.mark_running_trials(
                session=session, study_id=study_id, state=TrialState.CANCELLED, error="cancelled"
            )
        counts = repository.count_trials_by_state(session=session, study_id=study_id)
        if status == StudyState.SUCCEEDED and not any(counts[s] for s in RESULT_TRIAL_STATES):
            status = StudyState.FAILED
            failed = repository.list_trials(
                session=session,
                study_id=study_id,
                states=[TrialState.FAILED, TrialState.DIVERGED],
                limit=1,
            )
            first = failed.items[0] if failed.items else None
            reason = (first.error or first.state) if first else "no trial ran"
            error = f"no trial produced a result; trial {first.number if first else '-'}: {reason}"
        repository.set_study_status(session=session, study_id=study_id, status=status, error=error)
        session.commit()
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point: run (or resume) one study and record how it ended."""
    parser = argparse.ArgumentParser(prog="python -m workers.run", description=__doc__)
    parser.add_argument("study_id")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--ray-address", default=None, help="default: RAY_ADDRESS, else local")
    parser.add_argument("--num-cpus", type=int, default=None, help="for a local Ray only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # Tune's result files are off (our tables hold the results); its warning about them is noise
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    settings = DriverSettings()
    apply_ray_environment(settings.home)
    check_database(settings)
    sessions = session_factory(make_engine(settings.resolved_database_url()))
    status: str = StudyState.FAILED
    error: str | None = None
    try:
        run = _begin(sessions, args.study_id, settings)
        ray.init(address=args.ray_address, num_cpus=args.num_cpus, log_to_driver=True)
        # after ray.init, which installs a SIGTERM handler that exits the process
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _on_signal)
        status = execute(run, resume=args.resume)
    except Exception as exc:
        log.exception("the study failed")
        error = f"{type(exc).__name__}: {exc}"
        # Tune is gone with whatever it ran: its trials end with the study's reason
        with sessions() as session:
            _fail_running_trials(session, args.study_id, error)
            session.commit()
    finally:
        status = _end(sessions, args.study_id, status, error)
    log.info("study %s %s", args.study_id, status)
    return 0 if status != StudyState.FAILED else 1


if __name__ == "__main__":
    sys.exit(main())
