"""The commands the docs give, as a user would copy them: a page section's command lines
(continuations joined), split as the shell splits them, with the page's placeholders replaced
by the test's values. The tests run those, not copies of them: the Kubeflow guide's for each
install, the Beam runners' lines of the buckets guide."""

from __future__ import annotations

import os
import re
import shlex

from tests.helpers.kfp_packages import kfp_requests

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs")
KUBEFLOW_GUIDE = os.path.join(DOCS, "guides", "kubeflow.md")
BUCKETS_GUIDE = os.path.join(DOCS, "guides", "buckets-and-beam.md")
IMGTFX = ".venv/bin/imgtfx"


def section(heading: str, page: str = KUBEFLOW_GUIDE) -> str:
    """The text under the heading `heading` (any level) of `page`, up to the next heading of
    its level or above."""
    with open(page, encoding="utf-8") as f:
        text = f.read()
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.MULTILINE)
    if not match:
        raise KeyError(f"{os.path.basename(page)} has no section {heading!r}")
    level = len(match.group(1))
    lines, fenced = [], False
    for line in text[match.end() :].splitlines(keepends=True):
        fenced ^= line.startswith("```")  # a shell comment in a block is no heading
        if not fenced and re.match(rf"#{{1,{level}}} ", line):
            break
        lines.append(line)
    return "".join(lines)


def commands(
    heading: str,
    program: str = IMGTFX,
    replace: dict[str, str] | None = None,
    page: str = KUBEFLOW_GUIDE,
):
    """The `program` command lines of the section's bash blocks, each as argv without the
    program, after replacing each key of `replace` (a placeholder) by its value."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", section(heading, page), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            for placeholder, value in (replace or {}).items():
                line = line.replace(placeholder, value)
            if line.startswith(program + " "):
                found.append(shlex.split(line)[1:])
    if not found:
        raise KeyError(f"{os.path.basename(page)}'s {heading!r} gives no {program} command")
    return found


def submitted(argv: list[str], monkeypatch) -> dict:
    """What `imgtfx submit` sends for `argv` (packages.kfp_requests): the body of its POST
    .../runs."""
    code, sent = kfp_requests(argv, monkeypatch)
    if code != 0:
        raise AssertionError(f"imgtfx {shlex.join(argv)} exited {code}")
    return next(body for method, url, body in sent if method == "POST" and url.endswith("/runs"))


def aws_s3(
    argv: list[str],
    cluster,
    keys: tuple[str, str],
    local: dict[str, str],
    forwarded: dict[str, str] | None = None,
) -> None:
    """Does what the README's `aws --endpoint-url URL s3 mb|cp [--recursive] SRC DST` line does,
    against the emulated install: URL's host found by its DNS (or, for a `kubectl
    port-forward` to localhost, the Service `forwarded` names for it) at URL's port, which the
    Service must have; signed with `keys`; the local names (`images/`, `train.csv`) are
    `local`'s. The store's refusal fails the test."""
    import urllib.parse

    from tests.kubeflow.kfp_emulator.store import s3_client

    if argv[:1] != ["--endpoint-url"] or argv[2] != "s3":
        raise ValueError(f"not an `aws --endpoint-url URL s3 ...` line: {argv}")
    url = urllib.parse.urlsplit(argv[1])
    netloc = (forwarded or {}).get(url.netloc, url.netloc)
    host, _, port = netloc.partition(":")
    address = cluster.resolve(host)
    if address is None:
        raise AssertionError(f"{argv[1]}: no such host {host} in this install")
    client = s3_client(f"http://{address}:{port}", keys)
    operation, *rest = argv[3:]
    recursive = "--recursive" in rest
    rest = [a for a in rest if a != "--recursive"]
    if operation == "mb":
        client.create_bucket(Bucket=rest[0][len("s3://") :])
        return
    source, target = rest
    bucket, _, key = target[len("s3://") :].partition("/")
    if not recursive:
        with open(local[source], "rb") as f:
            client.put_object(Bucket=bucket, Key=key, Body=f.read())
        return
    for folder, _, names in os.walk(local[source]):
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, local[source]).replace(os.sep, "/")
            with open(path, "rb") as f:
                client.put_object(
                    Bucket=bucket, Key=key.rstrip("/") + "/" + relative, Body=f.read()
                )
