"""Prompt enhancement: sandboxed templates, optional LLM expansion, and the lock file."""
