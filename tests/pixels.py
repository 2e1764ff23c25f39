"""What a person sees in a browser test: the page's screenshot, read back pixel by pixel. A chart that
was handed its data but drew nothing (plotly's WebGL refused by the Content Security Policy, a
script error half-way) leaves the background where the points should be; these helpers tell."""

from __future__ import annotations

import io

from PIL import Image

WHITE = (255, 255, 255)


def screenshot(page) -> Image.Image:
    """The visible viewport, in CSS pixels (the tests' contexts use a device scale factor of 1)."""
    return Image.open(io.BytesIO(page.screenshot())).convert("RGB")


def differs(pixel: tuple[int, int, int], background: tuple[int, int, int], tolerance: int) -> bool:
    return max(abs(a - b) for a, b in zip(pixel, background, strict=True)) > tolerance


def drawn_at(
    image: Image.Image,
    x: float,
    y: float,
    *,
    radius: int = 1,
    background: tuple[int, int, int] = WHITE,
    tolerance: int = 24,
) -> bool:
    """Whether anything other than the background is drawn within `radius` pixels of (x, y)."""
    cx, cy = round(x), round(y)
    for px in range(cx - radius, cx + radius + 1):
        for py in range(cy - radius, cy + radius + 1):
            inside = 0 <= px < image.width and 0 <= py < image.height
            if inside and differs(image.getpixel((px, py)), background, tolerance):
                return True
    return False


def drawn_share(
    image: Image.Image,
    box: dict,
    *,
    background: tuple[int, int, int] = WHITE,
    tolerance: int = 24,
) -> float:
    """The share of pixels inside `box` (a bounding box: x, y, width, height) that differ from the
    background."""
    left, top = max(0, round(box["x"])), max(0, round(box["y"]))
    right = min(image.width, round(box["x"] + box["width"]))
    bottom = min(image.height, round(box["y"] + box["height"]))
    region = image.crop((left, top, right, bottom))
    pixels = list(region.getdata())
    if not pixels:
        return 0.0
    return sum(differs(p, background, tolerance) for p in pixels) / len(pixels)
