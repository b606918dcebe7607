"""Procedural indoor scenes, ray cast with numpy: an image and exact labels from one geometry.

The scenario: a camera on an advertising display looks into a room. The model must tell how
many people stand in front of it, whether anyone looks at the screen, whether the nearest person
is a child or an adult (by TRUE height, so depth is needed: a near child and a far adult can look
the same size), and the scene layout (segmentation, depth, normals); and per person a box, age
group, gender and head yaw. Up to six people stand in a scene and may overlap; what each one
looks like, and which cues tell gender, age and head direction, is in _people.py.

Per person the labels are exact: `Scene.instances` says which person each pixel shows, and
`Scene.people` (nearest first, only those with at least one visible pixel) holds each one's box
around the visible pixels, visible pixel count, whether the body (hidden parts included) reaches
the image border, head centre, true height, depth, yaw, age group and gender. The image-level
attributes derive from them: `people` counts them, `facing` is "yes" when anyone is looking
(|yaw| < 20 degrees) and `age_group` is the nearest one's.

World frame: metres, y up. The room spans x in [-width/2, width/2], y in [0, height] (floor at
y = 0) and z in [-depth, 0]; the camera hangs near the wall z = 0 and looks towards -z.
Camera frame: x right, y up, z towards the camera (the camera looks along -z).

Every pixel casts one ray through its centre. The camera-space ray direction is scaled so its
z component is -1, which makes the ray parameter of a hit equal to its z-depth. All primitives
are intersected analytically (room box from the inside, yaw-rotated boxes, ellipsoids and spheres,
vertical capped cylinders); the nearest hit gives class, depth and the geometric normal, so the
labels are exact and mutually consistent. Shading (Lambert, a point light with hard shadows,
ambient, vignetting, sensor noise) uses the same hits.

Sequences (data/synth/_sequence.py) film one room over time: people walk in, stop, turn their heads
and walk out, with the same labels per frame plus a track id per person.

Scene parameters are drawn from the generator before anything depends on the image size, so the
same generator state gives the same scene at any resolution; only the sensor noise, drawn last,
depends on the size.
"""

from onepass.data.synth._camera import CameraPose
from onepass.data.synth._render import render_scene, render_scene_with_pose
from onepass.data.synth._scene import (
    ATTRIBUTE_GROUPS,
    CEILING,
    CLASS_NAMES,
    FLOOR,
    FURNITURE,
    LOOKING_YAW_DEGREES,
    OBJECT,
    PERSON,
    PERSON_ATTRIBUTES,
    WALL,
    PersonLabel,
    Scene,
)
from onepass.data.synth._sequence import SequenceFrame, SequencePlan, plan_sequence, render_sequence_frame

__all__ = [
    "ATTRIBUTE_GROUPS",
    "CEILING",
    "CLASS_NAMES",
    "FLOOR",
    "FURNITURE",
    "LOOKING_YAW_DEGREES",
    "OBJECT",
    "PERSON",
    "PERSON_ATTRIBUTES",
    "WALL",
    "CameraPose",
    "PersonLabel",
    "Scene",
    "SequenceFrame",
    "SequencePlan",
    "plan_sequence",
    "render_scene",
    "render_scene_with_pose",
    "render_sequence_frame",
]
