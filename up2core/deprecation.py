"""The version of the task-plugin API, and how parts of it are deprecated.

The plugin API is what a task plugin may rely on: the :class:`~up2core.task.Task` contract, the
:class:`~up2core.task.TaskModel` primitives, :mod:`up2core.regions`' public names, the
likelihood, the hooks of :mod:`up2core.plugin`, :class:`~up2core.errors.UserError` and the
sample fields :class:`~up2core.data.transforms.PackUP2Inputs` writes.  Its version
(:data:`PLUGIN_API_VERSION`) is ``MAJOR.MINOR``:

* a new MINOR adds names, and may rename one while keeping the old name as a *deprecated alias*
  that works and warns once (:class:`UP2DeprecationWarning`) with the new name and the version
  it goes away in;
* a new MAJOR removes what earlier minors deprecated.

A plugin declares the version it was written for with a module attribute next to its hooks
(``UP2_PLUGIN_API = '1.3'``); ``up2 plugins`` shows it and warns when it does not match
(:func:`api_compatibility`).

Examples:
    >>> api_compatibility('1.0', '1.2')[0]
    'older'
    >>> api_compatibility('2.0', '1.2')[0]
    'incompatible'
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The task-plugin API this ``up2core`` implements.
PLUGIN_API_VERSION = '1.6'

#: What each version of the API added, renamed or removed (newest last).
API_HISTORY = {
    '1.0': 'Task.loss/predict; model.encode_image, encode_text, decode, image_segment, '
           'text_segment, likelihood; hooks up2_register, up2_config_dirs',
    '1.1': 'image_segments (global and region segments) replaces image_segment; '
           'proposal_loss, extend; Task.infer, to_result, format_result, draw, infer_requires',
    '1.2': 'region_features, region_boxes, RegionTaskBase, boxes_to_original; per-image '
           'candidates and positive masks in the likelihood; Task.cached_candidates; '
           'UserError; hook up2_infer_arguments; UP2_PLUGIN_API declarations',
    '1.3': 'Task.export_head; ExportHead, CandidateScoresHead, RegionsHead (up2 export)',
    '1.4': 'Task.data_layout and Task.data_options (a dataset file, up2 --data); '
           'Task.data_names; up2core.data.layouts.register_layout',
    '1.5': "GEOMETRIC_TARGETS: a plugin's own targets in image coordinates, moved with their "
           'image by LimitImageSize and RandomFlip (up2core.data.geometry)',
    '1.6': "Task.replay_options: what a finetune's replayed copy of a task shares with the "
           "user's (a caption vocabulary); Task.kept_names_options and keep_names "
           '(--keep-names)',
}


class UP2DeprecationWarning(FutureWarning):
    """A deprecated part of the plugin API was used.

    A ``FutureWarning`` (shown by default, unlike ``DeprecationWarning``): the person who sees it
    is usually the user of a plugin, who should tell its author.
    """


@dataclass(frozen=True)
class Deprecation:
    """One deprecated name of the plugin API."""

    old: str
    new: str
    since: str
    removed_in: str

    @property
    def message(self) -> str:
        return (f'{self.old} is deprecated since UP2 plugin API {self.since} and goes away in '
                f'{self.removed_in}; use {self.new} instead')


#: Every deprecated name, for the documentation and ``up2 plugins``.
DEPRECATIONS: list[Deprecation] = []
_warned: set[str] = set()


def warn_deprecated(deprecation: Deprecation, stacklevel: int = 3) -> None:
    """Warn about ``deprecation`` once per process."""
    if deprecation.old in _warned:
        return
    _warned.add(deprecation.old)
    warnings.warn(deprecation.message, UP2DeprecationWarning, stacklevel=stacklevel)


def deprecated_alias(old: str, new: str, *, since: str, removed_in: str,
                     adapt: Callable[..., Any] | None = None) -> Callable:
    """A method ``old`` that warns once and calls the method ``new`` of the same object.

    Args:
        old, new: qualified names as users write them (``'model.image_segment'``); the part
            after the last dot of ``new`` is the method called.
        since, removed_in: API versions (the rename, and the removal).
        adapt: ``adapt(self, *args, **kwargs)`` instead of a plain call of ``new``, for a
            renamed primitive whose result changed shape.

    Examples:
        >>> class Model:
        ...     def new(self, x):
        ...         return x + 1
        ...     old = deprecated_alias('Model.old', 'Model.new', since='1.1', removed_in='2.0')
    """
    deprecation = Deprecation(old, new, since, removed_in)
    DEPRECATIONS.append(deprecation)
    method = new.rsplit('.', 1)[-1]

    def alias(self, *args, **kwargs):
        warn_deprecated(deprecation)
        if adapt is not None:
            return adapt(self, *args, **kwargs)
        return getattr(self, method)(*args, **kwargs)

    alias.__name__ = old.rsplit('.', 1)[-1]
    alias.__doc__ = f'Deprecated: {deprecation.message}.'
    alias.__deprecated__ = deprecation  # type: ignore[attr-defined]
    return alias


def _parse(version: str) -> tuple[int, int]:
    major, _, minor = str(version).strip().partition('.')
    return int(major), int(minor or 0)


def api_compatibility(declared: str | None, core: str = PLUGIN_API_VERSION
                      ) -> tuple[str, str]:
    """How a plugin written for API ``declared`` fares on this core: ``(status, explanation)``.

    status is ``'current'`` (same version), ``'older'`` (same major, older minor: it runs;
    deprecated names it uses warn), ``'newer'`` (written for a newer minor: names it uses may be
    missing here), ``'incompatible'`` (another major), ``'undeclared'`` or ``'invalid'``.
    """
    if declared is None:
        return 'undeclared', (f'declares no plugin API version (add UP2_PLUGIN_API = '
                              f"'{core}' next to its hooks)")
    try:
        mine, theirs = _parse(core), _parse(declared)
    except ValueError:
        return 'invalid', f"declares UP2_PLUGIN_API = {declared!r}; expected 'MAJOR.MINOR'"
    if theirs == mine:
        return 'current', f'written for plugin API {declared}'
    if theirs[0] != mine[0]:
        return 'incompatible', (f'written for plugin API {declared}, this UP2 implements '
                                f'{core}: names removed or changed between majors will fail')
    if theirs < mine:
        return 'older', (f'written for plugin API {declared}, this UP2 implements {core}: it '
                         f'runs; deprecated names it uses warn')
    return 'newer', (f'written for plugin API {declared}, newer than this UP2 ({core}): '
                     f'upgrade UP2 (names it uses may be missing)')
