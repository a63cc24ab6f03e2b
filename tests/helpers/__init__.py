"""What the tests share, apart from fixtures (tests/conftest.py): images and trees made here,
ImageExampleGen runs, the object stores and networks the tests run against (SeaweedFS, a GCS
emulator, a faulty network), compiled KFP packages, commands read from the docs."""
