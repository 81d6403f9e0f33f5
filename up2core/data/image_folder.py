"""What an image-folder tree (``<split>/<class>/.../<image>``) holds: one rule for the readers,
the check and the pictures.

As torchvision's ``ImageFolder``: a class is a top-level folder, its images are every image file
below it, sub-folders included; names starting with a dot (``.ipynb_checkpoints``, ``.DS_Store``,
``._photo.jpg`` from macOS) are not data, wherever they are.

Examples:
    >>> from up2core.data.image_folder import class_folders, images_of
    >>> folders = class_folders('cls/train')                            # doctest: +SKIP
    >>> images_of(Path('cls/train') / folders[0])[:1]                   # doctest: +SKIP
    [PosixPath('cls/train/n0005/000012.png')]
"""

from __future__ import annotations

import os
from pathlib import Path

#: the image files read (what OpenCV, the readers' decoder, takes), in any letter case
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def _hidden(name: str) -> bool:
    return name.startswith('.')


def class_folders(root: str | Path) -> list[str]:
    """The class folders of a split, sorted (their order is the label order)."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not _hidden(p.name))


def images_of(folder: str | Path) -> list[Path]:
    """Every image file under ``folder`` (sub-folders included, hidden ones not), sorted."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _hidden(d)]
        found += [Path(parent) / f for f in files
                  if not _hidden(f) and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


__all__ = ['IMAGE_SUFFIXES', 'class_folders', 'images_of']
