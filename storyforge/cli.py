"""The command line: parses arguments, calls one API function, prints, and maps errors to exit codes."""

from __future__ import annotations

import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from storyforge import __version__
from storyforge.errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USAGE, EXIT_USER, StoryforgeError


class _FlagsShowNoType:
    """Flags take no value: newer typers print every flag as `--json <bool>`; show nothing in the type column."""

    def get_params(self, ctx):  # type: ignore[no-untyped-def]
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class StoryGroup(_FlagsShowNoType, typer.core.TyperGroup):
    """The `storyforge` group, with flags shown as flags."""


class StoryCommand(_FlagsShowNoType, typer.core.TyperCommand):
    """A command whose usage reads like the README, `storyforge plan [OPTIONS] FILE` (newer typers print
    required arguments as `{file}`), with flags shown as flags."""

    def collect_usage_pieces(self, ctx):  # type: ignore[no-untyped-def]
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or (param.name or "").upper()
                pieces.append(name if param.required else f"[{name}]")
        return pieces


app = typer.Typer(
    name="storyforge",
    cls=StoryGroup,
    help="Declarative story generation for SkyReels-V2: validate, plan, enhance, render, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_ALLOW_HELP = ("Let the story read files in this folder too (repeatable); by default it reads only inside its root: "
               "the nearest folder holding .git, else its own folder. STORYFORGE_ALLOW_PATH (os.pathsep-separated) "
               "does the same for CI.")


def _allowing(folders: list[Path] | None):
    from storyforge.story.root import allowing

    return allowing(folders or ())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"storyforge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """storyforge: film-as-code for Diffusion-Forcing video models."""


@app.command(cls=StoryCommand)
def init(folder: Path = typer.Argument(Path("."), metavar="DIR", help="Folder for the new story.")) -> None:
    """Scaffold a story folder with a commented example that validates."""
    from storyforge import api
    from storyforge.console import done

    target = api.init(folder)
    done("wrote {}; next: storyforge plan {}", target, target)


@app.command(cls=StoryCommand)
def validate(
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="Story files to check."),
    strict: bool = typer.Option(False, "--strict", help="Fail on warnings too (exit 1), for CI."),
    stories_only: bool = typer.Option(False, "--stories-only",
                                      help="Skip files that are not story files (no top-level `storyforge:` key) "
                                           "quietly: for pre-commit and globs over every YAML file."),
    verbose: bool = typer.Option(False, "--verbose", help="List every warning and every place of a mistake "
                                 "made in many places (by default they are grouped)."),
    allow_path: list[Path] | None = typer.Option(None, "--allow-path", metavar="DIR", help=_ALLOW_HELP),
) -> None:
    """Check story files; exit 1 if any is invalid (or, with --strict, has warnings)."""
    from storyforge import api
    from storyforge.console import counted, done, show_error, show_warnings

    failed = 0
    for file in files:
        if stories_only and not api.is_story_file(file):
            continue
        try:
            with _allowing(allow_path):
                story, result = api.check(file)
        except StoryforgeError as error:
            show_error(error, verbose=verbose)
            failed += 1
            continue
        show_warnings(result, strict=strict, verbose=verbose)
        if strict and result.warnings:
            failed += 1
            continue
        film = story.film
        shots = sum(len(scene.shots) for scene in film.scenes)
        warned = f" ({counted(len(result.warnings), 'warning')})" if result.warnings else ""
        done("{} — {}, {}, {}{}", file, repr(film.title), counted(len(film.scenes), "scene"), counted(shots, "shot"),
             warned)
    if failed:
        raise typer.Exit(EXIT_USER)


@app.command(cls=StoryCommand)
def plan(
    file: Path = typer.Argument(..., metavar="FILE", help="The story file."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan JSON instead of a table."),
    output: Path | None = typer.Option(None, "-o", "--output", metavar="FILE",
                                       help="Write the plan JSON to this file."),
    model: str | None = typer.Option(None, "--model", metavar="MODEL", help="Override the model for every shot."),
    verbose: bool = typer.Option(False, "--verbose", help="List every warning (by default many of one kind are "
                                 "grouped)."),
    allow_path: list[Path] | None = typer.Option(None, "--allow-path", metavar="DIR", help=_ALLOW_HELP),
) -> None:
    """Compile a story into its Diffusion-Forcing segment plan (no GPU, no torch)."""
    from storyforge.collector import collector_paused

    with collector_paused():  # the modules it imports and the plan it prints, too, live to the end
        _plan(file, as_json, output, model, verbose, allow_path)


def _plan(file: Path, as_json: bool, output: Path | None, model: str | None, verbose: bool,
          allow_path: list[Path] | None) -> None:
    from storyforge import api
    from storyforge.console import done, raw, show_plan, show_warnings

    with _allowing(allow_path):
        result = api.plan(file, {"model": model})
    show_warnings(result, verbose=verbose)
    if output is not None:
        from storyforge.atomic import write_text

        write_text(output, result.dumps())
    if as_json:
        from storyforge.console import json_safe

        raw(json_safe(result.dumps()))  # not through rich: its console is a twentieth of a cold plan
    elif output is None:
        show_plan(result)
    else:
        done("wrote {} ({} jobs, {} frames)", output, len(result.jobs), result.total_frames)


@app.command(cls=StoryCommand)
def enhance(
    file: Path = typer.Argument(..., metavar="FILE", help="The story file."),
    llm: str | None = typer.Option(None, "--llm", metavar="MODEL",
                                   help="Expand prompts with this instruct model (hub id or local folder); "
                                        "default: the story's enhance.llm."),
    force: bool = typer.Option(False, "--force", help="Rewrite every shot's entry, not only changed ones."),
    download: bool = typer.Option(False, "--download", help="Download a hub model that is not on this machine "
                                  "(by default that is an error naming `hf download`)."),
    allow_path: list[Path] | None = typer.Option(None, "--allow-path", metavar="DIR", help=_ALLOW_HELP),
) -> None:
    """Write the story's lock file (film.yaml -> film.lock.json): each shot's final prompt, pinned."""
    from rich import progress as rp

    from storyforge import api
    from storyforge.console import done, err, show_warning
    from storyforge.errors import display_path

    bars = rp.Progress(rp.TextColumn("expanding prompts", markup=False), rp.BarColumn(), rp.MofNCompleteColumn(),
                       rp.TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)
    task = bars.add_task("llm", total=None)

    def on_progress(done: int, total: int) -> None:
        bars.update(task, completed=done, total=total)

    with bars, _allowing(allow_path):
        report = api.enhance(file, llm=llm, force=force, on_progress=on_progress, download=download)
    for warning in report.warnings:
        show_warning(warning)
    how = f"expanded with {report.llm} in {report.seconds:.1f}s" if report.llm and report.updated else "template"
    state = "written" if report.changed else "unchanged"
    updated = f"{len(report.updated)} shot{'' if len(report.updated) == 1 else 's'} updated"
    done("{} {}: {} ({}), {} up to date", display_path(report.lock), state, updated, how, len(report.kept))


@app.command(context_settings={"ignore_unknown_options": True})  # `pick FILE SHOT -1`: a take, not an option
def pick(
    file: Path = typer.Argument(..., metavar="FILE", help="The story file."),
    shot: str = typer.Argument(..., metavar="SHOT", help="The shot, as scene/shot."),
    take: int | None = typer.Argument(None, metavar="[TAKE]", help="The take to use (1 is the first)."),
    keyframe: int | None = typer.Option(None, "--keyframe", metavar="N",
                                        help="Choose keyframe candidate N (`keyframes: {takes: N}`) as the picture "
                                             "the shot's video starts from, instead of a take."),
    allow_path: list[Path] | None = typer.Option(None, "--allow-path", metavar="DIR", help=_ALLOW_HELP),
) -> None:
    """Choose which take of a shot the film uses (or, with --keyframe, which start picture); the lock file
    (film.lock.json) keeps the choice."""
    from storyforge import api
    from storyforge.console import done
    from storyforge.errors import display_path

    if (take is None) == (keyframe is None):
        raise typer.BadParameter("name a TAKE, or a keyframe candidate with --keyframe N (not both)",
                                 param_hint="'TAKE'")
    with _allowing(allow_path):
        if keyframe is not None:
            changed = api.pick_keyframe(file, shot, keyframe)
            done("{}: keyframe {} picked{} in {}; `storyforge render {}` renders the shot from it", shot, keyframe,
                 "" if changed else " (unchanged)", display_path(api.lock_file(file)), file)
            return
        assert take is not None
        report = api.pick(file, shot, take)
    was = "unchanged" if not report.changed else f"was take {report.previous}"
    done("{}: take {} of {} picked ({}) in {}; `storyforge render {}` cuts the film with it", report.shot, report.take,
         report.takes, was, display_path(report.lock), file)


if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

    from storyforge.plan.model import Job
    from storyforge.render import RunReport


class BackendChoice(str, Enum):
    auto = "auto"
    skyreels_df = "skyreels-df"
    animatic = "animatic"


class ExecutorChoice(str, Enum):
    local = "local"
    ray = "ray"


@app.command(cls=StoryCommand)
def render(
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="The story file; or several, or folders of them "
                                       "(rendered together: with --executor ray their chains share the cluster)."),
    out_dir: Path | None = typer.Option(None, "--out", metavar="DIR",
                                        help="Output folder (default: renders/<story>/ beside it; with several "
                                             "stories, DIR/<story>/)."),
    backend: BackendChoice = typer.Option(BackendChoice.auto, "--backend",
                                          help="auto: skyreels-df with CUDA or the tiny model, else animatic."),
    model: str | None = typer.Option(None, "--model", metavar="MODEL", help="Override the model for every shot."),
    only: list[str] | None = typer.Option(None, "--only", metavar="SHOT",
                                          help="Render only this shot (scene/shot) or scene, and what continues "
                                               "it; repeat it or separate ids with commas."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Render every job again; the cache is not touched."),
    executor: ExecutorChoice = typer.Option(ExecutorChoice.local, "--executor",
                                            help="Where chains of shots run: local (here, in order) or ray (one "
                                                 "task per chain on the cluster in RAY_ADDRESS, else a local one)."),
    ray_listen: str | None = typer.Option(None, "--ray-listen", metavar="ADDR",
                                          help="Open the Ray cluster this render starts for itself (no RAY_ADDRESS) "
                                               "at this address of this machine, so other machines can join it; by "
                                               "default it listens and talks on 127.0.0.1 only. "
                                               "STORYFORGE_RAY_LISTEN does the same."),
    keyframes_only: bool = typer.Option(False, "--keyframes-only",
                                        help="Make only the keyframes (generated start frames) into keyframes/, "
                                             "to approve the looks before rendering video."),
    download: bool = typer.Option(False, "--download", help="Download the hub models the render needs and this "
                                  "machine lacks, before any work (by default that is an error naming "
                                  "`hf download`; nothing is ever downloaded in the middle of a render)."),
    allow_path: list[Path] | None = typer.Option(None, "--allow-path", metavar="DIR", help=_ALLOW_HELP),
) -> None:
    """Render every shot (cached by content) and cut film.mp4, with clips/, plan.json and run.json."""
    from storyforge import api
    from storyforge.console import done, err, say, seam_summary, show_note, show_warning, show_warnings
    from storyforge.executors.ranks import is_writer

    shots = [name.strip() for value in only or () for name in value.split(",") if name.strip()] or None
    options: dict[str, Any] | None = None
    if ray_listen is not None:
        if executor is not ExecutorChoice.ray:
            raise typer.BadParameter("opens the cluster of --executor ray; add --executor ray, or leave it out",
                                     param_hint="'--ray-listen'")
        options = {"listen": ray_listen}
    repeats: list[tuple[Path, Path]] = []
    stories = api.story_files(files, repeats)
    for kept, again in repeats:
        show_note(f"{again} is {kept} again; it is rendered once")
    if len(stories) > 1 or files[0].is_dir():
        with _allowing(allow_path):
            if keyframes_only:  # keyframes come film by film: each film's edit model is freed before the next
                for story in stories:
                    report = api.render(api.plan(story, {"model": model}), out=out_dir, only=shots,
                                        use_cache=not no_cache, keyframes_only=True, download=download)
                    _keyframes_done(report, story)
            else:
                _render_films(stories, out_dir, backend.value, model, shots, no_cache, executor.value, options,
                              download)
        return
    file = stories[0]
    with _allowing(allow_path):
        result = api.plan(file, {"model": model})
    if not is_writer():  # a torchrun rank other than 0 renders in step with rank 0, which does all the talking
        api.render(result, out=out_dir, backend=backend.value, only=shots, use_cache=not no_cache,
                   executor=executor.value, executor_options=options, keyframes_only=keyframes_only,
                   download=download)
        return
    show_warnings(result)
    with _RenderProgress(err) as progress:
        report = api.render(result, out=out_dir, backend=backend.value, only=shots, use_cache=not no_cache,
                            progress=progress, executor=executor.value, executor_options=options,
                            keyframes_only=keyframes_only, download=download)
    for notice in report.notices:
        show_note(notice)
    for warning in report.warnings:
        show_warning(warning)
    if keyframes_only:
        _keyframes_done(report)
        return
    counts = f"{report.rendered} rendered, {report.cached} cached"
    if any(len(job.takes) > 1 for job in report.jobs):
        counts = f"{report.rendered} take{'s' if report.rendered != 1 else ''} rendered, {report.cached} cached"
    if report.film is None:
        done("{}; clips in {}", counts, report.out / "clips")
    else:
        cut = f"cut in {report.stitch_seconds:.1f}s" if report.stitch_seconds else "cut unchanged"
        done("{} — {} frames ({:.2f}s), {}, {}, backend {}", report.film, report.total_frames,
             report.total_frames / result.fps, counts, cut, report.backend)
    seams = seam_summary(report.seams, report.chains, result.fps)
    if seams:
        say("seams: {}", seams)
    if report.review is not None:
        say("  review the takes: {}", report.review)


def _keyframes_done(report: RunReport, film: Path | None = None) -> None:
    """The line a `render --keyframes-only` ends with: how many keyframes, made or cached, and where."""
    from storyforge.console import done, show_note

    if film is not None:
        for notice in report.notices:
            show_note(f"{film}: {notice}")
    made = sum(1 for k in report.keyframes if k.status == "rendered")
    count = len(report.keyframes)
    done("{}{} keyframes ({} rendered, {} cached) in {}; no video was rendered", f"{film}: " if film else "", count,
         made, count - made, report.out / "keyframes")


def _render_films(stories: list[Path], out_dir: Path | None, backend: str, model: str | None,
                  shots: list[str] | None, no_cache: bool, executor: str, options: dict[str, Any] | None,
                  download: bool = False) -> None:
    """`render` of several stories: every plan first (a story with a mistake stops all before any render), then
    one render of them all, a line per film, and exit 1 when any film failed."""
    from storyforge import api
    from storyforge.console import done, err, show_error, show_note, show_warning, show_warnings
    from storyforge.errors import RenderError, StoryError

    plans, problems = [], []
    for story in stories:
        try:
            plans.append(api.plan(story, {"model": model}))
        except StoryError as error:
            problems.extend(error.problems)
    if problems:
        raise StoryError(problems)
    for plan in plans:
        show_warnings(plan)
    results = api.render_films(plans, out=out_dir, backend=backend, only=shots, use_cache=not no_cache,
                               progress=lambda plan: _FilmProgress(err, plan.story.stem), executor=executor,
                               executor_options=options, download=download)
    failed = 0
    for plan, (report, error) in zip(plans, results, strict=True):
        if report is None:
            failed += 1
            lines = getattr(error, "lines", ()) or (str(error),)
            show_error(RenderError.several([f"{plan.story}: {line}" for line in lines]))
            continue
        for notice in report.notices:
            show_note(f"{plan.story.stem}: {notice}")
        for warning in report.warnings:
            show_warning(f"{plan.story.stem}: {warning}")
        counts = f"{report.rendered} rendered, {report.cached} cached"
        done("{} — {}, backend {}", report.film or report.out / "clips", counts, report.backend)
    if failed:
        raise typer.Exit(EXIT_USER)


class _FilmProgress:
    """One film's lines among several rendering together: `rendered lake: dawn/glide in 1.2s`."""

    def __init__(self, console: Console, name: str):
        self.console, self.name = console, name

    def job_started(self, index: int, count: int, job: Job) -> None:
        pass

    def step(self, step: int, total: int) -> None:
        pass

    def job_finished(self, job: Job, status: str, seconds: float) -> None:
        from storyforge.console import tell

        took = f" in {seconds:.1f}s" if status == "rendered" else ""
        tell("{:>8} {}: {}{}", status, self.name, job.id, took)


class _RenderProgress:
    """The render's progress on stderr: a bar for the film (jobs, ETA) and one for the job's steps.

    Without a terminal (CI logs, pipes) it prints one line per finished job instead.
    """

    def __init__(self, console: Console):
        self.console = console
        self.bars: Any = _NoBars()  # without a terminal rich disables the bars: then rich.progress is not imported
        if console.is_terminal:
            from rich import progress as rp

            self.bars = rp.Progress(rp.TextColumn("{task.description}", markup=False), rp.BarColumn(),
                                    rp.MofNCompleteColumn(), rp.TimeElapsedColumn(), rp.TimeRemainingColumn(),
                                    console=console, transient=True)
        self.film: TaskID | None = None
        self.job: TaskID | None = None

    def __enter__(self) -> _RenderProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def job_started(self, index: int, count: int, job: Job) -> None:
        if self.film is None:
            self.film = self.bars.add_task("film", total=count)
        if self.job is not None:
            self.bars.remove_task(self.job)
        from storyforge.console import safe

        take = f" take {job.take}" if job.takes > 1 else ""
        self.job = self.bars.add_task(f"job {index}/{count} {safe(job.id)}{take}", total=None)

    def step(self, step: int, total: int) -> None:
        if self.job is not None:
            self.bars.update(self.job, completed=step, total=total)

    def keyframe_finished(self, job: Job, status: str, seconds: float) -> None:
        from storyforge.console import tell

        tell("{:>8} keyframe {}{}", status, job.id, f" in {seconds:.1f}s" if status == "rendered" else "")

    def notice(self, message: str) -> None:
        """Something the user should know now, while the render runs (e.g. it waits for another render)."""
        from storyforge.console import show_note

        show_note(message)

    def job_finished(self, job: Job, status: str, seconds: float) -> None:
        if self.film is not None:
            self.bars.advance(self.film)
        from storyforge.console import tell

        take = f" take {job.take}" if job.takes > 1 else ""
        tell("{:>8} {}{}{}", status, job.id, take, f" in {seconds:.1f}s" if status == "rendered" else "")


@app.command()
def review(
    file: Path = typer.Argument(..., metavar="FILE", help="The story file."),
    out_dir: Path | None = typer.Option(None, "--out", metavar="DIR",
                                        help="The render's output folder (default: renders/<story>/)."),
    open_page: bool | None = typer.Option(None, "--open/--no-open",
                                          help="Open the page in a browser (default: when a display is there)."),
    allow_path: list[Path] | None = typer.Option(None, "--allow-path", metavar="DIR", help=_ALLOW_HELP),
) -> None:
    """Rebuild review.html for the last render: every take of every shot, to compare and pick from."""
    import os

    from storyforge import api
    from storyforge.console import done
    from storyforge.errors import display_path

    with _allowing(allow_path):
        report = api.review(file, out=out_dir)
    done("{} ({:,.0f} kB with posters, {} new, {:.2f}s)", display_path(report.page), report.bytes / 1024,
         report.posters, report.seconds)
    display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in (
        "darwin", "win32")
    if open_page if open_page is not None else display:
        import webbrowser

        webbrowser.open(report.page.resolve().as_uri())


@app.command(cls=StoryCommand)
def studio(
    file: Path = typer.Argument(..., metavar="FILE", help="The story file."),
    out_dir: Path | None = typer.Option(None, "--out", metavar="DIR",
                                        help="The render's output folder (default: renders/<story>/)."),
    port: int | None = typer.Option(None, "--port", metavar="N", min=0, max=65535,
                                    help="The port to listen on (default: the first free one from 8765; 0: any)."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDR",
                             help="The address to listen on; anything but 127.0.0.1 lets other machines ask, so "
                                  "prefer `ssh -L 8765:127.0.0.1:8765 host` for remote use."),
    open_page: bool | None = typer.Option(None, "--open/--no-open",
                                          help="Open the page in a browser (default: when a display is there)."),
    backend: BackendChoice | None = typer.Option(None, "--backend",
                                                 help="How to render takes (default: the last render's, else auto)."),
    allow_path: list[Path] | None = typer.Option(None, "--allow-path", metavar="DIR", help=_ALLOW_HELP),
) -> None:
    """A local web app over the story: compare takes, pick, reject, note, ask for another take, cut again."""
    import os

    from storyforge import console
    from storyforge.console import show_warning
    from storyforge.studio.server import serve

    if host not in ("127.0.0.1", "localhost", "::1"):
        show_warning(f"--host {host}: the studio answers other machines there (token required); for remote use "
                     "prefer `ssh -L 8765:127.0.0.1:8765 <this machine>` and the default address")
    display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in (
        "darwin", "win32")

    def say(url: str) -> None:
        console.raw(f"storyforge studio: {console.safe(url)}\n")  # the first line with http:// (DESIGN 9)
        console.say("  press Ctrl-C to stop; the token in the address is this session's key: share it with no one")

    def ready(url: str) -> None:
        if open_page if open_page is not None else display:
            import webbrowser

            webbrowser.open(url)

    with _allowing(allow_path):
        serve(file, out=out_dir, host=host, port=port, backend=backend.value if backend else None, say=say,
              ready=ready, warn=show_warning)


class _NoBars:
    """The part of rich's Progress that _RenderProgress uses, showing nothing (as a disabled Progress does)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def add_task(self, description: str, total: float | None = None) -> int:
        return 0

    def remove_task(self, task: int) -> None: ...

    def update(self, task: int, **fields: Any) -> None: ...

    def advance(self, task: int) -> None: ...


@app.command("import", cls=StoryCommand)
def import_(
    script: Path = typer.Argument(..., metavar="SCRIPT", help="A Fountain (.fountain) or Final Draft (.fdx) script."),
    output: Path | None = typer.Option(None, "-o", "--output", metavar="FILE",
                                       help="The story file to write (default: SCRIPT's name with .yaml)."),
    update: bool = typer.Option(False, "--update",
                                help="Re-import into the story made before: new scenes and shots appear, your edits "
                                     "stay (the record of the last import is FILE.import.json)."),
    llm: str | None = typer.Option(None, "--llm", metavar="MODEL",
                                   help="Break long action paragraphs into shots with camera notes, with this local "
                                        "instruct model (hub id or folder), as enhance does."),
) -> None:
    """Turn a screenplay into a story file: scenes, locations, characters, shots, transitions and dialogue."""
    from storyforge import api
    from storyforge.console import counted, done, err, say, show_error, show_note, show_warning
    from storyforge.errors import StoryError, display_path

    if llm is None:
        report = api.import_script(script, output, update=update)
    else:
        from rich import progress as rp

        bars = rp.Progress(rp.TextColumn("breaking paragraphs into shots", markup=False), rp.BarColumn(),
                           rp.MofNCompleteColumn(),
                           rp.TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)
        task = bars.add_task("llm", total=None)
        with bars:
            report = api.import_script(script, output, update=update, llm=llm,
                                       on_progress=lambda done, total: bars.update(task, completed=done, total=total))
    if update and not report.updated:
        show_note(f"{display_path(report.story)} did not exist: imported afresh (--update merges from the next "
                  "import on)")
    for warning in report.warnings:
        show_warning(warning)
    for line in report.added:
        show_note(f"new: {line}")
    for line in report.removed:
        show_note(f"removed: {line}")
    for line in report.kept:
        show_note(f"kept: {line}")
    for line in report.conflicts:
        show_warning(f"{display_path(report.story)}: {line}")
    if report.left_out:
        show_note("not imported (never prompts): " + ", ".join(f"{count} {kind}" for kind, count
                                                                 in sorted(report.left_out.items())))
    if report.placeholders:
        show_warning(f"{display_path(report.story)}: fill in the description of "
                     f"{counted(len(report.placeholders), 'character')}: {', '.join(report.placeholders)} "
                     "(each says TODO; prompts use them)")
    what = "updated" if report.updated else "wrote"
    done("{} {} from {} ({}) in {:.2f}s — {}, {}, {}, {}", what, display_path(report.story), report.script,
         report.format, report.seconds, counted(report.scenes, "scene"), counted(report.shots, "shot"),
         counted(report.characters, "character"), counted(report.locations, "location"))
    if report.backup is not None:
        say("  the story as it was: {}", display_path(report.backup))
    if report.problems:
        show_error(StoryError(report.problems))
        show_error(StoryforgeError(f"{display_path(report.story)} was written but does not plan yet; fix the lines "
                                   "above"))
        raise typer.Exit(EXIT_USER)
    say("  next: storyforge plan {}", display_path(report.story))


@app.command(cls=StoryCommand)
def schema() -> None:
    """Print the JSON Schema of the story format."""
    from storyforge import api
    from storyforge.console import raw

    raw(api.schema_text())


@app.command(cls=StoryCommand)
def export(
    file: Path = typer.Argument(..., metavar="FILE", help="The story file."),
    format: str = typer.Option("otio", "--format", help="Export format: otio (OpenTimelineIO)."),
    output: Path | None = typer.Option(None, "-o", "--output", metavar="FILE",
                                       help="File to write (default: film.otio in the render folder when it "
                                            "holds this plan's clips, else <story>.otio beside the story)."),
    render_dir: Path | None = typer.Option(None, "--out", metavar="RENDER_DIR",
                                           help="The render's output folder (default: renders/<story>/)."),
    allow_path: list[Path] | None = typer.Option(None, "--allow-path", metavar="DIR", help=_ALLOW_HELP),
) -> None:
    """Export the timeline for an editor: the rendered cut when there is one, else an animatic of the plan."""
    from storyforge import api
    from storyforge.console import done
    from storyforge.export_otio import describe

    if format not in api.EXPORT_FORMATS:
        raise typer.BadParameter(f"{format!r}; use one of: {', '.join(api.EXPORT_FORMATS)}", param_hint="'--format'")
    with _allowing(allow_path):
        written = api.export(file, format=format, output=output, render_dir=render_dir)
    done("wrote {}: {}", written, describe(written))


def main() -> None:
    """Entry point: run the app and turn every failure into one message and an exit code."""
    import atexit
    import gc
    import os

    # Pydantic looks for plugins (observers of validation) the first time a model is built, by reading the entry
    # points of every installed distribution: a twentieth of a `plan` where torch and its kin are installed, for
    # plugins that nothing of storyforge's uses. A value the user set (a list of plugins to skip, or "") stands.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # At exit the collector's last pass walks every object made (a twentieth of a cold `plan`); the process ends
    # and files are closed where they are written, so the objects are frozen out of it instead.
    atexit.register(gc.freeze)
    # What the imports made lives as long as the process: out of the collector's passes with it, whose full
    # passes would otherwise walk it again and again while a story's objects pile up (a tenth of a `plan`)
    gc.freeze()
    try:
        code = app(standalone_mode=False, prog_name="storyforge")  # not "python -m storyforge" in help
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into Exit(130) before it reaches us
            raise KeyboardInterrupt
    except StoryforgeError as error:
        from storyforge.console import show_error

        show_error(error)
        sys.exit(EXIT_USER)
    except OSError as error:  # a full disk, a read-only folder met where no message was prepared: still the user's
        from storyforge.console import show_error

        show_error(StoryforgeError(f"{error.strerror or error}: {error.filename or ''}".rstrip(": ")
                                   + "; check the folder's space and permissions"))
        sys.exit(EXIT_USER)
    except KeyboardInterrupt:
        from storyforge.console import show_interrupted

        show_interrupted()
        sys.exit(EXIT_INTERRUPTED)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:  # click turns Ctrl-C into Abort
        from storyforge.console import show_interrupted

        show_interrupted()
        sys.exit(EXIT_INTERRUPTED)
    except _click_usage_errors() as error:
        from storyforge.console import show_usage_error

        show_usage_error(error)
        sys.exit(EXIT_USAGE)
    except Exception:  # noqa: BLE001 - the last line of defence: a short report instead of a traceback
        from storyforge.console import show_bug

        show_bug(traceback.format_exc(limit=-3))
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
