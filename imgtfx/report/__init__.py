"""The run report: one self-contained HTML page (ROOT/report/index.html) that opens from disk.

Everything a person checks after a run: the dataset and its rejects, TFDV statistics and
anomalies, sample images per class, training curves, TFMA metrics and the blessing, a
confusion matrix (or its summaries at many classes), per-class accuracy, and the eval images
the model got most confidently wrong.

  data.py    what the page shows, as plain data (RunResults)
  read.py    reads it from a run's artifacts, streaming, keeping only what is shown
  render.py  turns it into HTML and charts; reads no file, imports no TensorFlow
"""

from __future__ import annotations

import os


def write_run_report(root: str) -> str:
    """Writes ROOT/report/index.html from the run whose ROOT/summary.json names its artifacts;
    returns its path. The page is rendered before the file is opened, so a failure never
    leaves an empty report behind."""
    import tensorflow as tf  # ROOT may be a bucket

    from imgtfx.report import read, render

    page = render.render(read.read_run(read.read_reportable_summary(root)))
    path = os.path.join(root, "report", "index.html")
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path + ".tmp", "wb") as f:
        f.write(page.encode("utf-8"))
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return path
