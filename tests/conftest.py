"""The suite's fixtures (its helpers are the tests.helpers package) and its order."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from tests.helpers.images import make_tree  # noqa: E402


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """KFP's object store (tests/helpers/seaweedfs.py), one per test process: each test keeps to its
    own buckets, prefixes and namespaces."""
    from tests.helpers.seaweedfs import SeaweedFS

    server = SeaweedFS(str(tmp_path_factory.mktemp("seaweedfs")))
    yield server
    server.close()


@pytest.fixture(scope="session")
def own_store(tmp_path_factory):
    """An S3-compatible store of the users' own (their data, or an s3:// root): a second
    SeaweedFS, its own admin and keys."""
    from tests.helpers.seaweedfs import SeaweedFS

    server = SeaweedFS(str(tmp_path_factory.mktemp("own-store")))
    yield server
    server.close()


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "images"
    make_tree(root)
    return str(root)


def pytest_collection_modifyitems(items):
    """Files with the most end-to-end (slow) tests first, each file's tests kept together and
    in order. `make test` hands whole files, in this order, to one worker per core
    (pytest-xdist: --dist loadfile --no-loadscope-reorder), each the next file as it runs
    out: the long runs start at once on both cores and the short files fill in after."""
    slow_in_file: dict[str, int] = {}
    for item in items:
        slow_in_file.setdefault(item.nodeid.split("::")[0], 0)
        if item.get_closest_marker("slow"):
            slow_in_file[item.nodeid.split("::")[0]] += 1
    order = {path: rank for rank, path in enumerate(slow_in_file)}
    items.sort(
        key=lambda item: (
            -slow_in_file[item.nodeid.split("::")[0]],
            order[item.nodeid.split("::")[0]],
        )
    )
