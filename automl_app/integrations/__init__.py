"""Tools users already have, fed from the run directory: MLflow, TensorBoard, optuna-dashboard."""
