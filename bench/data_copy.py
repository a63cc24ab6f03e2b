"""ImageExampleGen's copy of an image tree out of a bucket (kubeflow/entrypoint.py fetch_data,
components/object_store.py copy_folder): one download at a time against COPY_WORKERS at once,
measured side by side on one tree, and the time both would take at the contest's size.

  python bench/data_copy.py [--objects 1000] [--kib 100] [--latency-ms 20]

The store is SeaweedFS (tests/helpers/seaweedfs.py, the store KFP deploys) on this machine,
reached through tests/helpers/s3_faults.py, which delays each answer by --latency-ms, S3's
typical time to first byte within a region; the objects are the contest's photo size
(960x540 JPEG, ~100 KiB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CONTEST_PHOTOS = 88_000


def main() -> None:
    from imgtfx.components import object_store
    from imgtfx.kubeflow.entrypoint import COPY_WORKERS
    from tests.helpers.s3_faults import FaultyNetwork
    from tests.helpers.seaweedfs import ADMIN_KEYS, SeaweedFS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--kib", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-copy-")
    server = SeaweedFS(os.path.join(work, "seaweedfs"))
    try:
        payload = os.urandom(args.kib * 1024)
        for i in range(args.objects):
            server.put(f"s3://landmarks/train/city{i % 7}/landmark{i % 97}/{i:06d}.jpg", payload)
        network = FaultyNetwork(server.url)
        network.latency_s = args.latency_ms / 1000
        environ = {
            object_store.ENDPOINT_ENV: network.url,
            "AWS_ACCESS_KEY_ID": ADMIN_KEYS[0],
            "AWS_SECRET_ACCESS_KEY": ADMIN_KEYS[1],
        }
        seconds = {}
        for workers in (1, COPY_WORKERS):
            target = os.path.join(work, f"copy-{workers}")
            start = time.perf_counter()
            count = object_store.copy_folder("s3://landmarks/train", target, environ, "", workers)
            seconds[workers] = time.perf_counter() - start
            assert count == args.objects
            shutil.rmtree(target)
        network.close()
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    mib = args.objects * args.kib / 1024
    print(f"{args.objects} objects of {args.kib} KiB, {args.latency_ms:g} ms a request:")
    for workers, took in seconds.items():
        contest = took / args.objects * CONTEST_PHOTOS / 60
        print(
            f"  {workers:>2} at once: {took:6.1f} s, {args.objects / took:7.1f} objects/s, "
            f"{mib / took:6.1f} MiB/s; the contest's {CONTEST_PHOTOS:,} photos: {contest:5.1f} min"
        )
    print(f"  ratio: {seconds[1] / seconds[COPY_WORKERS]:.1f}x faster with {COPY_WORKERS} at once")


if __name__ == "__main__":
    main()
