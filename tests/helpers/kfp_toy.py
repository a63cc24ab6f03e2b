"""A package of one or two tasks for the emulator's rules (a `python -c` command in its pod):
what tests/kubeflow/test_emulator.py and test_install.py run, instead of a whole pipeline."""

from __future__ import annotations

ROOT = "minio://mlpipeline/v2/artifacts"
# The task's command: writes `text` into each output's pod mirror and reports, for output
# "out", the URI and metadata in REPORT (JSON), then exits with EXIT; writes what it sees of its
# pod (user, capabilities, environment, /etc/hosts, namespace) to /tmp/pod.json.
COMMAND = r"""
import json, os, sys
executor_input = json.loads(sys.argv[1])
report = json.loads(os.environ.get("REPORT", "{}"))
print("the task ran")
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
seen = {
    "uid": os.getuid(), "gid": os.getgid(), "env": dict(os.environ),
    "capabilities": int(status["CapEff"].strip(), 16), "no_new_privs": status["NoNewPrivs"].strip(),
    "hosts": open("/etc/hosts").read(),
    "namespace": open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read(),
    "home_writable": os.access(os.environ.get("HOME", "/"), os.W_OK),
}
json.dump(seen, open("/tmp/pod.json", "w"))
for key, value in executor_input["outputs"]["artifacts"].items():
    for artifact in value["artifacts"]:
        path = artifact["uri"].replace("minio://", "/minio/").replace("s3://", "/s3/")
        if key != "executor-logs" and path.startswith("/"):
            os.makedirs(path, exist_ok=True)
            open(os.path.join(path, "data.txt"), "w").write("written")
output = executor_input["outputs"]["outputFile"]
os.makedirs(os.path.dirname(output), exist_ok=True)
json.dump({"artifacts": {"out": {"artifacts": [report]}}} if report else {}, open(output, "w"))
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def toy_package(parameters=None, definitions=None, importer=None, platform=None) -> dict:
    """Task `a` (a container with output `out`), after importer task `imp` when `importer`
    (an ImporterSpec) is given, whose artifact is `a`'s input `data`."""
    artifact = {"artifactType": {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}}
    component = {
        "executorLabel": "exec-a",
        "outputDefinitions": {"artifacts": {"out": artifact}},
        "inputDefinitions": {"parameters": definitions or {}},
    }
    task = {
        "componentRef": {"name": "comp-a"},
        "taskInfo": {"name": "a"},
        "inputs": {"parameters": parameters or {}},
    }
    components = {"comp-a": component}
    executors = {
        "exec-a": {"container": {"image": "x", "command": ["python", "-c", COMMAND, "{{$}}"]}}
    }
    tasks = {"a": task}
    if importer:
        components["comp-imp"] = {
            "executorLabel": "exec-imp",
            "outputDefinitions": {"artifacts": {"artifact": artifact}},
        }
        executors["exec-imp"] = {"importer": importer}
        tasks["imp"] = {"componentRef": {"name": "comp-imp"}, "taskInfo": {"name": "imp"}}
        task["dependentTasks"] = ["imp"]
        task["inputs"]["artifacts"] = {
            "data": {"taskOutputArtifact": {"producerTask": "imp", "outputArtifactKey": "artifact"}}
        }
        component["inputDefinitions"]["artifacts"] = {"data": artifact}
    return {
        "pipelineSpec": {
            "schemaVersion": "2.1.0",
            "pipelineInfo": {"name": "p"},
            "components": components,
            "deploymentSpec": {"executors": executors},
            "root": {"dag": {"tasks": tasks}},
        },
        "runtimeConfig": {"parameterValues": {}},
        "platformSpec": platform or {},
        "launcher": "kfp",
    }


def task(run, name="a"):
    return run.pipeline["root"]["dag"]["tasks"][name]
