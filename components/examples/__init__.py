"""The Examples artifact's contract: what ImageExampleGen writes and every later stage reads.

Not a component. ImageExampleGen (components/image_example_gen) writes this artifact; the
Trainer, LabelSchema, the Evaluators, the run summary, `imgtfx predict` and the report read it
through these modules, and none of them imports the converter. A stage's `code_version` hashes
its own code and this package (pipeline/pipeline.py STEP_CODE), so a change to how the tree is
walked or checked reruns ImageExampleGen only, and later steps rerun only when its examples change.
Its modules are listed in docs/architecture.md. layout, features and reasons import no
TensorFlow, so the command line can use them at once.
"""
