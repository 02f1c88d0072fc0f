"""The command line: parses arguments, calls one API function, prints, and maps errors to exit codes."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import typer

from storyforge import __version__
from storyforge.errors import StoryforgeError

app = typer.Typer(
    name="storyforge",
    help="Declarative story generation for SkyReels-V2: validate, plan, enhance, render, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_USER, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 3, 130


def _version(value: bool) -> None:
    if value:
        typer.echo(f"storyforge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """storyforge: film-as-code for Diffusion-Forcing video models."""


@app.command()
def init(folder: Path = typer.Argument(Path("."), help="Folder for the new story.")) -> None:
    """Scaffold a story folder with a commented example that validates."""
    from storyforge import api
    from storyforge.console import out

    target = api.init(folder)
    out.print(f"[green]✓[/green] wrote {target}; next: storyforge plan {target}")


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="Story files to check.")) -> None:
    """Check story files; exit 1 if any is invalid."""
    from storyforge import api
    from storyforge.console import out, show_error

    failed = 0
    for file in files:
        try:
            story = api.validate(file)
        except StoryforgeError as error:
            show_error(error)
            failed += 1
            continue
        shots = sum(len(scene.shots) for scene in story.film.scenes)
        out.print(f"[green]✓[/green] {file} — {story.film.title!r}, {len(story.film.scenes)} scenes, {shots} shots")
    if failed:
        raise typer.Exit(EXIT_USER)


@app.command()
def plan(
    file: Path = typer.Argument(..., help="The story file."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan JSON instead of a table."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the plan JSON to this file."),
    model: str | None = typer.Option(None, "--model", help="Override the model for every shot."),
) -> None:
    """Compile a story into its Diffusion-Forcing segment plan (no GPU, no torch)."""
    from storyforge import api
    from storyforge.console import out, plan_footer, plan_table, show_warnings

    result = api.plan(file, {"model": model})
    show_warnings(result)
    if output is not None:
        from storyforge.api import _write_atomically

        _write_atomically(output, result.dumps())
    if as_json:
        sys.stdout.write(result.dumps())
    elif output is None:
        out.print(plan_table(result))
        out.print(plan_footer(result))
    else:
        out.print(f"[green]✓[/green] wrote {output} ({len(result.jobs)} jobs, {result.total_frames} frames)")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the story format."""
    from storyforge import api

    sys.stdout.write(api.schema_text())


def main() -> None:
    """Entry point: run the app and turn every failure into one message and an exit code."""
    try:
        code = app(standalone_mode=False)
    except StoryforgeError as error:
        from storyforge.console import show_error

        show_error(error)
        sys.exit(EXIT_USER)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; finished work is kept and a new run resumes from it\n")
        sys.exit(EXIT_INTERRUPTED)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(EXIT_INTERRUPTED)
    except _click_usage_errors() as error:
        error.show()
        sys.exit(EXIT_USAGE)
    except Exception:  # noqa: BLE001 - the last line of defence: a short report instead of a traceback
        summary = traceback.format_exc(limit=-3)
        sys.stderr.write(
            "storyforge hit an internal error (a bug, not your mistake). Please report it at "
            "https://github.com/storyforge/storyforge/issues with this text:\n" + summary
        )
        sys.exit(EXIT_BUG)
    sys.exit(code if isinstance(code, int) else 0)


def _click_usage_errors() -> tuple[type[Exception], ...]:
    """Usage errors: typer >= 0.20 carries its own click (typer._click); older ones use click itself."""
    kinds: list[type[Exception]] = []
    try:
        from typer._click.exceptions import ClickException

        kinds.append(ClickException)
    except ImportError:
        pass
    try:
        from click.exceptions import ClickException as PlainClickException

        kinds.append(PlainClickException)
    except ImportError:
        pass
    return tuple(kinds)
