"""The story format: models, loading with line numbers, checks, and the settings cascade."""
