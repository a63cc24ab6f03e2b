"""Pipeline defaults, in one place. UPPER_CASE constants only: runners pass paths."""

PIPELINE_NAME = "image-classification"
TRAIN_STEPS = 600
EVAL_STEPS = 20
IMAGE_SIZE = 64
# The sample digits are 8x8 scans written at 32x32: larger inputs add cost, not information.
SAMPLE_IMAGE_SIZE = 32
BATCH_SIZE = 32
EVAL_PERCENT = 20
MIN_ACCURACY = 0.9
# A new model must not be worse than the last blessed one by more than this.
MAX_ACCURACY_DROP = 0.01
TOP_K = 3
BEAM_PIPELINE_ARGS = ("--direct_running_mode=multi_processing", "--direct_num_workers=0")
