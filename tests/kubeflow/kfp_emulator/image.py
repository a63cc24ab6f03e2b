"""The container image's configuration, read from kubeflow/Dockerfile as the build would record
it: its USER, its ENV and its WORKDIR. An emulated pod runs as that user with that environment
(no image is built here: no Docker engine), so a step that needs root, or a path the image does
not let its user write, fails under the emulator as it would in the image."""

from __future__ import annotations

import dataclasses
import os
import shlex

from imgtfx import kubeflow

DOCKERFILE = os.path.join(os.path.dirname(os.path.abspath(kubeflow.__file__)), "Dockerfile")


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    user: int | None  # numeric uid; None: root (no USER)
    group: int | None
    env: dict[str, str]
    workdir: str

    @property
    def home(self) -> str | None:
        return self.env.get("HOME")


def _instructions(text: str):
    """(instruction, arguments) of each line of a Dockerfile, continuations joined."""
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        instruction, _, arguments = logical.partition(" ")
        yield instruction.upper(), arguments.strip()
        logical = ""


def read(path: str = DOCKERFILE) -> ImageConfig:
    """The final stage's USER (numeric, as `uid[:gid]`), ENV (KEY=VALUE forms) and WORKDIR.

    Raises:
      ValueError: a USER given by name, which no emulation (and no runAsNonRoot check) can
        resolve.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    user = group = None
    env: dict[str, str] = {}
    workdir = "/"
    for instruction, arguments in _instructions(text):
        if instruction == "FROM":
            user = group = None
            env, workdir = {}, "/"
        elif instruction == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                env[key] = value
        elif instruction == "WORKDIR":
            workdir = arguments
        elif instruction == "USER":
            uid, _, gid = arguments.partition(":")
            if not uid.isdigit() or (gid and not gid.isdigit()):
                raise ValueError(f"USER {arguments}: give it as numbers, uid[:gid].")
            user, group = int(uid), int(gid) if gid else 0
    return ImageConfig(user, group, env, workdir)
