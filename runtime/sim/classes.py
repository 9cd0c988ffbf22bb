"""The segmentation classes of the simulated rooms: shape defines the class, appearance does not.

Every class is a kind of geometry (a flat floor, vertical walls, a top on legs, a seat with a
back, a tall or low box, an upholstered block with arms, an upright cylinder); colours and
textures are drawn from one distribution shared by all classes, so an RGB model must read shape
from shading and context while depth shows it directly.
"""
from __future__ import annotations

from mke.runtime.spec import VOID  # noqa: F401  (re-exported: the sim's label of uncovered pixels)

CLASS_NAMES: tuple[str, ...] = (
    "floor",    # 0: the floor and rugs lying on it
    "wall",     # 1: walls, door frames, skirting boards, pictures hung on walls
    "table",    # 2: tops on legs or on a pedestal, dining and coffee tables
    "chair",    # 3: four-legged and office chairs
    "cabinet",  # 4: closed cupboards, chests of drawers, open shelves
    "sofa",     # 5: sofas and armchairs
    "bin",      # 6: upright cylinders: waste bins, barrels, plant pots
)

# Colours for drawing labels (RGB, 0-255); they say nothing about how a class is rendered.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (152, 120, 80),   # floor
    (174, 199, 232),  # wall
    (255, 127, 14),   # table
    (44, 160, 44),    # chair
    (214, 39, 40),    # cabinet
    (148, 103, 189),  # sofa
    (23, 190, 207),   # bin
)

# VOID labels pixels no class covers: the ceiling (0.2 % of pixels from a robot's camera pitched down:
# too rare to learn) and anything outside the room (nothing, in a closed room).

FLOOR, WALL, TABLE, CHAIR, CABINET, SOFA, BIN = range(len(CLASS_NAMES))
CEILING = VOID
