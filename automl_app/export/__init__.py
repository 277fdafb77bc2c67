"""Everything a finished model is exported as, each file checked before it is moved into place.

specs.py: ServingSpec (fixed_image_spec, folder_image_spec); saved_model.py: the SavedModel with
preprocessing inside, .keras, labels, model card; tflite.py and onnx.py: fixed-shape files for
phones and other runtimes, verified against the SavedModel (check.py). TensorFlow is imported
only when a function runs.
"""

from automl_app.export.check import DEFAULT_TOLERANCE
from automl_app.export.onnx import export_onnx, onnx_available
from automl_app.export.saved_model import (
    FIXED_ENDPOINT,
    export_best,
    export_saved_model,
    read_labels,
)
from automl_app.export.specs import (
    ServingSpec,
    fixed_image_spec,
    folder_image_spec,
    input_scaling,
)
from automl_app.export.tflite import QUANTIZE, export_tflite

__all__ = [
    "DEFAULT_TOLERANCE",
    "FIXED_ENDPOINT",
    "QUANTIZE",
    "ServingSpec",
    "export_best",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "fixed_image_spec",
    "folder_image_spec",
    "input_scaling",
    "onnx_available",
    "read_labels",
]
