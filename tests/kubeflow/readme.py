"""The commands kubeflow/README.md gives, as a user would copy them: each section's `imgtfx`
command lines (continuations joined), split as the shell splits them, with the README's
placeholders replaced by the test's values. The tests run those, not copies of them."""

from __future__ import annotations

import os
import re
import shlex

from tests.kubeflow.packages import kfp_requests

README = os.path.join(os.path.dirname(__file__), "..", "..", "kubeflow", "README.md")
IMGTFX = ".venv/bin/imgtfx"


def section(heading: str) -> str:
    """The text under the heading `heading` (any level), up to the next heading of its level
    or above."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.MULTILINE)
    if not match:
        raise KeyError(f"kubeflow/README.md has no section {heading!r}")
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def commands(heading: str, program: str = IMGTFX, replace: dict[str, str] | None = None):
    """The `program` command lines of the section's bash blocks, each as argv without the
    program, after replacing each key of `replace` (a placeholder) by its value."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", section(heading), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            for placeholder, value in (replace or {}).items():
                line = line.replace(placeholder, value)
            if line.startswith(program + " "):
                found.append(shlex.split(line)[1:])
    if not found:
        raise KeyError(f"kubeflow/README.md's {heading!r} gives no {program} command")
    return found


def submitted(argv: list[str], monkeypatch) -> dict:
    """What `imgtfx submit` sends for `argv` (packages.kfp_requests): the body of its POST
    .../runs."""
    code, sent = kfp_requests(argv, monkeypatch)
    if code != 0:
        raise AssertionError(f"imgtfx {shlex.join(argv)} exited {code}")
    return next(body for method, url, body in sent if method == "POST" and url.endswith("/runs"))
