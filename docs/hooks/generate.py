"""MkDocs hook: the story format reference from the JSON Schema and the command reference from the CLI.

Pages hold a marker (`<!-- generated: story-format -->`, `<!-- generated: commands -->`) where the generated text
goes, so the reference can never drift from `storyforge schema` and `storyforge --help`.
"""

from __future__ import annotations

import json
import re
from typing import Any

MARKERS = {
    "<!-- generated: story-format -->": "story_format",
    "<!-- generated: commands -->": "commands",
}

# The order a reader meets the sections in a story file, then everything else.
_DEF_ORDER = ["RenderSettings", "Scene", "Shot", "TransitionSpec", "Character", "Location", "Keyframes", "Enhance"]


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace every marker on the page with its generated text."""
    for marker, name in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, GENERATORS[name]())
    return markdown


def _type_of(prop: dict[str, Any]) -> str:
    """A short, readable type for one schema property."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        kinds = [_type_of(option) for option in prop["anyOf"] if option.get("type") != "null"]
        return " or ".join(dict.fromkeys(kinds)) or "null"
    if "enum" in prop:
        return " \\| ".join(f"`{value}`" for value in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(prop.get('items', {}))}"
    if kind == "object" and "additionalProperties" in prop and isinstance(prop["additionalProperties"], dict):
        return f"mapping of name → {_type_of(prop['additionalProperties'])}"
    if isinstance(kind, list):
        return " or ".join(kind)
    return str(kind)


def _limits(prop: dict[str, Any]) -> str:
    """Bounds and patterns the schema states, in words."""
    found: list[str] = []
    options = prop.get("anyOf", [prop])
    for option in options:
        for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"),
                          ("minLength", "length ≥"), ("maxLength", "length ≤"), ("minItems", "items ≥"),
                          ("maxItems", "items ≤")):
            if key in option:
                found.append(f"{word} {option[key]}")
        if "pattern" in option and len(option["pattern"]) <= 60:  # longer ones are machine checks, said in words
            found.append(f"pattern `{option['pattern']}`")
    return "; ".join(dict.fromkeys(found))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(definition: dict[str, Any]) -> list[str]:
    required = set(definition.get("required", ()))
    lines = ["| key | type | default | what it is |", "|---|---|---|---|"]
    for name, prop in definition.get("properties", {}).items():
        default = prop.get("default")
        shown = "required" if name in required else ("—" if default is None else f"`{json.dumps(default)}`")
        about = prop.get("description", "")
        limits = _limits(prop)
        if limits:
            about = f"{about} ({limits})" if about else limits
        lines.append(f"| `{name}` | {_cell(_type_of(prop))} | {_cell(shown)} | {_cell(about)} |")
    return lines


def story_format() -> str:
    """Every key of the story format, section by section, from `storyforge schema`."""
    from storyforge import api

    schema = api.schema()
    defs = schema.get("$defs", {})
    out = ["### Film", "", "The top level of a story file.", "", *_table(schema), ""]
    for name in [*(d for d in _DEF_ORDER if d in defs), *sorted(d for d in defs if d not in _DEF_ORDER)]:
        definition = defs[name]
        out += [f"### {name}", ""]
        if definition.get("description"):
            out += [definition["description"], ""]
        if "properties" in definition:
            out += [*_table(definition), ""]
        else:
            out += [f"Type: {_type_of(definition)}", ""]
    return "\n".join(out)


def commands() -> str:
    """Every command's usage and options, from the CLI itself (click's own help text)."""
    import click
    import typer

    from storyforge.cli import app

    group = typer.main.get_command(app)
    context = click.Context(group, info_name="storyforge")
    out: list[str] = []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=name, parent=context)
        out += [f"### `storyforge {name}`", "", (command.help or "").strip().split("\n\n")[0], "",
                "```text", command.get_usage(sub).strip(), "```", ""]
        rows = []
        for param in command.get_params(sub):
            record = param.get_help_record(sub)
            if record is None:
                if isinstance(param, click.Argument):
                    rows.append((f"`{param.human_readable_name}`", getattr(param, "help", None) or ""))
                continue
            rows.append((f"`{re.sub(r' <[^>]*>$', '', record[0])}`", record[1]))
        if rows:
            out += ["| argument or option | what it does |", "|---|---|"]
            out += [f"| {_cell(left)} | {_cell(right)} |" for left, right in rows]
            out.append("")
    return "\n".join(out)


GENERATORS = {"story_format": story_format, "commands": commands}
