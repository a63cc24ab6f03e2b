"""Writes docs/reference/cli.md from the command line's own parser (imgtfx/arguments.py), so the
reference cannot drift from the flags: `make docs` rewrites the page and a test
(tests/test_docs.py) fails when the committed page is not what this writes.

  python docs/cli_reference.py [--check]
"""

from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(REPO, "docs", "reference", "cli.md")
WIDTH = "100"  # argparse wraps usage lines to the terminal: a fixed width, one page everywhere


def markdown() -> str:
    os.environ["COLUMNS"] = WIDTH
    sys.path.insert(0, REPO)
    from imgtfx.arguments import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {choice.dest: choice.help for choice in commands._choices_actions}
    lines = [
        "# Command line",
        "",
        "Every command and option of `imgtfx`, generated from its own parser "
        "(`docs/cli_reference.py`; a test fails when this page is not current). "
        "`imgtfx COMMAND --help` prints the same; a default shown is what applies when the "
        "option is left out.",
        "",
    ]
    for name, command in commands.choices.items():
        formatter = command._get_formatter()
        lines += [f"## imgtfx {name}", "", f"{summaries[name][0].upper()}{summaries[name][1:]}."]
        usage = command.format_usage().strip().removeprefix("usage: ").splitlines()
        usage = [usage[0], *(line.removeprefix(" " * len("usage: ")) for line in usage[1:])]
        lines += ["", "```", *usage, "```", ""]
        lines += ["| option | what it does |", "| --- | --- |"]
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if action.option_strings:
                flag = ", ".join(action.option_strings)
                if action.nargs != 0:
                    metavar = formatter._get_default_metavar_for_optional(action)
                    flag += " " + formatter._format_args(action, metavar)
            else:
                flag = formatter._format_args(action, action.dest.upper())
            text = formatter._expand_help(action) if action.help else ""
            required = " **Required.**" if action.required and action.option_strings else ""
            lines.append(f"| `{flag}` | {_cell(text)}{required} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text in a Markdown table cell: no line breaks, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def main(argv: list[str]) -> int:
    page = markdown()
    if "--check" in argv:
        with open(PAGE, encoding="utf-8") as f:
            current = f.read() == page
        print(f"{PAGE} is {'current' if current else 'NOT current: run make docs'}")
        return 0 if current else 1
    with open(PAGE, "w", encoding="utf-8") as f:
        f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
