"""What Beam workers on other machines (Dataflow, Flink, Spark) need to run the data steps.

The data steps' DoFns are pickled by reference to this project's modules (imgtfx.components.*):
a worker that cannot import them fails on the first bundle. TFX stages only its own ephemeral
package, so for a runner whose workers are not this process the Beam arguments get, unless
the user chose how workers get code (--sdk_container_image, --setup_file, --extra_package,
--environment_config):
  - the pipeline's container image, when there is one (the image the Kubeflow tasks run), or
  - a pure-Python wheel of this project, staged with --extra_package; the workers' image
    must then bring TFX 1.16, TensorFlow and Beam 2.61 (the versions in uv.lock), as
    kubeflow/Dockerfile's image does.
A local run (the DirectRunner) gets Beam's SDK image named instead (pipeline/configs.py
BEAM_SDK_IMAGE): its workers never use it, and without it TFX leaves a 49 MB sdist of itself in
the temporary folder at every Beam step.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

# Beam runners whose workers run in other processes on other machines.
REMOTE_RUNNERS = ("DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner")
# Options by which a user says how workers get code; any of them and we add nothing.
CODE_OPTIONS = (
    "--sdk_container_image",
    "--worker_harness_container_image",
    "--setup_file",
    "--extra_package",
    "--extra_packages",
    "--environment_config",
)
PARTS = ("components", "pipeline", "trainer", "kubeflow")  # under imgtfx/, as in the wheel
WHEEL_NAME = "imgtfx"


def _runner(beam_args: list[str]) -> str | None:
    for i, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            return arg.split("=", 1)[1]
        if arg == "--runner" and i + 1 < len(beam_args):
            return beam_args[i + 1]
    return None


def worker_args(
    beam_args: list[str], image: str | None = None, staging_dir: str | None = None
) -> list[str]:
    """`beam_args` with how remote workers get this project's code (see the module)."""
    runner = (_runner(beam_args) or "").rsplit(".", 1)[-1]
    if not beam_args or any(a.startswith(CODE_OPTIONS) for a in beam_args):
        return list(beam_args)  # TFX adds nothing to no arguments either
    if runner not in REMOTE_RUNNERS:
        from imgtfx.pipeline.configs import BEAM_SDK_IMAGE

        return [*beam_args, f"--sdk_container_image={BEAM_SDK_IMAGE}"]
    if image:
        if runner == "DataflowRunner":
            return [*beam_args, f"--sdk_container_image={image}"]
        return [*beam_args, "--environment_type=DOCKER", f"--environment_config={image}"]
    wheel = build_wheel(staging_dir or tempfile.mkdtemp(prefix="imgtfx-staging-"))
    return [*beam_args, f"--extra_package={wheel}"]


def _version() -> str:
    from imgtfx.components.code_version import package_version

    version = package_version()
    return version if version != "unknown" else "0.0.0"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _sources(root: Path) -> dict[str, Path]:
    """{name in the wheel: source} of the `imgtfx` package's .py files: in a checkout its
    folder and the top-level parts beside it; installed, the package folder that holds them."""
    if (root / WHEEL_NAME).is_dir():  # a checkout
        folders = {WHEEL_NAME: root / WHEEL_NAME, **{f"{WHEEL_NAME}/{p}": root / p for p in PARTS}}
    else:  # installed: root is the imgtfx package itself
        folders = {WHEEL_NAME: root}
    found = {}
    for prefix, folder in folders.items():
        for source in sorted(folder.rglob("*.py")):
            found[f"{prefix}/{source.relative_to(folder).as_posix()}"] = source
    return found


def build_wheel(out_dir: str, source_root: str | Path | None = None) -> str:
    """Writes a pure-Python wheel of this project's one package, `imgtfx` (its .py files, no
    dependencies: the worker image has them) to `out_dir`; returns its path."""
    root = Path(source_root) if source_root else Path(__file__).resolve().parent.parent
    version = _version()
    dist_info = f"{WHEEL_NAME}-{version}.dist-info"
    path = os.path.join(out_dir, f"{WHEEL_NAME}-{version}-py3-none-any.whl")
    os.makedirs(out_dir, exist_ok=True)
    files = {name: source.read_bytes() for name, source in sorted(_sources(root).items())}
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {WHEEL_NAME}\nVersion: {version}\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: imgtfx\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [_record_line(name, data) for name, data in files.items()]
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            wheel.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path
