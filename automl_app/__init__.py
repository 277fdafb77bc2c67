"""automl: Keras-native AutoML for the command line.

Importing this package is cheap: TensorFlow is imported only by the modules that train or export.
"""

__version__ = "0.1.0"
