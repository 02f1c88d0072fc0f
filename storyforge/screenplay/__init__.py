"""Screenplays to story files: Fountain and Final Draft read into one script model, then turned into a story."""
