"""CIELAB colour in numpy: sRGB frames to and from Lab (D65), and the CIEDE2000 colour difference.

Vectorised over any leading shape; the sRGB transfer curve goes through look-up tables in both
directions (256 entries in, 65536 out), so a 540p frame converts in tens of milliseconds on one core.
numpy is imported inside the functions: importing this module stays free for `validate` and `plan`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# sRGB (linear, D65) to CIE XYZ, and the D65 white point (IEC 61966-2-1)
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
_WHITE = (0.95047, 1.0, 1.08883)
_EPSILON, _KAPPA = 216 / 24389, 24389 / 27  # CIE's exact constants for the cube-root knee
_OUT_STEPS = 65535  # linear light quantised this finely before the sRGB curve: under 0.05 levels in the darks


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(sRGB level -> linear, linear step -> sRGB level, RGB->XYZ scaled by the white, its inverse)."""
    import numpy as np

    level = np.arange(256, dtype=np.float64) / 255
    to_linear = np.where(level <= 0.04045, level / 12.92, ((level + 0.055) / 1.055) ** 2.4).astype(np.float32)
    to_srgb = np.clip(np.rint(_encoded() * 255), 0, 255).astype(np.uint8)
    matrix = np.array(_RGB_TO_XYZ, dtype=np.float64) / np.array(_WHITE)[:, None]  # XYZ / white in one step
    return to_linear, to_srgb, matrix.T.astype(np.float32), np.linalg.inv(matrix).T.astype(np.float32)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Lab (float32, L in 0..100) of uint8 sRGB pixels shaped (..., 3)."""
    import numpy as np

    to_linear, _, matrix, _ = _tables()
    xyz = to_linear.take(rgb) @ matrix  # (..., 3): X/Xn, Y/Yn, Z/Zn
    f = np.cbrt(xyz)
    dark = xyz <= _EPSILON  # the few values under the knee: a linear segment (np.where would compute both)
    if dark.any():
        f[dark] = (_KAPPA * xyz[dark] + 16) / 116
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """uint8 sRGB pixels of Lab values shaped (..., 3); colours outside the sRGB gamut are clipped."""
    import numpy as np

    _, to_srgb, _, inverse = _tables()
    f = np.empty_like(lab, dtype=np.float32)
    f[..., 1] = (lab[..., 0] + 16) / 116
    f[..., 0] = f[..., 1] + lab[..., 1] / 500
    f[..., 2] = f[..., 1] - lab[..., 2] / 200
    xyz = f * f * f
    dark = xyz <= _EPSILON
    if dark.any():
        xyz[dark] = (116 * f[dark] - 16) / _KAPPA
    linear = xyz @ inverse
    np.clip(linear, 0.0, 1.0, out=linear)
    linear *= _OUT_STEPS
    linear += 0.5  # rounds on the cast below (values are >= 0)
    return to_srgb.take(linear.astype(np.int32))


def unit_srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """Linear light (float64) of sRGB values given as floats in 0..1, any value between the 8-bit levels too."""
    import numpy as np

    rgb = np.asarray(rgb, dtype=np.float64)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    """Lab of linear-light sRGB colours shaped (..., 3) (float32 stays float32, else float64); the formulas of
    srgb_to_lab, unquantised.

    The matrix is applied one product at a time, not with `@`: each colour's result then never depends on how
    many colours are converted with it (a BLAS kernel may round differently at the edges of its blocks)."""
    import numpy as np

    _, _, matrix, _ = _tables()
    linear = _floats(linear)
    lab = np.empty_like(linear)
    f = []
    for row in range(3):
        xyz = _apply_row(linear, matrix[:, row])  # X/Xn, Y/Yn, Z/Zn
        cube_root = np.cbrt(xyz)
        dark = xyz <= _EPSILON
        if dark.any():
            cube_root[dark] = (_KAPPA * xyz[dark] + 16) / 116
        f.append(cube_root)
    lab[..., 0] = 116 * f[1] - 16
    lab[..., 1] = 500 * (f[0] - f[1])
    lab[..., 2] = 200 * (f[1] - f[2])
    return lab


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """Linear-light sRGB (0..1) of Lab values shaped (..., 3) (float32 stays float32, else float64); outside the
    gamut clipped in linear light, as lab_to_srgb."""
    import numpy as np

    _, _, _, inverse = _tables()
    lab = _floats(lab)
    fy = (lab[..., 0] + 16) / 116
    xyz = np.empty_like(lab)
    for channel, f in enumerate((fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200)):
        cube = f * f * f
        dark = cube <= _EPSILON
        if dark.any():
            cube[dark] = (116 * f[dark] - 16) / _KAPPA
        xyz[..., channel] = cube
    linear = np.empty_like(lab)
    for row in range(3):
        linear[..., row] = _apply_row(xyz, inverse[:, row])
    return np.clip(linear, 0.0, 1.0, out=linear)


def linear_to_unit_srgb(linear: np.ndarray) -> np.ndarray:
    """sRGB floats in 0..1 of linear light in 0..1 (same float type), unquantised: the sRGB curve interpolated
    between _OUT_STEPS + 1 points, within 1e-6 of the formula (no power function per value)."""
    import numpy as np

    linear = _floats(linear)
    position = np.clip(linear, 0.0, 1.0) * _OUT_STEPS
    step = np.minimum(position.astype(np.int32), _OUT_STEPS - 1)
    position -= step  # the fraction between two points
    curve = _encoded().astype(linear.dtype, copy=False)
    low = curve.take(step)
    return low + (curve.take(step + 1) - low) * position


@lru_cache(maxsize=1)
def _encoded() -> np.ndarray:
    """The sRGB curve (float64, 0..1) at _OUT_STEPS + 1 evenly spaced values of linear light."""
    import numpy as np

    linear = np.arange(_OUT_STEPS + 1, dtype=np.float64) / _OUT_STEPS
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def _floats(values: np.ndarray) -> np.ndarray:
    """`values` as float32 when they are, else float64."""
    import numpy as np

    values = np.asarray(values)
    return values if values.dtype == np.float32 else values.astype(np.float64)


def _apply_row(colours: np.ndarray, row: np.ndarray) -> np.ndarray:
    """One row of a 3x3 matrix applied to colours shaped (..., 3), in their float type."""
    weights = row.astype(colours.dtype)
    out = colours[..., 0] * weights[0]
    out += colours[..., 1] * weights[1]
    out += colours[..., 2] * weights[2]
    return out


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 difference between Lab colours shaped (..., 3) (Sharma, Wu and Dalal 2005; kL = kC = kH = 1).

    About 1 is the smallest difference an observer sees side by side; 2-3 shows at a glance; above 5 the
    colours read as different.
    """
    import numpy as np

    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhh = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
    l_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(np.abs(h1p - h2p) > 180, np.where(h_sum < 360, h_sum + 360, h_sum - 360), h_sum) / 2
    h_mean = np.where(c1p * c2p == 0, h_sum, h_mean)
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    rotation = -2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7)) * np.sin(
        np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2))))
    terms = (dl / s_l) ** 2 + (dc / s_c) ** 2 + (dhh / s_h) ** 2 + rotation * (dc / s_c) * (dhh / s_h)
    return np.sqrt(np.maximum(terms, 0.0))
