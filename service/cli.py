"""The `decaylab` command line."""

from importlib.metadata import version

import typer

app = typer.Typer(help="decaylab: weight-decay studies on Ray Tune + Optuna, results in SQL.")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"decaylab {version('decaylab')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """decaylab: weight-decay studies on Ray Tune + Optuna, results in SQL."""


def main() -> None:
    """Entry point of the `decaylab` console script."""
    app()
