"""Prediction from the command line: images (or folders of images) -> one JSON line each.

Uses the pushed model's raw-bytes signature (`serving_images`), so what is predicted here is
what TF Serving answers. Files are checked first with the rules ImageExampleGen applies
(components/image_files.py: sideways photos turned upright, formats TensorFlow cannot read
transcoded), then by the model's graph (which answers an `error` per image): a bad file gets an
error line of its own and never stops the others.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator

import numpy as np

from imgtfx.components import image_files
from imgtfx.components.examples.reasons import MAX_PIXELS
from imgtfx.pipeline.run_summary import summary_path

BATCH = 32


def resolve_model_dir(path: str) -> str:
    """A SavedModel folder, a Pusher destination holding versions (the newest is used), or the
    root of an `imgtfx run` (its pushed models, ROOT/serving)."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isfile(summary_path(path)):  # a run's root
        serving = os.path.join(path, "serving")
        if not os.path.isdir(serving) or not os.listdir(serving):
            raise ValueError(
                f"the run in {path} pushed no model (none was blessed): its trained models are "
                f"under {os.path.join(path, 'pipeline', 'Trainer', 'model')}/*/Format-Serving."
            )
        return resolve_model_dir(serving)
    versions = (
        sorted(
            (d for d in os.listdir(path) if d.isdigit() and os.path.isdir(os.path.join(path, d))),
            key=int,
        )
        if os.path.isdir(path)
        else []
    )
    if not versions:
        raise ValueError(f"{path} is not a SavedModel folder nor a folder of model versions.")
    return os.path.join(path, versions[-1])


def expand(paths: Iterable[str]) -> Iterator[str]:
    """Files as given, and the files under folders (hidden and system files left out)."""
    for path in paths:
        if os.path.isdir(path):
            for folder, subfolders, names in os.walk(path):
                subfolders[:] = sorted(
                    s for s in subfolders if not image_files.is_hidden_or_system(s)
                )
                for name in sorted(names):
                    if not image_files.is_hidden_or_system(name):
                        yield os.path.join(folder, name)
        else:
            yield path


def _answer(vocabulary: list[str], names: list[str] | None, row, index: int) -> dict:
    """label, name (when the model has names) and probability of class `index`."""
    answer = {"label": vocabulary[index]}
    if names is not None:
        answer["name"] = names[index]
    answer["probability"] = round(float(row[index]), 6)
    return answer


def _neighbours(answer, vocabulary: list[str], names: list[str] | None) -> list | None:
    """Per image, its nearest train photos as {"id", "label", "name" (models with names),
    "similarity"}, nearest first; None for a model without a neighbour index."""
    from imgtfx.trainer import model as trainer_model

    if trainer_model.NEIGHBOUR_IDS not in answer:
        return None
    position = {label: i for i, label in enumerate(vocabulary)}
    rows = zip(
        answer[trainer_model.NEIGHBOUR_IDS].numpy(),
        answer[trainer_model.NEIGHBOUR_LABELS].numpy(),
        answer[trainer_model.NEIGHBOUR_SIMILARITIES].numpy(),
        strict=True,
    )
    out = []
    for ids, labels, similarities in rows:
        near = []
        for image_id, label, similarity in zip(ids, labels, similarities, strict=True):
            label = label.decode("utf-8", "replace")
            entry = {"id": image_id.decode("utf-8", "replace"), "label": label}
            if names is not None and label in position:
                entry["name"] = names[position[label]]
            entry["similarity"] = round(float(similarity), 6)
            near.append(entry)
        out.append(near)
    return out


def predict(model_dir: str, paths: Iterable[str], top_k: int = 3, progress: bool = False):
    """Yields one dict per file, in input order: path, label, name (models with names),
    probability, top_k and, from a model with a neighbour index, neighbours; `abstained` (and
    no label) where the model's min_confidence held its answer back; or path and error."""
    import tensorflow as tf

    from imgtfx.components.examples.layout import LABEL_NAMES_FILE, LABELS_FILE
    from imgtfx.components.examples.vocabulary import read_label_names, read_labels_file
    from imgtfx.trainer import model as trainer_model

    model_dir = resolve_model_dir(model_dir)
    signature = tf.saved_model.load(model_dir).signatures[trainer_model.IMAGES_SIGNATURE]
    vocabulary = read_labels_file(os.path.join(model_dir, LABELS_FILE))
    names = None  # models exported before label_names.json print labels only
    if os.path.exists(os.path.join(model_dir, LABEL_NAMES_FILE)):
        names = read_label_names(model_dir)
    files = list(expand(paths))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="img", file=sys.stderr)
    pending: list[dict] = []  # lines in input order; good ones wait for their batch

    def flush():
        good = [line for line in pending if "data" in line]
        if good:
            answer = signature(images=tf.constant([line.pop("data") for line in good]))
            probabilities = answer[trainer_model.PROBABILITIES].numpy()
            errors = answer.get(trainer_model.ERROR)  # models exported before it have none
            # [n, 1] since the outputs were shaped for BulkInferrer; [n] in older models
            errors = [b""] * len(good) if errors is None else errors.numpy().reshape(-1)
            near = _neighbours(answer, vocabulary, names)
            for i, (line, row, error) in enumerate(zip(good, probabilities, errors, strict=True)):
                if error:  # refused by the model itself, e.g. over its own pixel limit
                    line["error"] = error.decode("utf-8", "replace")
                    continue
                if near is not None:
                    line["neighbours"] = near[i]
                if not row.any():  # under the model's min_confidence: no prediction
                    line["abstained"] = True
                    continue
                best = np.argsort(-row)[: max(1, top_k)]
                line.update(_answer(vocabulary, names, row, best[0]))
                line["top_k"] = [_answer(vocabulary, names, row, i) for i in best]
        if bar:
            bar.update(len(pending))
        yield from pending
        pending.clear()

    waiting = 0  # images in `pending` waiting for the model
    for path in files:
        checked = image_files.read_checked(path, MAX_PIXELS)
        if isinstance(checked, str):
            pending.append({"path": path, "error": checked})
        else:
            pending.append({"path": path, "data": checked})
            waiting += 1
        if waiting == BATCH:
            yield from flush()
            waiting = 0
    yield from flush()
    if bar:
        bar.close()


SUBMISSION_HEADER = ("id", "landmark_id", "conf")


def submission_rows(lines: Iterable[dict], errors) -> Iterator[tuple[str, str, str]]:
    """(id, label, confidence) per predicted line, in order: the id is the file name without
    its extension, the label the class as the labels CSV spells it, the confidence its
    probability. An abstained line gives (id, "", ""), no prediction as the contest reads it;
    a line with an error gives the same and says why on `errors`; an id given twice is said
    there too (both rows are written)."""
    seen = set()
    for line in lines:
        key = os.path.splitext(os.path.basename(line["path"]))[0]
        if key in seen:
            print(f"imgtfx predict: id {key} given twice ({line['path']})", file=errors)
        seen.add(key)
        if "error" in line:
            print(f"imgtfx predict: {line['path']}: {line['error']}", file=errors)
            yield key, "", ""
        elif line.get("abstained"):
            yield key, "", ""
        else:
            yield key, line["label"], f"{line['probability']:.6f}"


def write_submission(path: str, rows: Iterable[tuple[str, str, str]]) -> list[tuple]:
    """Writes the rows as a CSV with SUBMISSION_HEADER (UTF-8); returns them."""
    import csv

    written = []
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SUBMISSION_HEADER)
        for row in rows:
            writer.writerow(row)
            written.append(row)
    return written
