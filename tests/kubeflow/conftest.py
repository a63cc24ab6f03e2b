"""The emulated KFP installs the Kubeflow tests run packages on (kfp_emulator/cluster.py), over
the test process's SeaweedFS."""

from __future__ import annotations

import os

import pytest

from tests.helpers import kfp_toy
from tests.helpers.seaweedfs import unique
from tests.kubeflow import kfp_emulator


@pytest.fixture
def make_cluster(seaweedfs, tmp_path):
    """cluster(kfp_version, **Cluster keywords): a KFP install of that release over the
    process's SeaweedFS, its pods under this test's tmp_path."""

    made = []

    def make(kfp_version: str = "2.15.0", **kwargs) -> kfp_emulator.Cluster:
        workdir = str(tmp_path / unique(f"cluster-{kfp_version}"))
        made.append(kfp_emulator.Cluster(seaweedfs, kfp_version, workdir=workdir, **kwargs))
        return made[-1]

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture
def run_on(make_cluster, tmp_path):
    """run_on(package, kfp_version, env, metadata, root, cluster, namespace): a runner of the
    package on an emulated install (standalone, the kubeflow namespace, by default)."""

    def make(
        package,
        kfp_version="2.15.0",
        env=None,
        metadata=False,
        root=kfp_toy.ROOT,
        cluster=None,
        namespace=None,
    ):
        store = None
        if metadata:
            folder = tmp_path / unique("metadata")
            os.makedirs(folder)
            store = str(folder / "metadata.sqlite")
        return kfp_emulator.LocalSpecRunner(
            package,
            root=root,
            cluster=cluster or make_cluster(kfp_version),
            namespace=namespace,
            env=env or {},
            metadata=store,
        )

    return make
