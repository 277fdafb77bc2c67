"""automl: Keras-native AutoML for the command line.

Importing this package is cheap: TensorFlow is imported only by the modules that train or export.
"""

__version__ = "0.1.0"

# Quiet TensorFlow defaults and the import hook go in before any submodule imports keras (cheap:
# tf_env does not import TensorFlow).
from automl_app import tf_env as _tf_env  # noqa: E402,F401
