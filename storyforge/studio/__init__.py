"""The studio: a local web app over one story and its output folder, to compare takes, pick, re-roll and cut."""
