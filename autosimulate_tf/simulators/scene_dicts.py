"""Mitsuba 3 scene dicts of one CLEVR-like object on a floor, and rendering them to RGB images.

A scene is built from two parts:

- `SceneDescription`: what a latent decides, in natural units (which shape and
  material, colour, size, yaw, light, camera, samples per pixel, render seed);
- `RenderStyle`: how the renderer works beyond the latent (resolution, reconstruction
  filter, field of view, light colour, ambient light, floor, object proportions,
  exposure). The scene simulator renders with `SIMULATOR_STYLE`; the target data of the
  benchmark use another style that no psi can reach (`autosimulate_tf.data.scenes`).

The scene: a large grey diffuse floor (z = 0), one object resting on it at the origin,
a directional light (the sun; a delta light never makes llvm recompile, unlike a moving
area light) and a dim constant environment light whose light-sampling weight is lowered
so that it does not take half of the light samples. The camera looks at a point above
the origin from (elevation, azimuth, distance). Path tracing with 3 bounces.

Objects (`size` is the half-extent r):

- sphere: radius r, centre at height r;
- cube: half-side 0.8 r (about the sphere's apparent size), rotated by `yaw` about z;
- cylinder: radius r, height 1.6 r, capped by a disk on top (Mitsuba's `cylinder` is an
  open tube; the bottom rests on the floor, where a cap would never be seen).

Materials: `diffuse` (Lambertian), `plastic` (principled BSDF, dielectric, roughness 0.25) and `metal`
(rough conductor, GGX alpha 0.2, coloured, perfect-mirror Fresnel). Roughness gives the
sun a visible highlight (a smooth surface would reflect the delta light in no pixel).

`tonemap` turns linear radiance into the observation: exposure, clip to [0, 1], gamma 2.2.
"""

import colorsys
import math
from typing import NamedTuple

import numpy as np

SHAPES = ("sphere", "cube", "cylinder")
MATERIALS = ("diffuse", "plastic", "metal")
SATURATION = 0.7  # HSV saturation and value of the object colour (the hue is a latent)
VALUE = 0.8
CUBE_HALF_SIDE = 0.8  # x the size r
CYLINDER_HEIGHT = 1.6  # x the size r
CAMERA_TARGET_HEIGHT = 0.4  # the camera looks at (0, 0, this), about the middle of a typical object
ENVIRONMENT_SAMPLING_WEIGHT = 0.05
MAX_DEPTH = 4  # 3 bounces
GAMMA = 2.2
FLOOR_HALF_SIDE = 60.0
# The emitters' sampling uses the scene's bounding sphere, which llvm bakes into its kernels: an
# object of another size would recompile every render (~0.3 s). A speck above the floor's far
# corner, higher than any object can be, keeps the bounding box fixed; no camera ray comes near it.
BOUNDS_MARKER_CENTRE = (FLOOR_HALF_SIDE, FLOOR_HALF_SIDE, 3.0)
BOUNDS_MARKER_RADIUS = 1e-3


class SceneDescription(NamedTuple):
    """One scene in natural units (what a latent decides)."""

    shape: int  # index into SHAPES
    material: int  # index into MATERIALS
    spp: int  # samples per pixel
    hue: float  # turns, wraps around 1
    size: float  # half-extent r, scene units (floor units)
    yaw: float  # degrees about the vertical axis
    light_intensity: float  # irradiance of the sun
    light_elevation: float  # degrees above the horizon
    light_azimuth: float  # degrees
    camera_elevation: float  # degrees above the horizon
    camera_azimuth: float  # degrees
    camera_distance: float  # scene units, to the look-at point
    seed: int  # Mitsuba's sampler seed, uint32


class RenderStyle(NamedTuple):
    """How a scene is rendered beyond its description (nothing here is a latent)."""

    resolution: int = 32
    reconstruction_filter: str = "box"  # box: bit-exact renders for a seed (gaussian is not, with threads)
    field_of_view: float = 35.0  # degrees, horizontal
    light_colour: tuple = (1.0, 1.0, 1.0)  # linear RGB multiplier of the sun and the ambient light
    ambient_radiance: float = 0.25
    floor_reflectance: tuple = (0.45, 0.45, 0.45)
    cube_height: float = 1.0  # multiplier on the cube's height (1: a cube)
    cylinder_height: float = 1.0  # multiplier on the cylinder's height
    exposure: float = 1.0


SIMULATOR_STYLE = RenderStyle()


def _rgb(value) -> dict:
    return {"type": "rgb", "value": [float(channel) for channel in value]}


def object_reflectance(hue: float) -> tuple:
    """The object's linear RGB reflectance for a hue (saturation and value fixed, sRGB-like decoding)."""
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, SATURATION, VALUE)
    return tuple(channel**GAMMA for channel in (red, green, blue))


def material_dict(material: int, reflectance: tuple) -> dict:
    """The object's BSDF."""
    name = MATERIALS[material]
    if name == "diffuse":
        return {"type": "diffuse", "reflectance": _rgb(reflectance)}
    if name == "plastic":
        # The principled BSDF rather than roughplastic, whose construction precomputes tables (~25 ms a scene).
        return {"type": "principled", "base_color": _rgb(reflectance), "roughness": 0.25, "specular": 0.5}
    return {
        "type": "roughconductor",
        "distribution": "ggx",
        "alpha": 0.2,
        "material": "none",
        "specular_reflectance": _rgb(reflectance),
    }


def object_shapes(mi, description: SceneDescription, style: RenderStyle) -> dict:
    """The object's shapes (`{name: shape dict}`), each referring to the BSDF with id `object_material`."""
    transform = mi.ScalarTransform4f
    material = {"type": "ref", "id": "object_material"}
    size = float(description.size)
    name = SHAPES[description.shape]
    if name == "sphere":
        return {"object": {"type": "sphere", "center": [0.0, 0.0, size], "radius": size, "bsdf": material}}
    if name == "cube":
        half_side = CUBE_HALF_SIDE * size
        half_height = half_side * style.cube_height
        to_world = (
            transform()
            .translate([0.0, 0.0, half_height])
            .rotate([0.0, 0.0, 1.0], float(description.yaw))
            .scale([half_side, half_side, half_height])
        )
        return {"object": {"type": "cube", "to_world": to_world, "bsdf": material}}
    height = CYLINDER_HEIGHT * size * style.cylinder_height
    return {
        "object": {
            "type": "cylinder",
            "p0": [0.0, 0.0, 0.0],
            "p1": [0.0, 0.0, height],
            "radius": size,
            "bsdf": material,
        },
        "object_cap": {
            "type": "disk",
            "to_world": transform().translate([0.0, 0.0, height]).scale(size),
            "bsdf": material,
        },
    }


def _direction(elevation_degrees: float, azimuth_degrees: float) -> np.ndarray:
    """Unit vector pointing up at `elevation` above the horizon, at `azimuth` from +x towards +y."""
    elevation, azimuth = math.radians(elevation_degrees), math.radians(azimuth_degrees)
    return np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )


def sensor_dict(mi, description: SceneDescription, style: RenderStyle) -> dict:
    """A perspective camera on the sphere of radius `camera_distance` around the look-at point."""
    target = np.array([0.0, 0.0, CAMERA_TARGET_HEIGHT])
    origin = target + description.camera_distance * _direction(description.camera_elevation, description.camera_azimuth)
    return {
        "type": "perspective",
        "fov": float(style.field_of_view),
        "to_world": mi.ScalarTransform4f().look_at(origin=origin.tolist(), target=target.tolist(), up=[0.0, 0.0, 1.0]),
        "sampler": {"type": "independent", "sample_count": int(description.spp)},
        "film": {
            "type": "hdrfilm",
            "width": int(style.resolution),
            "height": int(style.resolution),
            "pixel_format": "rgb",
            "rfilter": {"type": style.reconstruction_filter},
        },
    }


def scene_dict(mi, description: SceneDescription, style: RenderStyle = SIMULATOR_STYLE) -> dict:
    """The whole scene as a `mi.load_dict` dict."""
    light = np.asarray(style.light_colour, np.float64)
    scene = {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": MAX_DEPTH},
        "sensor": sensor_dict(mi, description, style),
        "object_material": {
            **material_dict(description.material, object_reflectance(description.hue)),
            "id": "object_material",
        },
        "floor": {
            "type": "rectangle",
            "to_world": mi.ScalarTransform4f().scale([FLOOR_HALF_SIDE, FLOOR_HALF_SIDE, 1.0]),
            "bsdf": {"type": "diffuse", "reflectance": _rgb(style.floor_reflectance)},
        },
        "sun": {
            "type": "directional",
            "direction": (-_direction(description.light_elevation, description.light_azimuth)).tolist(),
            "irradiance": _rgb(description.light_intensity * light),
        },
        "ambient": {
            "type": "constant",
            "radiance": _rgb(style.ambient_radiance * light),
            "sampling_weight": ENVIRONMENT_SAMPLING_WEIGHT,
        },
    }
    scene.update(object_shapes(mi, description, style))
    scene["bounds_marker"] = {
        "type": "sphere",
        "center": list(BOUNDS_MARKER_CENTRE),
        "radius": BOUNDS_MARKER_RADIUS,
        "bsdf": {"type": "diffuse", "reflectance": _rgb((0.0, 0.0, 0.0))},
    }
    return scene


def render_linear(mi, description: SceneDescription, style: RenderStyle = SIMULATOR_STYLE) -> np.ndarray:
    """Path-traces the scene with the variant already set; `[resolution, resolution, 3]` float32 linear RGB."""
    scene = mi.load_dict(scene_dict(mi, description, style))
    image = np.array(mi.render(scene, seed=int(description.seed)), dtype=np.float32)
    return np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)


def tonemap(linear: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    """Linear radiance -> displayed values in [0, 1]: exposure, clip, gamma 2.2 (float32)."""
    return np.power(np.clip(linear * exposure, 0.0, 1.0), 1.0 / GAMMA).astype(np.float32)
