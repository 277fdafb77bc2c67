"""The KerasTuner engine: engine.py (plan, search, evaluate, export), setup.py (space, hypermodel,
tuner), parallel.py (KerasTuner's chief/worker mode)."""
