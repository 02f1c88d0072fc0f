"""`python -m storyforge`: the same command line as the `storyforge` script."""

from storyforge.cli import main

main()
