"""Images of any size: big photos are brought down, tiny ones up, corrupt ones named."""

import numpy as np
import pytest

from up2core.data.transforms import LimitImageSize
from up2core.errors import DataError


@pytest.mark.parametrize('shape,expected', [
    ((3024, 4032), (96, 128)),     # a 12-megapixel photo: longer side to max_side
    ((10, 10), (32, 32)),          # too small for the backbone's strides: up to min_side
    ((16, 400), (32, 128)),        # extreme aspect ratio: squeezed into both bounds
])
def test_out_of_bounds_images_are_rescaled(shape, expected):
    out = LimitImageSize(max_side=128, min_side=32).transform(
        dict(img=np.zeros((*shape, 3), np.uint8), img_shape=shape, ori_shape=shape))
    assert out['img'].shape[:2] == expected and out['img_shape'] == expected
    assert out['ori_shape'] == shape
    assert out['scale_factor'] == pytest.approx((expected[1] / shape[1], expected[0] / shape[0]))


def test_images_within_bounds_are_untouched():
    img = np.zeros((128, 96, 3), np.uint8)
    out = LimitImageSize(max_side=128).transform(dict(img=img, img_shape=(128, 96)))
    assert out['img'] is img and 'scale_factor' not in out


@pytest.fixture(scope='module')
def classifier():
    from up2core.apis import init_model

    return init_model('up2_tiny_shapes_classification')  # untrained: the pipeline is the point


@pytest.mark.parametrize('shape', [(3024, 4032, 3), (8, 8, 3), (20, 300, 3)])
def test_inference_takes_a_huge_or_tiny_image(classifier, shape, tmp_path):
    import mmcv

    from up2core.apis import inference

    path = tmp_path / 'photo.jpg'
    mmcv.imwrite(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8), str(path))
    seen = []
    hook = classifier.data_preprocessor.register_forward_hook(
        lambda module, args, out: seen.append(tuple(out['inputs'].shape[-2:])))
    try:
        result = inference(classifier, str(path), task='classification')
    finally:
        hook.remove()
    assert len(result['classes']) == 5
    assert max(seen[0]) <= 128 and min(seen[0]) >= 32  # the encoders never saw the raw size


def test_a_corrupt_image_is_named(classifier, tmp_path):
    from up2core.apis import inference

    path = tmp_path / 'broken.png'
    path.write_bytes(b'\x89PNG\r\n\x1a\n not really')
    with pytest.raises(DataError, match=r"broken\.png"):
        inference(classifier, str(path), task='classification')
