"""`python -m storyforge`: the same command line as the `storyforge` script."""

from storyforge.launch import main

main()
