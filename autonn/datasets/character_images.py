"""The practical's characters: the letters a-z rendered at 32x32 from the fonts installed on the
machine (the practical used ~931 Google fonts; Debian's ``fonts-aenigma`` alone gives ~460
families, ``fonts-urw-base35``, ``fonts-texgyre``, ``fonts-dejavu-core`` and
``fonts-liberation`` add classic faces; ``scripts/install_data.sh`` installs them).

Images are dark characters on a white background (1.0), each centred in its patch, as in the
practical's ``imdb``; train and val are split by font *family*, so that no style of a validation
family is seen in training. ``jitter=True`` applies the practical's ``getBatchWithJitter``
(neighbouring letters and shifts, :class:`~autonn.datasets.jitter.NeighbourLetters`).

Font selection (``fonts=``): ``"text"`` (the default) keeps the legible text faces of
:data:`TEXT_FAMILIES` (DejaVu, Liberation, the URW base35 and TeX Gyre text families, about 100
font files in 15 designs when all the packages are installed); many ``fonts-aenigma`` families
are decorative to the point of being illegible, and with them in the data a network learns far
less (about 35% validation error instead of a few percent). ``"all"`` (the behaviour before the
option existed) keeps every font found, aenigma included; a list of paths renders those fonts.
The TeX Gyre faces are remakes of the URW ones (Termes of Nimbus Roman, Heros of Nimbus Sans,
...), so the split puts both in the same set (:data:`CLONES`): validation fonts are unseen
designs, not copies of training ones.
"""

import functools
import glob
import os

import numpy as np

from .base import ArrayDataset
from .jitter import NeighbourLetters

LETTERS = "abcdefghijklmnopqrstuvwxyz"
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/usr/share/texmf/fonts/opentype",
             os.path.expanduser("~/.fonts"), os.path.expanduser("~/.local/share/fonts"))
FONT_PACKAGES = "fonts-aenigma fonts-urw-base35 fonts-texgyre fonts-dejavu-core fonts-liberation"
# Families whose letters are pictures or another alphabet, not Latin letters.
SYMBOL_FAMILIES = ("Standard Symbols PS", "D050000L", "Head-Ding Maker BRK", "Line Dings BRK")
# Legible text families (fonts="text"): upright and italic, regular and bold, of classic faces.
# Left out: script faces (Z003, TeX Gyre Chorus) and the math fonts (copies of text faces).
TEXT_FAMILIES = (
    "DejaVu Sans", "DejaVu Sans Mono", "DejaVu Serif",
    "Liberation Sans", "Liberation Sans Narrow", "Liberation Serif", "Liberation Mono",
    "Nimbus Roman", "Nimbus Sans", "Nimbus Sans Narrow", "Nimbus Mono PS", "C059", "P052",
    "URW Bookman", "URW Gothic",
    "TeX Gyre Termes", "TeX Gyre Heros", "TeX Gyre Heros Cn", "TeX Gyre Cursor",
    "TeX Gyre Schola", "TeX Gyre Pagella", "TeX Gyre Bonum", "TeX Gyre Adventor")
# Families that remake another design; the train/val split keeps each with its original.
CLONES = {"TeX Gyre Termes": "Nimbus Roman", "TeX Gyre Heros": "Nimbus Sans",
          "TeX Gyre Heros Cn": "Nimbus Sans Narrow", "TeX Gyre Cursor": "Nimbus Mono PS",
          "TeX Gyre Schola": "C059", "TeX Gyre Pagella": "P052", "TeX Gyre Bonum": "URW Bookman",
          "TeX Gyre Adventor": "URW Gothic", "TeX Gyre Chorus": "Z003",
          "TeX Gyre Termes Math": "Nimbus Roman", "TeX Gyre Schola Math": "C059",
          "TeX Gyre Pagella Math": "P052", "TeX Gyre Bonum Math": "URW Bookman",
          "TeX Gyre DejaVu Math": "DejaVu Serif", "DejaVu Math TeX Gyre": "DejaVu Serif"}


def characters(*, fonts="text", size=32, val_fraction=0.2, seed=0, jitter=False, min_fonts=2,
               scale=1.0, **options):
    """The letters a-z (labels 0-25) rendered from installed fonts at ``size`` x ``size``.

    fonts : ``"text"`` (default): the fonts of :data:`TEXT_FAMILIES` found in the system font
        folders (:data:`FONT_DIRS`); ``"all"`` (or None): every font found there, the decorative
        ``fonts-aenigma`` ones included; or a list of font file paths (.ttf/.otf).
    val_fraction : fraction of the font families held out for validation (chosen with ``seed``;
        a TeX Gyre remake goes with its URW original, :data:`CLONES`).
    jitter : True for the practical's neighbouring letters and shifts (up to 5 pixels
        horizontally and 2 vertically at 32x32, scaled with ``size``).
    scale : multiplies the mean-subtracted images (the practical's ``256``; the models of
        :mod:`autonn.models` expect the default 1).

    Raises FileNotFoundError naming the Debian packages when fewer than ``min_fonts`` usable
    fonts are found.
    """
    try:
        from PIL import ImageFont  # noqa: F401
    except ImportError:
        raise ImportError("characters: needs Pillow to render fonts; pip install Pillow (or "
                          "autonn[examples])") from None
    if isinstance(fonts, str) and fonts not in ("text", "all"):
        raise ValueError(f"characters: fonts must be 'text', 'all' or a list of font paths, got "
                         f"{fonts!r}")
    system = fonts is None or isinstance(fonts, str)
    paths = find_fonts() if system else tuple(sorted(fonts))
    pixels, families, used = _render_all(paths, int(size))
    if fonts == "text":
        # Keep each style once (fonts-liberation and fonts-liberation2 both ship Liberation).
        from PIL import ImageFont
        styles = [ImageFont.truetype(path, 12).getname() for path in used]
        keep = [k for k, family in enumerate(families)
                if family in TEXT_FAMILIES and styles[k] not in styles[:k]]
        pixels, families, used = pixels[keep], [families[k] for k in keep], [used[k] for k in keep]
    if len(set(families)) < min_fonts:
        raise FileNotFoundError(
            f"characters: found {len(set(families))} usable font families"
            f"{' of TEXT_FAMILIES' if fonts == 'text' else ''} in "
            f"{', '.join(FONT_DIRS) if system else 'the fonts given'}, need at least "
            f"{min_fonts}; install the Debian packages {FONT_PACKAGES} (apt-get install ..., or "
            f"scripts/install_data.sh), or pass fonts= with .ttf/.otf paths")
    count = len(families)
    labels = np.tile(np.arange(len(LETTERS)), count)
    designs = [CLONES.get(family, family) for family in families]
    design_names = sorted(set(designs))
    rng = np.random.default_rng(seed)
    num_val = max(1, int(round(val_fraction * len(design_names))))
    val_designs = set(rng.permutation(design_names)[:num_val].tolist())
    in_val = np.repeat([design in val_designs for design in designs], len(LETTERS))
    train, val = np.flatnonzero(~in_val), np.flatnonzero(in_val)
    options.setdefault("normalization", "image")  # MatConvNet's imageMean
    dataset = ArrayDataset(pixels.reshape(-1, 1, size, size), labels, rng.permutation(train),
                           val, list(LETTERS), name="characters",
                           jitter=NeighbourLetters(max_dx=round(5 * size / 32),
                                                   max_dy=round(2 * size / 32))
                           if jitter is True else (jitter or None),
                           scale=scale, **options)
    # Image k shows letter labels[k] in the font file font_paths[k // 26], of family
    # font_families[k // 26].
    dataset.font_families = list(families)
    dataset.font_paths = list(used)
    dataset.val_families = sorted({f for f, d in zip(families, designs) if d in val_designs})
    return dataset


def find_fonts(dirs=FONT_DIRS):
    """Sorted paths of the .ttf and .otf files under ``dirs``."""
    paths = set()
    for root in dirs:
        for pattern in ("**/*.ttf", "**/*.otf", "**/*.TTF", "**/*.OTF"):
            paths.update(glob.glob(os.path.join(root, pattern), recursive=True))
    return tuple(sorted(paths))


def render_letters(path, size=32):
    """The 26 letters in the font at ``path``: uint8 (26, size, size), white background, each
    glyph centred; None when the font cannot render distinct Latin letters."""
    from PIL import Image, ImageDraw, ImageFont
    try:
        font = ImageFont.truetype(path, int(round(size * 0.75)))
    except OSError:
        return None
    if font.getname()[0] in SYMBOL_FAMILIES:
        return None
    margin = max(1, size // 16)
    patches = np.empty((len(LETTERS), size, size), np.uint8)
    for k, letter in enumerate(LETTERS):
        canvas = Image.new("L", (3 * size, 3 * size), 255)
        ImageDraw.Draw(canvas).text((1.5 * size, 1.5 * size), letter, font=font, fill=0,
                                    anchor="mm")
        box = Image.eval(canvas, lambda v: 255 - v).getbbox()  # the ink's bounding box
        if box is None:
            return None
        glyph = canvas.crop(box)
        fit = size - 2 * margin
        if glyph.width > fit or glyph.height > fit:  # too big: shrink, keeping the aspect
            ratio = fit / max(glyph.width, glyph.height)
            glyph = glyph.resize((max(1, round(glyph.width * ratio)),
                                  max(1, round(glyph.height * ratio))), Image.BILINEAR)
        patch = Image.new("L", (size, size), 255)
        patch.paste(glyph, ((size - glyph.width) // 2, (size - glyph.height) // 2))
        patches[k] = np.asarray(patch)
    # A font without lowercase glyphs draws the same .notdef box for every letter.
    if len({patch.tobytes() for patch in patches}) < len(LETTERS) - 2:
        return None
    return patches


@functools.lru_cache(maxsize=4)
def _render_all(paths, size):
    """Render every usable font once per process (a few seconds for ~600 fonts)."""
    from PIL import ImageFont
    images, families, used = [], [], []
    for path in paths:
        patches = render_letters(path, size)
        if patches is None:
            continue
        images.append(patches)
        families.append(ImageFont.truetype(path, 12).getname()[0])
        used.append(path)
    if not images:
        return np.zeros((0, len(LETTERS), size, size), np.uint8), [], []
    return np.stack(images), families, used
