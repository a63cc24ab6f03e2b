"""Where the BaselineEvaluator looks for its baseline: its task's environment variables, as the
compiled Kubeflow package sets them, and their defaults. Light: the command line names the
default without importing TFX.
"""

METADATA_SERVICE_ENV = "IMGTFX_METADATA_SERVICE"
PIPELINE_NAME_ENV = "IMGTFX_PIPELINE_NAME"
NAMESPACE_ENV = "IMGTFX_NAMESPACE"
# KFP's metadata gRPC service, as its standalone and full installs name it.
DEFAULT_METADATA_SERVICE = "metadata-grpc-service.kubeflow:8080"
