"""Entry scripts of the SageMaker Pipelines definition (`definition.py`): each runs one edgesim step
inside a SageMaker job. The job's image needs edgesim installed (`pip install edgesim[cloud]`)."""
