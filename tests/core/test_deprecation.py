"""The plugin API's version and its deprecated aliases."""

import warnings

import pytest

from up2core.deprecation import (
    DEPRECATIONS,
    PLUGIN_API_VERSION,
    UP2DeprecationWarning,
    api_compatibility,
    deprecated_alias,
)


@pytest.mark.parametrize('declared,status', [
    (PLUGIN_API_VERSION, 'current'), ('1.0', 'older'), ('1.9', 'newer'), ('2.0', 'incompatible'),
    ('0.3', 'incompatible'), (None, 'undeclared'), ('one', 'invalid')])
def test_api_compatibility(declared, status):
    assert api_compatibility(declared, PLUGIN_API_VERSION)[0] == status


def test_an_alias_calls_the_new_name_and_warns_once_with_the_removal_version():
    class Model:
        def new(self, x, scale=1):
            return x * scale

        old = deprecated_alias('Model.old_fixture', 'Model.new', since='1.1', removed_in='2.0')

    model = Model()
    with pytest.warns(UP2DeprecationWarning, match=r'Model\.old_fixture is deprecated since UP2 '
                      r'plugin API 1\.1 and goes away in 2\.0; use Model\.new instead'):
        assert model.old(3, scale=2) == 6
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert model.old(4) == 4  # once per process: no second warning
    assert any(d.old == 'Model.old_fixture' for d in DEPRECATIONS)


def test_the_generalist_keeps_image_segment_as_an_alias():
    import torch

    from tests.plugins.conftest import tiny_model
    from up2core import deprecation

    model = tiny_model({'classification': dict(type='classification', class_names=['a'])})
    deprecation._warned.discard('model.image_segment')
    image = model.encode_image(torch.zeros(1, 3, 64, 64))
    with pytest.warns(UP2DeprecationWarning, match='use model.image_segments instead'):
        segment = model.image_segment(image)
    assert segment.modality == 'image'
    assert torch.equal(segment.tokens, model.image_segments(image)[0].tokens)
