"""The AutoKeras engine: task APIs (tasks.py), the IO API (io.py), our layers and fit loop
(core.py), the serving export (serving.py), the Keras-version shim (compat.py) and the four
commands as Plans for the lifecycle (engine.py). Importing this package imports neither TensorFlow
nor AutoKeras.

    from automl_app.engines import autokeras as akt
    result = akt.search_image(x, y, class_names=names, block="vanilla",
                              options=akt.SearchOptions(directory=run_dir / "tuner", max_trials=1))
    from automl_app import workflows   # the flow evaluates, exports and writes the trial table:
    fields = workflows.complete(run_dir, akt.engine_result(result, lambda: (x_test, y_test)))
"""

from automl_app.engines.autokeras.constants import BLOCKS, TASKS, TUNERS
from automl_app.engines.autokeras.core import AutoKerasResult, SearchOptions, estimate_image_bytes
from automl_app.engines.autokeras.io import load_multi_csv, load_spec, search_multi
from automl_app.engines.autokeras.serving import engine_result, raw_feed
from automl_app.engines.autokeras.tasks import search_image, search_structured, search_text

__all__ = [
    "BLOCKS",
    "TASKS",
    "TUNERS",
    "AutoKerasResult",
    "SearchOptions",
    "engine_result",
    "estimate_image_bytes",
    "load_multi_csv",
    "load_spec",
    "raw_feed",
    "search_image",
    "search_multi",
    "search_structured",
    "search_text",
]
