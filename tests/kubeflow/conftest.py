"""The emulated KFP installs the Kubeflow tests run packages on (kfp_emulator/cluster.py), over
the test process's SeaweedFS."""

from __future__ import annotations

import pytest

from tests.conftest import unique
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
