"""The generated report: the seed report rebuilt from the pipeline's own outputs."""
