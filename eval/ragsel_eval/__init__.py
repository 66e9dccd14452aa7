"""ragsel evaluation: datasets, metrics, runner, reports."""
