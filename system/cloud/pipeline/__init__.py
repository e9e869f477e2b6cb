"""The training pipelines (classification and segmentation), run locally on any profile's ObjectStore."""
