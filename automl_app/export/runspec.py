"""The serving signature of a run's image data: fixed-size images for a named dataset, any size
(resized with padding inside) for an image folder — from the loaded data or from run.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl_app.export.specs import ServingSpec, fixed_image_spec, folder_image_spec


def serving_spec(data: Any) -> ServingSpec:
    """The export's serving signature: fixed-size images for a named dataset, any size (resized
    with padding inside) for an image folder."""
    info = data.info
    if (data.meta or {}).get("folder") is not None:
        return folder_image_spec(info.image_shape[0], info.image_shape[2], info.scale)
    return fixed_image_spec(*info.image_shape, scale=info.scale)


def spec_from_manifest(manifest: Mapping[str, Any]) -> ServingSpec:
    """serving_spec for a finished run, from run.json alone."""
    d = manifest.get("data") or {}
    shape = d["image_shape"]
    if d.get("folder") or (manifest.get("config") or {}).get("data", {}).get("data_dir"):
        return folder_image_spec(shape[0], shape[2], d.get("scale", "0_1"))
    return fixed_image_spec(*shape, scale=d.get("scale", "0_1"))
