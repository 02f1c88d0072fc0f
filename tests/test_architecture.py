"""Planning stays light: validate and plan never import torch, diffusers, transformers or moviepy."""

from __future__ import annotations

import subprocess
import sys

from conftest import EXAMPLES, ROOT

HEAVY = ("torch", "diffusers", "transformers", "moviepy")


def test_validate_and_plan_import_nothing_heavy() -> None:
    examples = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    code = (
        "import sys\n"
        "from storyforge import cli\n"
        "from storyforge import api\n"
        f"for path in {examples!r}:\n"
        "    api.validate(path)\n"
        "    api.plan(path).dumps()\n"
        "import storyforge.stitch, storyforge.console\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_cli_plan_in_a_subprocess_imports_nothing_heavy() -> None:
    example = EXAMPLES / "swan-lake.yaml"
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['storyforge', 'plan', {str(example)!r}, '--json']\n"
        "try:\n"
        "    runpy.run_module('storyforge', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "sys.stderr.write('HEAVY:' + ','.join(heavy) + '\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "HEAVY:\n" in result.stderr, result.stderr[-2000:]


def test_import_linter_contract() -> None:
    result = subprocess.run(["lint-imports"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
