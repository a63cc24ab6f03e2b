"""The Examples artifact's contract: what ImageExampleGen writes and every later stage reads.

Not a component. ImageExampleGen (components/image_example_gen) writes this artifact; the
Trainer, LabelSchema, the Evaluators, the run summary, `imgtfx predict` and the report read it
through these modules, and none of them imports the converter. A stage's `code_version` hashes
its own code and this package (pipeline/pipeline.py STEP_CODE), so a change to how the tree is
walked or checked reruns ImageExampleGen only, and later steps rerun only when its examples change.

  layout.py      file names, split folders (TFX's artifact_utils), shard names
  features.py    FeatureNames: the features of each tf.train.Example
  reasons.py     why a file did not become an example (rejects.jsonl), the pixel limit
  vocabulary.py  labels.txt and label_names.json, and what a label may be
  report.py      report.json and rejects.jsonl read back, the split warnings
  decode.py      the image decoder that training, serving and the report share
  reader.py      the examples read back with tf.data

layout, features and reasons import no TensorFlow, so the command line can use them at once.
"""
