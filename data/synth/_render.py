"""Rendering a sampled layout: primary rays, surfaces (normals, albedo, classes), shading with
shadows, exposure to an 8-bit image, the labels of the visible people with the image-level
attributes derived from them, and where those people look (_saliency.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from onepass.data.synth._camera import CameraPose
from onepass.data.synth._geometry import _CORNER_SELECTORS, Room
from onepass.data.synth._layout import Layout, _sample_layout
from onepass.data.synth._materials import _column
from onepass.data.synth._saliency import _saliency_map
from onepass.data.synth._scene import ATTRIBUTE_GROUPS, PersonLabel, Scene

SHADOW_OFFSET = 1e-3  # metres; shadow rays start this far off the surface to miss it


def render_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """Draw one random room with people from `rng` and render it at height x width pixels."""
    scene, _ = render_scene_with_pose(rng, height, width)
    return scene


def render_scene_with_pose(rng: np.random.Generator, height: int, width: int) -> tuple[Scene, CameraPose]:
    """Like `render_scene`, also returning the camera the scene was rendered with."""
    layout = _sample_layout(rng)
    pose = layout.rig.pose(height, width)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        hits = _cast_primary_rays(layout, pose)
        surface = _resolve_surfaces(layout, pose, hits)
        radiance = _shade(layout, surface)  # (3, H*W)
    image = _expose(rng, layout, pose, radiance)
    normals_camera = (pose.rotation.T.astype(np.float32) @ surface.normal).T  # (H*W, 3)
    people, instances, visible = _people_labels(layout, pose, hits)
    scene = Scene(
        image=image,
        semseg=surface.class_id.reshape(height, width),
        depth=hits.t.astype(np.float32, copy=False),
        normals=np.ascontiguousarray(normals_camera.reshape(height, width, 3)),
        attributes=_attributes(people),
        people=people,
        instances=instances,
        saliency=_saliency_map(layout, pose, visible),
    )
    return scene, pose


# --------------------------------------------------------------------------------------------
# Rendering.


@dataclass(frozen=True)
class _Hits:
    t: np.ndarray  # (H, W) float32 ray parameter = z-depth of the nearest hit
    room_face: np.ndarray  # (H, W) int8 face id where the room is the nearest hit
    winner: np.ndarray  # (H, W) int16 primitive index, -1 for the room
    directions: tuple[np.ndarray, np.ndarray, np.ndarray]  # world, each (H, W)
    rects: tuple[tuple[slice, slice] | None, ...]  # per primitive: the pixels it may cover
    on_border: tuple[bool, ...]  # per primitive: whether it covers a border pixel, hidden or not


def _screen_rects(layout: Layout, pose: CameraPose) -> list[tuple[slice, slice] | None]:
    """Pixels each primitive can cover: the bounding rectangle of its projected world box."""
    primitives = layout.primitives
    if not primitives:
        return []
    lo, hi = layout.primitive_bounds  # (n, 3) each
    corners = np.where(_CORNER_SELECTORS, hi[:, None, :], lo[:, None, :])  # (n, 8, 3)
    camera = pose.to_camera(corners)  # (n, 8, 3)
    depth = -camera[..., 2]  # (n, 8)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = pose.focal * camera[..., 0] / depth + pose.width / 2  # (n, 8) continuous pixel coordinates
        v = pose.height / 2 - pose.focal * camera[..., 1] / depth
    left = np.maximum(0, np.floor(u.min(1)) - 1)  # (n,) each, clipped to the image
    right = np.minimum(pose.width, np.ceil(u.max(1)) + 1)
    top = np.maximum(0, np.floor(v.min(1)) - 1)
    bottom = np.minimum(pose.height, np.ceil(v.max(1)) + 1)
    rects: list[tuple[slice, slice] | None] = []
    for k in range(len(primitives)):
        if depth[k].max() <= 0:
            rects.append(None)
        elif depth[k].min() <= 1e-3:  # straddles the camera plane: no finite projection
            rects.append((slice(0, pose.height), slice(0, pose.width)))
        elif left[k] >= right[k] or top[k] >= bottom[k]:
            rects.append(None)
        else:
            rects.append((slice(int(top[k]), int(bottom[k])), slice(int(left[k]), int(right[k]))))
    return rects


def _cast_primary_rays(layout: Layout, pose: CameraPose) -> _Hits:
    dx, dy, dz = pose.world_directions()  # each (H, W)
    ox, oy, oz = (float(c) for c in pose.position)
    t, room_face = layout.room.exit(ox, oy, oz, dx, dy, dz)  # (H, W) each
    winner = np.full(t.shape, -1, dtype=np.int16)
    rects = _screen_rects(layout, pose)
    on_border = [False] * len(rects)
    for index, (primitive, rect) in enumerate(zip(layout.primitives, rects, strict=True)):
        if rect is None:
            continue
        t_new = primitive.intersect(ox, oy, oz, dx[rect], dy[rect], dz[rect])
        on_border[index] = _covers_border(t_new, rect, pose)
        t_view, winner_view = t[rect], winner[rect]  # views into the full buffers
        closer = t_new < t_view
        np.putmask(t_view, closer, t_new)
        np.putmask(winner_view, closer, index)
    return _Hits(t, room_face, winner, (dx, dy, dz), tuple(rects), tuple(on_border))


def _covers_border(t: np.ndarray, rect: tuple[slice, slice], pose: CameraPose) -> bool:
    """Whether a primitive's hits t (over its rect) include a pixel on the image border."""
    rows, cols = rect
    edges = []
    if rows.start == 0:
        edges.append(t[0])
    if rows.stop == pose.height:
        edges.append(t[-1])
    if cols.start == 0:
        edges.append(t[:, 0])
    if cols.stop == pose.width:
        edges.append(t[:, -1])
    return any(bool(np.isfinite(edge).any()) for edge in edges)


@dataclass(frozen=True)
class _Surface:
    points: tuple[np.ndarray, np.ndarray, np.ndarray]  # world hit points, each (N,), N = H * W
    normal: np.ndarray  # (3, N) float32 world unit normals
    albedo: np.ndarray  # (3, N) float32
    class_id: np.ndarray  # (N,) uint8


def _scatter(target: np.ndarray, idx: np.ndarray, values: np.ndarray) -> None:
    """target[:, idx] = values for (3, N) and (3, n) arrays; row by row, which numpy does ~5x faster."""
    for row in range(3):
        target[row, idx] = values[row]


def _resolve_surfaces(layout: Layout, pose: CameraPose, hits: _Hits) -> _Surface:
    """Normal, albedo and class of every pixel's nearest hit."""
    ox, oy, oz = (float(c) for c in pose.position)
    t = hits.t.ravel()
    dx, dy, dz = (d.ravel() for d in hits.directions)
    px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz  # (N,) each
    # Start from the room everywhere (its faces are planes: normal and class by face id), then
    # overwrite the pixels where a primitive is nearer.
    face = hits.room_face.ravel()
    normal = np.take(np.asarray(Room.FACE_NORMALS, dtype=np.float32).T, face, axis=1)  # (3, N)
    class_id = np.asarray(Room.FACE_CLASSES, dtype=np.uint8)[face]  # (N,)
    albedo = np.empty((3, t.size), dtype=np.float32)
    room_pixels = np.flatnonzero(hits.winner.ravel() < 0)
    # Faces sharing a material (the walls, mostly) are textured in one call.
    materials = list({id(m): m for m in layout.face_materials}.values())
    material_ids = [id(m) for m in materials]
    material_of_face = np.array([material_ids.index(id(m)) for m in layout.face_materials], dtype=np.int8)
    room_material = material_of_face[face[room_pixels]]  # (n_room,)
    for number, material in enumerate(materials):
        idx = room_pixels[room_material == number]
        if idx.size:
            _scatter(albedo, idx, material.albedo(px[idx], py[idx], pz[idx]))

    width = pose.width
    for index, (primitive, rect) in enumerate(zip(layout.primitives, hits.rects, strict=True)):
        if rect is None:
            continue
        rows, cols = np.nonzero(hits.winner[rect] == index)
        if rows.size == 0:
            continue
        idx = (rows + rect[0].start) * width + cols + rect[1].start  # flat pixel indices
        x, y, z = px[idx], py[idx], pz[idx]
        nx, ny, nz = primitive.normal(x, y, z, dx[idx], dy[idx], dz[idx])
        # Unit length, and facing the ray: a hit seen from outside does, up to rounding where
        # the ray grazes a silhouette.
        facing = nx * dx[idx] + ny * dy[idx] + nz * dz[idx]
        scale = np.where(facing > 0, -1, 1) / np.sqrt(nx * nx + ny * ny + nz * nz)
        normal[0, idx], normal[1, idx], normal[2, idx] = nx * scale, ny * scale, nz * scale
        _scatter(albedo, idx, primitive.material.albedo(x, y, z))
        class_id[idx] = primitive.class_id

    return _Surface((px, py, pz), normal, albedo, class_id)


def _shade(layout: Layout, surface: _Surface) -> np.ndarray:
    """Linear radiance (3, N): Lambert from a point light with hard shadows, plus ambient."""
    px, py, pz = surface.points
    nx, ny, nz = surface.normal
    lx, ly, lz = layout.light_position
    to_light = (lx - px, ly - py, lz - pz)  # 3 x (N,)
    distance = np.sqrt(to_light[0] ** 2 + to_light[1] ** 2 + to_light[2] ** 2)  # (N,)
    cosine = (nx * to_light[0] + ny * to_light[1] + nz * to_light[2]) / distance
    lit = np.flatnonzero(cosine > 0)
    visible = _light_visibility(layout, surface, lit)
    # Inverse-square falloff, softened so the room does not drop to black far from the light.
    irradiance = np.zeros_like(cosine)
    irradiance[lit] = cosine[lit] * visible / (1 + 0.08 * distance[lit] ** 2) * 2.0
    # Ambient is a little stronger on surfaces facing up, towards the lit ceiling.
    ambient = 0.85 + 0.15 * ny  # (N,)
    light = _column(layout.light_colour) * irradiance + _column(layout.ambient_colour) * ambient  # (3, N)
    return surface.albedo * light


def _light_visibility(layout: Layout, surface: _Surface, lit: np.ndarray) -> np.ndarray:
    """1 where the segment from a lit point to the light is free, else 0: (len(lit),) float32."""
    lx, ly, lz = layout.light_position
    ox, oy, oz = (p[lit] + SHADOW_OFFSET * n[lit] for p, n in zip(surface.points, surface.normal, strict=True))
    dx, dy, dz = lx - ox, ly - oy, lz - oz  # point -> light, t = 1 at the light
    length = np.sqrt(dx * dx + dy * dy + dz * dz)  # (n_lit,)
    shadowed = np.zeros(lit.size, dtype=bool)
    for group in layout.occluders:
        ex, ey, ez = group.center[0] - lx, group.center[1] - ly, group.center[2] - lz
        centre_distance = math.sqrt(ex * ex + ey * ey + ez * ez)
        if centre_distance > group.radius:
            # Only points inside the cone the bounding sphere casts from the light can be hidden.
            along = -(dx * ex + dy * ey + dz * ez)  # light->point . light->centre
            in_cone = along > length * math.sqrt(centre_distance**2 - group.radius**2)
            candidates = np.flatnonzero(in_cone & (length > centre_distance - group.radius) & ~shadowed)
        else:
            candidates = np.flatnonzero(~shadowed)
        if candidates.size == 0:
            continue
        if len(group.members) == 1:
            sub = [a[candidates] for a in (ox, oy, oz, dx, dy, dz)]
            shadowed[candidates[layout.primitives[group.members[0]].intersect(*sub) < 1]] = True
            continue
        # A person: each part's own bounding sphere narrows the candidates further.
        for member, centre, radius in zip(group.members, group.member_centres, group.member_radii, strict=True):
            ex, ey, ez = centre[0] - lx, centre[1] - ly, centre[2] - lz
            centre_distance = math.sqrt(ex * ex + ey * ey + ez * ez)
            hidden = candidates
            if centre_distance > radius:
                along = -(dx[candidates] * ex + dy[candidates] * ey + dz[candidates] * ez)
                hidden = candidates[along > length[candidates] * math.sqrt(centre_distance**2 - radius**2)]
            if hidden.size:
                sub = [a[hidden] for a in (ox, oy, oz, dx, dy, dz)]
                shadowed[hidden[layout.primitives[member].intersect(*sub) < 1]] = True
    return (~shadowed).astype(np.float32)


def _expose(rng: np.random.Generator, layout: Layout, pose: CameraPose, radiance: np.ndarray) -> np.ndarray:
    """Radiance (3, N) -> 8-bit image (H, W, 3) with vignetting, a display gamma and noise."""
    height, width = pose.height, pose.width
    x, y = pose.camera_directions()  # (1, W), (H, 1)
    corner = (width / 2 / pose.focal) ** 2 + (height / 2 / pose.focal) ** 2
    falloff = 1 - layout.vignetting * (x * x + y * y) / corner  # (H, W)
    # Gamma 2 (a square root) keeps dark rooms readable; the 255 ** 2 moves it into 8-bit steps.
    rgb = radiance.reshape(3, height, width)  # (3, H, W), worked on in place
    rgb *= falloff * np.float32(layout.exposure * 255**2)
    np.sqrt(np.maximum(rgb, 0, out=rgb), out=rgb)
    noise = rng.standard_normal(rgb.shape, dtype=np.float32)  # (3, H, W)
    noise *= np.float32(layout.noise_sigma)
    rgb += noise
    rgb += 0.5  # round to nearest in the cast below
    np.clip(rgb, 0, 255, out=rgb)
    return np.ascontiguousarray(rgb.astype(np.uint8).transpose(1, 2, 0))  # (H, W, 3)


def _people_labels(
    layout: Layout, pose: CameraPose, hits: _Hits
) -> tuple[tuple[PersonLabel, ...], np.ndarray, list[int]]:
    """The visible people, nearest first, the (H, W) int16 map of which one each pixel shows, and
    their numbers in `layout.people`."""
    person_of_primitive = np.full(len(layout.primitives) + 1, -1, dtype=np.int16)  # the last entry: the room
    for number, members in enumerate(layout.person_primitives):
        person_of_primitive[members.start : members.stop] = number
    sampled = person_of_primitive[hits.winner]  # (H, W) sampled person number, -1 for none
    pixels = np.bincount(sampled.ravel() + 1, minlength=len(layout.people) + 1)[1:]  # (people,)
    visible = sorted(np.flatnonzero(pixels).tolist(), key=lambda number: layout.people[number].depth)
    labels = []
    for number in visible:
        person, members = layout.people[number], layout.person_primitives[number]
        rects = [hits.rects[index] for index in members if hits.rects[index] is not None]
        top, left = min(rows.start for rows, _ in rects), min(cols.start for _, cols in rects)
        mask = sampled[top : max(rows.stop for rows, _ in rects), left : max(cols.stop for _, cols in rects)] == number
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        y, x = top + int(rows[0]), left + int(cols[0])
        head = pose.to_camera(np.array([person.head_centre]))[0]  # (3,)
        labels.append(
            PersonLabel(
                box=(x, y, left + int(cols[-1]) + 1 - x, top + int(rows[-1]) + 1 - y),
                visible_pixels=int(pixels[number]),
                truncated=any(hits.on_border[index] for index in members),
                head_centre=(
                    float(pose.focal * head[0] / -head[2] + pose.width / 2),
                    float(pose.height / 2 - pose.focal * head[1] / -head[2]),
                ),
                height=person.height,
                depth=person.depth,
                yaw=person.yaw,
                age_group=person.age_group,
                gender=person.gender,
            )
        )
    # Renumber: sampled person number -> index into the labels, -1 (the last entry) for none.
    index_of_person = np.full(len(layout.people) + 1, -1, dtype=np.int16)
    index_of_person[visible] = np.arange(len(visible), dtype=np.int16)
    return tuple(labels), index_of_person[sampled], visible


def _attributes(people: Sequence[PersonLabel]) -> dict[str, str]:
    """The image-level attributes, from the visible people alone."""
    nearest = min(people, key=lambda person: person.depth) if people else None
    return {
        "people": ATTRIBUTE_GROUPS["people"][min(len(people), 3)],
        "facing": "yes" if any(person.looking for person in people) else "no",
        "age_group": "none" if nearest is None else nearest.age_group,
    }
