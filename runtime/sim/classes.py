"""The segmentation classes of the simulated rooms: shape defines the class, appearance does not.

Every class is a kind of geometry (a flat floor, vertical walls, a horizontal ceiling, a top on
legs, a seat with a back, a tall or low box, an upholstered block with arms, an upright
cylinder); colours and textures are drawn from one distribution shared by all classes, so an RGB
model must read shape from shading and context while depth shows it directly.
"""
from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "floor",    # 0: the floor and rugs lying on it
    "wall",     # 1: walls, door frames, skirting boards, pictures hung on walls
    "ceiling",  # 2
    "table",    # 3: tops on legs or on a pedestal, dining and coffee tables
    "chair",    # 4: four-legged and office chairs
    "cabinet",  # 5: closed cupboards, chests of drawers, open shelves
    "sofa",     # 6: sofas and armchairs
    "bin",      # 7: upright cylinders: waste bins, barrels, plant pots
)

# Colours for drawing labels (RGB, 0-255); they say nothing about how a class is rendered.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (152, 120, 80),   # floor
    (174, 199, 232),  # wall
    (120, 120, 200),  # ceiling
    (255, 127, 14),   # table
    (44, 160, 44),    # chair
    (214, 39, 40),    # cabinet
    (148, 103, 189),  # sofa
    (23, 190, 207),   # bin
)

VOID = 255  # label of pixels that hit nothing (none in a closed room)

FLOOR, WALL, CEILING, TABLE, CHAIR, CABINET, SOFA, BIN = range(len(CLASS_NAMES))
