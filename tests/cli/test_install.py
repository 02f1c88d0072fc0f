"""The install commands: README, CI and the constraints file agree, and the pins satisfy pyproject's ranges."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from storyforge import __version__

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_readme_and_ci_install_with_the_constraints() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = ('pip install torch==2.13.0 && pip install -c constraints.txt -e ".[all,dev,ray,browser]" '
                    '&& python -m pytest -q')
    assert test_command in readme and test_command in ci
    assert 'pip install -c constraints.txt -e ".[video]" && storyforge render' in readme
    assert not re.search(r"pip install -e", readme + ci)  # every install command uses the constraints


def test_pins_satisfy_every_declared_range() -> None:
    pins = _pins()
    assert pins["torch"] == "2.13.0" and "diffusers" in pins
    requirements = [Requirement(text) for text in metadata.requires("storyforge") or []]
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = [Requirement(text) for text in re.findall(r'^\s*"([A-Za-z][\w.-]*\s*[<>=!~][^"]*)"', pyproject, re.M)]
    for requirement in requirements + declared:
        name = requirement.name.lower().replace("_", "-")
        if name in pins and name != "storyforge":
            assert requirement.specifier.contains(pins[name], prereleases=True), (requirement, pins[name])


def test_the_suite_runs_on_the_pinned_diffusers() -> None:
    # the planner's arithmetic was verified on this diffusers; the render notes any other (see skyreels_df)
    assert metadata.version("diffusers") == _pins()["diffusers"]



if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")


# -- the extras, the README and the version ---------------------------------------------------------------------------

def _extras(names: list[str], table: dict[str, list[str]]) -> set[str]:
    """Every requirement of these extras, following storyforge[...] references."""
    found: set[str] = set()
    for name in names:
        for requirement in table[name]:
            inner = re.fullmatch(r"storyforge\[(.+)\]", requirement)
            found |= _extras(inner.group(1).split(","), table) if inner else {requirement}
    return found


def test_the_readme_test_command_installs_no_moviepy() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r'pip install (?:-c \S+ )?-e "\.\[([a-z,]+)\]"[^\n]*python -m pytest', readme)
    assert command is not None, "the README's test command"
    installed = _extras(command.group(1).split(","), project["optional-dependencies"])
    assert not any(re.match(r"moviepy\b", requirement) for requirement in installed)  # it caps Pillow
    assert {"pre-commit>=3.5", "jsonschema>=4.18"} <= installed
    assert project["optional-dependencies"]["bench"] == ["moviepy>=2.1"]


def test_release_tags_in_the_docs_name_this_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == __version__
    for path in (ROOT / "README.md", ROOT / "docs" / "cookbook" / "ci.md", ROOT / ".pre-commit-hooks.yaml",
                 ROOT / "examples" / "ci" / "storyforge.yml"):
        for tag in re.findall(r"\bv\d+\.\d+\.\d+\b", path.read_text(encoding="utf-8")):
            assert tag == f"v{version}", f"{path.name} names {tag}; this is version {version}"
    guide = (ROOT / "docs" / "cookbook" / "ci.md").read_text(encoding="utf-8")
    config = yaml.safe_load(re.search(r"# \.pre-commit-config\.yaml.*?\n(.*?)```", guide, re.S).group(1))
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert config["repos"][0]["hooks"][0]["id"] in {hook["id"] for hook in hooks}
    assert hooks[0]["additional_dependencies"] == ["av>=18"]
    assert "av>=18" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "video"]
