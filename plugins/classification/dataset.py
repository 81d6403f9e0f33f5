"""Classification datasets: an annotation list file, or an ImageNet-style folder tree."""

from __future__ import annotations

from pathlib import Path

from mmengine.dataset import BaseDataset

from up2core.data.bad_samples import BadSamplePolicy, check_files_exist
from up2core.data.image_folder import IMAGE_SUFFIXES, class_folders, images_of
from up2core.data.prepare import prepare_data
from up2core.errors import DataError


def read_class_names(classes: str | list[str] | tuple[str, ...], root: str | None = None
                     ) -> list[str]:
    """Class names from a list, or from a text file with one name per line."""
    if isinstance(classes, (list, tuple)):
        return list(classes)
    path = Path(classes)
    if not path.is_absolute() and root:
        path = Path(root) / path
    if not path.is_file():
        raise FileNotFoundError(f"class-names file '{path}' not found (one name per line)")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"class-names file '{path}' is empty")
    return names


class ImageListDataset(BadSamplePolicy, BaseDataset):
    """Images listed in a text file, one ``<relative path> <label index>`` per line.

    The ImageNet ``train.txt``/``val.txt`` convention, and the Shapes ``classification/*.txt``.

    Args:
        ann_file: the list file (relative to ``data_root``).
        classes: class names, or a file with one per line (relative to ``data_root``).
        data_prefix: ``dict(img='')``: folder the listed paths are relative to.
        prepare: optional ``dict(type='shapes', ...)``: generate the data on first use.
        skip_bad_samples: skip (and record) images that fail to load instead of stopping
            (:mod:`up2core.data.bad_samples`); listed files must exist either way.
    """

    def __init__(self, ann_file: str, classes, data_root: str = '', prepare: dict | None = None,
                 data_prefix: dict | None = None, **kwargs) -> None:
        if prepare is not None:
            prepare_data(data_root, prepare)
        names = read_class_names(classes, data_root)
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=data_prefix or dict(img=''),
                         metainfo=dict(classes=tuple(names)), **kwargs)

    def load_data_list(self) -> list[dict]:
        path = Path(self.ann_file)
        if not path.is_file():
            raise FileNotFoundError(f"annotation list '{path}' not found")
        num_classes = len(self.metainfo['classes'])
        prefix = Path(self.data_prefix.get('img', ''))
        data = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise DataError(f"{path}, line {number}: expected '<image path> <label index>', "
                                 f"got {line!r}")
            label = int(parts[1])
            if not 0 <= label < num_classes:
                raise DataError(f'{path}, line {number}: label {label} is outside the '
                                 f'{num_classes} classes; fix the line or the class names')
            data.append(dict(img_path=str(prefix / parts[0]), gt_label=label,
                             img_id=len(data), line=number))
        if not data:
            raise DataError(f"annotation list '{path}' holds no samples")
        check_files_exist([(d['img_path'], f"line {d.pop('line')}") for d in data], str(path))
        return data


class ImageFolderDataset(BadSamplePolicy, BaseDataset):
    """An ImageNet-style tree: ``<data_root>/<data_prefix.img>/<class name>/<image>``.

    Class names are the sorted sub-folder names unless ``classes`` gives them (then folders not
    named there are an error, listing them).  ``class_names``: readable names, one per
    folder in the same order (the dataset's ``classes`` then; ``classes.txt`` of a user's
    tree).  ``exclude``: image paths to leave out (what ``up2 train --skip-bad-records`` found
    unreadable).
    """

    def __init__(self, data_root: str = '', classes=None, data_prefix: dict | None = None,
                 exclude: list[str] | None = None, class_names=None, **kwargs) -> None:
        self._classes = read_class_names(classes, data_root) if classes is not None else None
        self._exclude = set(exclude or ())
        self._names = read_class_names(class_names, data_root) if class_names else None
        super().__init__(data_root=data_root, data_prefix=data_prefix or dict(img=''),
                         **kwargs)

    def load_data_list(self) -> list[dict]:
        root = Path(self.data_prefix.get('img') or self.data_root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder '{root}' not found")
        folders = class_folders(root)  # hidden folders (.ipynb_checkpoints) are not classes
        names = self._classes or folders
        unknown = sorted(set(folders) - set(names))
        if unknown:
            raise DataError(f"{root}: sub-folders {unknown[:5]} are not in the given classes")
        if self._names is not None and len(self._names) != len(names):
            raise DataError(f'{root}: {len(self._names)} class_names for {len(names)} class '
                            f'folders; give one readable name per folder')
        self._metainfo['classes'] = tuple(self._names or names)
        data = []
        for label, name in enumerate(names):
            for image in images_of(root / name):  # sub-folders too, as torchvision reads them
                if str(image) not in self._exclude:
                    data.append(dict(img_path=str(image), gt_label=label, img_id=len(data)))
        if not data:
            raise DataError(f"image folder '{root}' holds no images ({IMAGE_SUFFIXES})")
        return data
