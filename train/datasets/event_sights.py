"""The sights of the built-in audio-visual events (`builtin_events`): sprites drawn with OpenCV.

A clip's *scene* is a static background (a light gradient with a few muted shapes on it) and one
sprite per event, each in its own quarter of the image, drawn only while its event happens; a scene
may also hold an *idle prop*: the sprite of a class that makes no sound in the clip, drawn in its
quiet state (a phone with a dark screen, a still bell, a parked car, a cloud without rain, a fan whose
blades do not turn between frames), so a picture alone is not the whole truth either. Sprites move
and animate with time (a talking mouth, flapping wings, a swinging bell, a flashing beacon, turning
fan blades); `render(scene, t, rng)` draws the scene at t seconds into the clip, 4× supersampled and
shrunk by area averaging, then varies the exposure and adds sensor noise.

Sprites are drawn in units u of a tenth of the sprite's box (about ±4.5 u from its centre).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SUPERSAMPLE = 4
QUARTERS = ((0.27, 0.27), (0.73, 0.27), (0.27, 0.73), (0.73, 0.73))  # sprite places, fractions of the side


@dataclass
class Sprite:
    name: str            # class name (event_sounds / builtin_events.CLASS_NAMES)
    centre: np.ndarray   # (x, y) at t = 0, pixels of the supersampled canvas
    velocity: np.ndarray  # (x, y) canvas pixels per second (moving sprites, while active)
    unit: float          # canvas pixels per sprite unit
    start_s: float       # seconds of the clip it is shown; an idle prop: the whole clip
    stop_s: float
    active: bool         # sounding (an event) or quiet (an idle prop)
    style: dict = field(default_factory=dict)


@dataclass
class Scene:
    size: int                   # output pixels, square
    background: np.ndarray      # uint8 (size·4, size·4, 3) RGB, supersampled
    sprites: list[Sprite]
    noise: float                # per-pixel Gaussian noise, a fraction of full scale


# --- drawing helpers -----------------------------------------------------------------------------------

def _pts(c: np.ndarray, u: float, xy, flip: float = 1.0, angle: float = 0.0, pivot=(0.0, 0.0)) -> np.ndarray:
    """Unit coordinates → int32 canvas points (x mirrored by `flip`, rotated by `angle` radians about `pivot`)."""
    p = np.asarray(xy, np.float64).reshape(-1, 2) * [flip, 1.0]
    if angle:
        q = p - pivot
        p = np.stack([q[:, 0] * np.cos(angle) - q[:, 1] * np.sin(angle),
                      q[:, 0] * np.sin(angle) + q[:, 1] * np.cos(angle)], 1) + pivot
    return np.round(c + p * u).astype(np.int32)


def _circle(img, c, u, xy, r, colour, flip=1.0, thickness=-1):
    import cv2

    cv2.circle(img, tuple(_pts(c, u, xy, flip)[0]), max(1, int(round(r * u))), colour, thickness, cv2.LINE_AA)


def _ellipse(img, c, u, xy, axes, colour, angle_deg=0.0, arc=(0, 360), flip=1.0, thickness=-1):
    import cv2

    cv2.ellipse(img, tuple(_pts(c, u, xy, flip)[0]), (max(1, int(round(axes[0] * u))), max(1, int(round(axes[1] * u)))),
                angle_deg * flip, arc[0], arc[1], colour, thickness, cv2.LINE_AA)


def _poly(img, c, u, xy, colour, flip=1.0, angle=0.0, pivot=(0.0, 0.0)):
    import cv2

    cv2.fillPoly(img, [_pts(c, u, xy, flip, angle, pivot)], colour, cv2.LINE_AA)


def _line(img, c, u, a, b, colour, width, flip=1.0):
    import cv2

    p = _pts(c, u, [a, b], flip)
    cv2.line(img, tuple(p[0]), tuple(p[1]), colour, max(1, int(round(width * u))), cv2.LINE_AA)


def _wave(t: float, hz: float, phase: float) -> float:
    return float(np.sin(2 * np.pi * hz * t + phase))


# --- one drawer per class: (img, centre, unit, t, style, active) ---------------------------------------

def draw_speech(img, c, u, t, st, active):
    """A face; its mouth opens and closes while it talks."""
    _circle(img, c, u, (0, 0.3), 4.0, st["skin"])
    _ellipse(img, c, u, (0, -0.6), (4.2, 3.4), st["hair"], arc=(180, 360))
    for x in (-1.5, 1.5):
        _circle(img, c, u, (x, -0.2), 0.55, (30, 30, 40))
    opening = 0.25 + 0.95 * abs(_wave(t, 3.1, st["phase"])) if active else 0.15
    _ellipse(img, c, u, (0, 2.1), (1.6, opening), (120, 20, 30))


def draw_dog(img, c, u, t, st, active):
    """A dog seen from the side; barking, its jaw drops."""
    f, coat, dark = st["flip"], st["coat"], st["dark"]
    for x in (-2.6, -1.4, 1.4, 2.6):
        _line(img, c, u, (x, 1.5), (x, 3.6), coat, 0.7, f)
    _ellipse(img, c, u, (0, 1.0), (3.6, 1.9), coat, flip=f)
    _line(img, c, u, (-3.4, 0.6), (-4.5, -1.2), coat, 0.5, f)
    _circle(img, c, u, (3.3, -1.3), 1.7, coat, f)
    _poly(img, c, u, [(2.5, -2.6), (3.3, -4.3), (3.6, -2.5)], dark, f)
    jaw = 0.9 * abs(_wave(t, 5.0, st["phase"])) if active else 0.0
    _poly(img, c, u, [(4.0, -1.3), (5.2, -1.0 - 0.2 * jaw), (4.6, -0.6 + jaw)], dark, f)
    _circle(img, c, u, (3.7, -1.8), 0.3, (20, 20, 20), f)


def draw_bird(img, c, u, t, st, active):
    """A small bird; in flight its wings beat."""
    f, body = st["flip"], st["body"]
    _poly(img, c, u, [(-2.2, 0.0), (-4.0, -0.8), (-3.8, 1.0)], st["wing"], f)
    _ellipse(img, c, u, (0, 0), (2.6, 1.5), body, flip=f)
    _circle(img, c, u, (2.2, -1.1), 1.2, body, f)
    _poly(img, c, u, [(3.2, -1.4), (4.5, -1.0), (3.2, -0.6)], (240, 150, 20), f)
    _circle(img, c, u, (2.5, -1.4), 0.28, (10, 10, 10), f)
    lift = _wave(t, 6.3, st["phase"]) if active else -0.25
    _poly(img, c, u, [(-1.3, -0.3), (0.9, -0.3), (-0.8, -0.3 - 3.2 * lift)], st["wing"], f)


def draw_bell(img, c, u, t, st, active):
    """A hanging bell; ringing, it swings."""
    angle = 0.45 * _wave(t, 1.4, st["phase"]) if active else 0.0
    pivot = (0.0, -4.2)
    _line(img, c, u, (0, -4.8), (0, -4.2), (90, 70, 40), 0.5)
    _poly(img, c, u, [(-1.2, -3.8), (1.2, -3.8), (2.0, -2.2), (2.4, 1.3), (3.7, 2.9), (-3.7, 2.9), (-2.4, 1.3),
                      (-2.0, -2.2)], st["metal"], angle=angle, pivot=pivot)
    lag = angle * 0.5  # the clapper swings behind the bell
    _circle(img, c, u, (-7.7 * np.sin(lag), pivot[1] + 7.7 * np.cos(lag)), 0.8, st["dark"])


def draw_siren(img, c, u, t, st, active):
    """A beacon; sounding, it flashes red and blue and throws rays."""
    if active:
        lit = (230, 30, 30) if _wave(t, 1.7, st["phase"]) > 0 else (40, 70, 240)
        for k in range(7):
            a = np.pi * (k + 0.5) / 7
            ray = np.array([np.cos(a), -np.sin(a)])
            _line(img, c, u, (0, 1.0) + 2.9 * ray, (0, 1.0) + 4.8 * ray, lit, 0.45)
    else:
        lit = (200, 200, 205)
    _ellipse(img, c, u, (0, 1.2), (2.6, 3.2), lit, arc=(180, 360))
    _poly(img, c, u, [(-3.6, 1.2), (3.6, 1.2), (3.6, 3.6), (-3.6, 3.6)], (60, 60, 70))


def draw_phone(img, c, u, t, st, active):
    """A mobile phone; ringing, its screen lights up and it buzzes."""
    dx = 0.35 * _wave(t, 9.0, st["phase"]) if active else 0.0
    _poly(img, c, u, [(-2.4 + dx, -4.1), (2.4 + dx, -4.1), (2.4 + dx, 4.1), (-2.4 + dx, 4.1)], (25, 25, 30))
    screen = st["screen"] if active else (70, 70, 80)
    _poly(img, c, u, [(-1.8 + dx, -3.3), (1.8 + dx, -3.3), (1.8 + dx, 2.6), (-1.8 + dx, 2.6)], screen)
    _circle(img, c, u, (dx, 3.35), 0.45, (120, 120, 130))
    if active:
        for side in (-1, 1):
            for y in (-1.5, 0.5):
                _line(img, c, u, (side * 3.2, y), (side * 3.8, y + 1.0), (25, 25, 30), 0.35)


def draw_alarm(img, c, u, t, st, active):
    """An alarm clock; ringing, it shakes and its bells throw sparks."""
    dx = 0.5 * _wave(t, 11.0, st["phase"]) if active else 0.0
    case = st["case"]
    for side in (-1, 1):
        _line(img, c, u, (side * 2.0 + dx, 2.6), (side * 2.9 + dx, 4.2), (40, 40, 40), 0.5)
        _circle(img, c, u, (side * 2.3 + dx, -3.2), 1.2, case)
        if active:
            _line(img, c, u, (side * 3.6 + dx, -4.0), (side * 4.6 + dx, -4.8), (40, 40, 40), 0.3)
    _circle(img, c, u, (dx, 0), 3.4, case)
    _circle(img, c, u, (dx, 0), 2.7, (245, 240, 225))
    _line(img, c, u, (dx, 0), (dx, -2.0), (20, 20, 20), 0.35)
    _line(img, c, u, (dx, 0), (1.4 + dx, 0.5), (20, 20, 20), 0.35)


def draw_engine(img, c, u, t, st, active):
    """A car; with its engine running it drives and puffs exhaust."""
    f, paint = st["flip"], st["paint"]
    if active:
        for k in range(3):
            grow = (t * 2.0 + k / 3) % 1.0
            _circle(img, c, u, (-5.0 - 1.2 * grow - 0.6 * k, 1.3 - 0.6 * grow), 0.4 + 0.5 * grow, (150, 150, 155), f)
    _poly(img, c, u, [(-2.6, -0.4), (-1.6, -2.5), (2.0, -2.5), (3.0, -0.4)], paint, f)
    _poly(img, c, u, [(-1.9, -0.6), (-1.2, -2.1), (1.7, -2.1), (2.4, -0.6)], (170, 210, 240), f)
    _poly(img, c, u, [(-4.6, -0.5), (4.6, -0.5), (4.6, 1.9), (-4.6, 1.9)], paint, f)
    for x in (-2.8, 2.8):
        _circle(img, c, u, (x, 2.0), 1.2, (20, 20, 20), f)
        _circle(img, c, u, (x, 2.0), 0.5, (170, 170, 170), f)


def draw_rain(img, c, u, t, st, active):
    """A cloud; raining, blue streaks fall from it."""
    if active:
        for k, x in enumerate(st["drops"]):
            y = -0.5 + 5.0 * ((t * 1.7 + st["drop_phase"][k]) % 1.0)
            _line(img, c, u, (x, y), (x - 0.35, y + 1.3), (40, 90, 220), 0.3)
    grey = st["cloud"]
    for xy, ax in (((-1.9, -2.4), (2.3, 1.5)), ((0.7, -3.1), (2.6, 1.9)), ((2.5, -2.2), (1.9, 1.3)),
                   ((0.2, -1.8), (3.4, 1.2))):
        _ellipse(img, c, u, xy, ax, grey)


def draw_fan(img, c, u, t, st, active):
    """A desk fan; running, its blades turn from one frame to the next."""
    angle = st["angle"] + (st["spin"] * t if active else 0.0)
    _line(img, c, u, (0, 3.5), (0, 4.6), (80, 80, 90), 0.6)
    _poly(img, c, u, [(-2.0, 4.4), (2.0, 4.4), (2.0, 4.9), (-2.0, 4.9)], (80, 80, 90))
    for k in range(3):
        a = angle + 2 * np.pi * k / 3
        _ellipse(img, c, u, (2.0 * np.cos(a), 2.0 * np.sin(a)), (1.9, 0.85), st["blade"], angle_deg=np.degrees(a))
    _circle(img, c, u, (0, 0), 0.7, (50, 50, 60))
    _circle(img, c, u, (0, 0), 3.9, (110, 110, 120), thickness=max(1, int(round(0.3 * u))))


DRAWERS = {"speech": draw_speech, "dog": draw_dog, "bird": draw_bird, "bell": draw_bell, "siren": draw_siren,
           "phone": draw_phone, "alarm": draw_alarm, "engine": draw_engine, "rain": draw_rain, "fan": draw_fan}
MOVING = {"dog": 0.04, "bird": 0.08, "engine": 0.08}  # the fastest drift while active, fractions of the side per second


def _style(name: str, rng: np.random.Generator) -> dict:
    """A sprite's colours and animation phase, drawn around each class's look: each class has colours of
    its own (a violet bird, a teal fan, a blue, orange or silver car …), so even a colour histogram
    tells most of them apart."""
    def jitter(rgb, spread=25):
        return tuple(int(v) for v in np.clip(np.asarray(rgb) + rng.integers(-spread, spread + 1, 3), 0, 255))

    st = {"phase": float(rng.uniform(0, 2 * np.pi)), "flip": float(rng.choice([-1.0, 1.0]))}
    skins = ((240, 200, 170), (200, 150, 110), (140, 95, 60), (90, 60, 40))
    paints = ((40, 90, 200), (235, 120, 30), (125, 125, 135))
    looks = {
        "speech": lambda: {"skin": jitter(skins[rng.integers(len(skins))], 12), "hair": jitter((60, 40, 25), 30)},
        "dog": lambda: {"coat": jitter((150, 100, 55), 35), "dark": jitter((70, 45, 25), 15)},
        "bird": lambda: {"body": jitter((175, 60, 205), 25), "wing": jitter((90, 30, 110), 20)},
        "bell": lambda: {"metal": jitter((215, 170, 40), 20), "dark": jitter((110, 80, 20), 15)},
        "siren": lambda: {},
        "phone": lambda: {"screen": jitter(((60, 230, 120), (80, 220, 240))[rng.integers(2)], 20)},
        "alarm": lambda: {"case": jitter((215, 40, 40), 25)},
        "engine": lambda: {"paint": jitter(paints[rng.integers(len(paints))], 25)},
        "rain": lambda: {"cloud": jitter((150, 155, 165), 20), "drops": list(rng.uniform(-3.5, 3.5, 9)),
                         "drop_phase": list(rng.uniform(0, 1, 9))},
        "fan": lambda: {"blade": jitter((30, 150, 140), 25), "angle": float(rng.uniform(0, 2 * np.pi)),
                        "spin": float(np.deg2rad(rng.uniform(60, 180)) * rng.choice([-1, 1]))},
    }
    st.update(looks[name]())
    return st


def background(size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (size·4, size·4, 3): a light gradient between two muted colours with 2–5 faint shapes."""
    import cv2

    big = size * SUPERSAMPLE
    a, b = rng.uniform(150, 235, 3), rng.uniform(150, 235, 3)
    ramp = np.linspace(0, 1, big)[:, None, None]
    img = np.repeat(a * (1 - ramp) + b * ramp, big, axis=1)
    if rng.random() < 0.5:
        img = img.transpose(1, 0, 2)
    img = np.ascontiguousarray(img.astype(np.uint8))
    overlay = img.copy()
    for _ in range(int(rng.integers(2, 6))):
        colour = tuple(int(v) for v in rng.uniform(90, 230, 3))
        x, y = (int(v) for v in rng.integers(0, big, 2))
        w, h = (int(v) for v in rng.integers(big // 10, big // 3, 2))
        if rng.random() < 0.5:
            cv2.rectangle(overlay, (x, y), (x + w, y + h), colour, -1)
        else:
            cv2.ellipse(overlay, (x, y), (w // 2, h // 2), float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    return cv2.addWeighted(overlay, 0.35, img, 0.65, 0)


def make_scene(events: list[tuple[str, float, float]], idle: str | None, size: int, scale: tuple[float, float],
               noise: float, rng: np.random.Generator) -> Scene:
    """The scene of a clip with `events` ((class, start s, stop s), at most 3 with an idle prop, else 4) and
    an optional idle prop; sprite boxes `scale` × size, each sprite in its own quarter."""
    big = size * SUPERSAMPLE
    bg = background(size, rng)
    names = [(name, a, b, True) for name, a, b in events] + ([(idle, 0.0, np.inf, False)] if idle else [])
    places = rng.permutation(len(QUARTERS))[:len(names)]
    sprites = []
    for (name, a, b, active), q in zip(names, places):
        centre = (np.asarray(QUARTERS[q]) + rng.uniform(-0.04, 0.04, 2)) * big
        unit = rng.uniform(*scale) * big / 10
        speed = MOVING.get(name, 0.0) * big
        velocity = rng.uniform(-speed, speed, 2) * [1.0, 0.4] if active else np.zeros(2)
        sprites.append(Sprite(name, centre, velocity, float(unit), float(a), float(b), active, _style(name, rng)))
    return Scene(size, bg, sprites, noise)


def render(scene: Scene, t: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 (size, size, 3) RGB: the scene at t seconds into its clip (an event's sprite from its start
    to its stop, both included), exposure ±6 % and sensor noise from `rng`."""
    import cv2

    img = scene.background.copy()
    for sp in scene.sprites:
        if sp.start_s - 1e-6 <= t <= sp.stop_s + 1e-6:
            centre = sp.centre + sp.velocity * (t - sp.start_s if sp.active else 0.0)
            DRAWERS[sp.name](img, centre, sp.unit, t, sp.style, sp.active)
    small = cv2.resize(img, (scene.size, scene.size), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = small * rng.uniform(0.94, 1.06) + rng.normal(0, scene.noise * 255, small.shape)
    return np.clip(small + 0.5, 0, 255).astype(np.uint8)
