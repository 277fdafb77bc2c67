"""Engines turn data + config into trials and a best model behind one small interface (base.py):
`plan_*` checks the options and returns a Plan; the lifecycle in workflows.py runs it.

kerastuner/ (search over a YAML space), autokeras/ (AutoKeras task and IO APIs), scratch.py (one
recipe, no search). Adding an engine means one module here that returns a Plan.
"""
