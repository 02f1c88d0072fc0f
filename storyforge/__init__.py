"""storyforge: declarative, YAML-driven story generation for SkyReels-V2 Diffusion-Forcing models."""

__version__ = "0.1.0"
FORMAT_VERSION = 1
