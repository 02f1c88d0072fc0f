"""The `storyforge` command's entry point: the command line, with Ctrl-C during its start-up ending quietly too."""

from __future__ import annotations


def main() -> None:
    """`storyforge ...`: storyforge.cli.main, once it is imported. Importing it takes a moment in which Python would
    answer Ctrl-C with a traceback (cli.main handles Ctrl-C only once it runs); here it is the same one line."""
    try:
        from storyforge import cli
    except KeyboardInterrupt:
        from storyforge.console import show_interrupted  # what cli.main says when Ctrl-C comes later
        from storyforge.errors import EXIT_INTERRUPTED

        show_interrupted()
        raise SystemExit(EXIT_INTERRUPTED) from None
    cli.main()
