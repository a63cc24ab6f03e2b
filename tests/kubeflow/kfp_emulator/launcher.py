"""The launcher's and the driver's rules a task's parameters and artifacts go through, per
release (`kfp`, a version tuple), each read from kubeflow/pipelines `backend/src/v2/` at the
tag cited beside it. runner.py applies them in the order a task meets them; which bucket a URI
opens with which keys is cluster.py's (open_bucket).
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Mapping
from typing import Any

from tests.kubeflow.kfp_emulator.spec import TaskFailed


def prefixed_bucket(root: str) -> str:
    """objectstore/config.go PrefixedBucket (2.2.0 :80, 2.17.0): scheme + path.Join(bucket,
    prefix), no trailing slash."""
    scheme, _, rest = root.partition("://")
    return f"{scheme}://" + "/".join(part for part in rest.split("/") if part)


def upload_key(name: str, uri: str, root: str, local: str | None) -> str | None:
    """The store key output `name` is uploaded to, or None where the launcher skips it.

    launcher_v2.go uploadOutputArtifacts (2.2.0 :434-450, 2.17.0 :811-830): a URI with no local
    mirror (localPathForURI: not gs://, minio://, s3://) is a warning and skipped; otherwise
    KeyFromURI (objectstore/config.go 2.2.0 :84-95) needs the root's PrefixedBucket as a plain
    string prefix and a non-empty key."""
    if local is None:
        return None
    prefixed = prefixed_bucket(root)
    if not uri.startswith(prefixed):
        raise TaskFailed(
            f'failed to upload output artifact "{name}": URI "{uri}" does not have expected '
            f'bucket prefix "{prefixed}"'
        )
    key = uri[len(prefixed) :].lstrip("/")
    if not key:
        raise TaskFailed(
            f'failed to upload output artifact "{name}": URI "{uri}" has empty key given '
            f'prefixed bucket "{prefixed}"'
        )
    return key


def merge_runtime_artifact(provisioned: dict, reported: dict) -> None:
    """launcher_v2.go mergeRuntimeArtifacts (2.2.0 :667-681, 2.17.0 :1188-1206): the reported
    URI if not empty; the reported metadata's keys set over the provisioned ones, which stay."""
    if reported.get("uri"):
        provisioned["uri"] = reported["uri"]
    if reported.get("metadata") is not None:
        provisioned.setdefault("metadata", {}).update(reported["metadata"])


def secret_env(
    platform: Mapping, task: str, executor_label: str, secrets: Mapping, kfp: tuple[int, ...]
) -> dict[str, str]:
    """The pod's env from the platform spec's secretAsEnv, as the driver's extendPodSpecPatch
    adds it (driver/driver.go 2.2.0 :554, 2.5.0 :893; driver/k8s.go 2.15.0 :333: an env var
    per keyToEnv, valueFrom secretKeyRef, its Optional the entry's). A secret or key the
    namespace lacks keeps the pod from starting (Kubernetes' CreateContainerConfigError),
    unless optional, which Kubernetes' SecretKeySelector applies to both."""
    config = platform.get("deploymentSpec", {}).get("executors", {}).get(executor_label)
    env = {}
    for entry in (config or {}).get("secretAsEnv", []):
        known = {"secretName", "keyToEnv"}  # kubernetes_executor_config.proto at 2.2.0
        if kfp >= (2, 5, 0):
            known.add("secretNameParameter")  # PR #11621
        if kfp >= (2, 15, 0):
            known.add("optional")  # PR #12216
        unknown = sorted(set(entry) - known)
        # Strict: the 2.2 and 2.3 drivers (cmd/driver/main.go jsonpb, 2.2.0 :138), and from 2.14
        # the argo compiler (argocompiler/container.go protojson.Unmarshal: 2.14.3 :283-287,
        # 2.15.0 :307, 2.16.1 :318, 2.17.0 :324). The 2.4 to 2.13 compilers and drivers drop
        # what they do not know (jsonpb / util.UnmarshalString; kubeflow/pipelines#11935,
        # #12495).
        strict = kfp < (2, 4, 0) or kfp >= (2, 14, 0)
        if unknown and strict:
            raise TaskFailed(
                f"task {task}: failed to unmarshal kubernetes config: unknown field "
                f'"{unknown[0]}" in kfp_kubernetes.SecretAsEnv'
            )
        entry = {k: v for k, v in entry.items() if k in known}
        parameter = entry.get("secretNameParameter", {}).get("runtimeValue", {})
        if "constant" in parameter:
            entry["secretName"] = parameter["constant"]
        name, optional = entry.get("secretName"), bool(entry.get("optional"))
        if name not in secrets and not optional:
            raise TaskFailed(f'task {task}: CreateContainerConfigError: secret "{name}" not found')
        for pair in entry.get("keyToEnv", []):
            value = secrets.get(name, {}).get(pair["secretKey"])
            if value is None and not optional:
                raise TaskFailed(
                    f"task {task}: CreateContainerConfigError: couldn't find key "
                    f"{pair['secretKey']} in Secret {name}"
                )
            if value is not None:
                env[pair["envVar"]] = value
    return env


NUMBERS = ("NUMBER_DOUBLE", "NUMBER_INTEGER")


def checked_parameters(task: str, component: dict, values: dict[str, Any]) -> dict[str, Any]:
    """A container task's input parameters as the driver validates and converts them against
    the component's inputDefinitions (driver/driver.go validateNonRoot, 2.2.0 :956-1032;
    driver/resolve.go 2.17.0 :185-240): a missing non-optional one with no default fails; a
    missing optional one is not passed; a STRING parameter takes any value as its text
    (metadata.PbValueToText); any other type refuses a null or a value of another kind."""
    checked = dict(values)
    for name, spec in component.get("inputDefinitions", {}).get("parameters", {}).items():
        kind = spec.get("parameterType", "STRING")
        if name not in values:
            if spec.get("isOptional"):
                continue
            if "defaultValue" not in spec:
                raise TaskFailed(
                    f"task {task}: neither value nor default value provided for non-optional "
                    f'parameter "{name}"'
                )
            # Falls through with no value: "" for a STRING, an unknown-kind error otherwise.
            if kind != "STRING":
                raise TaskFailed(f"task {task}: parameter {name} has unknown protobuf.Value type")
            checked[name] = ""
            continue
        value = values[name]
        if kind == "STRING":
            checked[name] = value if isinstance(value, str) else _text(value)
            continue
        if value is None:
            raise TaskFailed(f'task {task}: got null for input parameter "{name}"')
        actual = _kind(value)
        allowed = {"string": (), "number": NUMBERS, "bool": ("BOOLEAN",)}
        allowed.update({"list": ("LIST",), "struct": ("STRUCT",)})
        if kind not in allowed[actual]:
            raise TaskFailed(
                f'task {task}: input parameter "{name}" type mismatch: expect {kind}, got {actual}'
            )
    return checked


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "list"
    return "struct" if isinstance(value, dict) else "string"


def _text(value: Any) -> str:
    """metadata/converter.go PbValueToText (2.2.0 :15-45): a number as Go's FormatFloat 'f', -1
    (5 -> "5", 0.5 -> "0.5"), a bool as true/false, null as "". A list or struct is Go's
    encoding/json of the proto message there; here plain JSON (this package passes none)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format(decimal.Decimal(repr(float(value))).normalize(), "f")
    return json.dumps(value, separators=(",", ":"))


_PARAMETER = re.compile(r"\{\{\$\.inputs\.parameters\['(.+?)']}}")


def resolve_args(argv: list[str], executor_input: dict, kfp: tuple[int, ...], local) -> list[str]:
    """The command line the user container runs: from 2.17 the driver first resolves input
    parameter placeholders and IfPresent clauses in command and args, failing on a missing
    parameter and leaving any `$.outputs` argument to later (driver/util.go@2.17.0:180-288,
    driver.go@2.17.0:309-318); then the launcher replaces `{{$}}` everywhere and its other
    placeholders in all but the executable (compileCmdAndArgs, getPlaceholders: launcher_v2.go
    2.15.0 :819-930; artifacts' .uri and .path, parameters as text). `local` maps a URI to its
    pod path (LocalPathForURI), None when it has none."""
    parameters = executor_input.get("inputs", {}).get("parameterValues", {})
    if kfp >= (2, 17, 0):
        resolved = []
        for arg in argv:
            if "$.outputs" in arg:
                resolved.append(arg)
            elif arg.strip().startswith('{"IfPresent":'):
                clause = json.loads(arg)["IfPresent"]
                present = parameters.get(clause.get("InputName")) is not None
                values = clause.get("Then") if present else clause.get("Else")
                values = [] if values is None else [values] if isinstance(values, str) else values
                resolved.extend(_driver_parameters(v, parameters) for v in values)
            else:
                resolved.append(_driver_parameters(arg, parameters))
        argv = resolved
    placeholders = {}
    for name, value in executor_input.get("inputs", {}).get("artifacts", {}).items():
        if value.get("artifacts"):
            uri = value["artifacts"][0]["uri"]
            placeholders[f"{{{{$.inputs.artifacts['{name}'].uri}}}}"] = uri
            if local(uri) is not None:
                placeholders[f"{{{{$.inputs.artifacts['{name}'].path}}}}"] = local(uri)
    for name, value in executor_input.get("outputs", {}).get("artifacts", {}).items():
        if value.get("artifacts"):
            uri = value["artifacts"][0]["uri"]
            if local(uri) is None:
                raise TaskFailed(
                    f"failed to get placeholders: resolve output artifact {name!r}'s local path"
                )
            placeholders[f"{{{{$.outputs.artifacts['{name}'].uri}}}}"] = uri
            placeholders[f"{{{{$.outputs.artifacts['{name}'].path}}}}"] = local(uri)
    for name, value in parameters.items():
        placeholders[f"{{{{$.inputs.parameters['{name}']}}}}"] = (
            value if isinstance(value, str) else _text(value)
        )
    serialized = json.dumps(executor_input)
    compiled = [argv[0].replace("{{$}}", serialized)] if argv else []
    for arg in argv[1:]:
        arg = arg.replace("{{$}}", serialized)
        for placeholder, replacement in placeholders.items():
            arg = arg.replace(placeholder, replacement)
        compiled.append(arg)
    return compiled


def _driver_parameters(arg: str, parameters: dict) -> str:
    def one(match):
        name = match.group(1)
        if name not in parameters:
            raise TaskFailed(
                f"failed to resolve input parameters: input parameter {name!r} not found"
            )
        value = parameters[name]
        return value if isinstance(value, str) else _text(value)

    return _PARAMETER.sub(one, arg)
