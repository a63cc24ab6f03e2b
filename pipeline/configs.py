"""Pipeline defaults, in one place. UPPER_CASE constants only: runners pass paths."""

PIPELINE_NAME = "image-classification"
TRAIN_STEPS = 600
EVAL_STEPS = 20
IMAGE_SIZE = 64
# The sample digits are 8x8 scans written at 32x32: larger inputs add cost, not information.
SAMPLE_IMAGE_SIZE = 32
BATCH_SIZE = 32
MIN_ACCURACY = 0.9
# A new model must not be worse than the last blessed one by more than this.
MAX_ACCURACY_DROP = 0.01
TOP_K = 3
# Beam's DirectRunner in one process, one worker: its multi_threading mode lost 1 of 20,000
# elements in a grouping step here (caught by ImageExampleGen's count reconciliation), and
# multi_processing imports TensorFlow in every worker (26 s and 2.3 GiB vs 5 s and 0.6 GiB for
# 2,000 images). ImageExampleGen uses every core through its own decode threads.
# The SDK image names this Beam's own workers. The DirectRunner never starts one (its workers
# are this process or its subprocesses, whatever the image), but with it set TFX does not build
# an sdist of itself for every Beam step: 0.8 s each, for workers that do not exist, and a 49 MB
# copy of TFX in a temporary folder that nothing deletes (tfx/utils/dependency_utils.py,
# build_ephemeral_package). pipeline/staging.py adds it to any local run's arguments.
BEAM_SDK_IMAGE = "apache/beam_python3.10_sdk:2.61.0"
BEAM_PIPELINE_ARGS = (
    "--direct_running_mode=in_memory",
    "--direct_num_workers=1",
    f"--sdk_container_image={BEAM_SDK_IMAGE}",
)
