"""Preprocessings as data: each data set's, applied to an image file."""
import cv2
import numpy as np
import pytest

from gluon_atac.data.imagenet import preprocess_image
from gluon_atac.data.preprocessing import describe, prepare_image, preprocessing_for
from gluon_atac.errors import DataError


@pytest.fixture
def image_file(tmp_path):
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, np.random.RandomState(0).randint(0, 255, (48, 40, 3)).astype(np.uint8))
    return path


def test_imagenet_resizes_the_short_side_and_crops_the_centre(image_file):
    spec = preprocessing_for('imagenet', 24, crop_ratio=0.75)
    assert (spec['resize'], spec['resize_to'], spec['crop'], spec['pad']) == ('short', 32, 24, 0)
    shown, x = prepare_image(image_file, spec)
    assert shown.shape == (24, 24, 3) and x.shape == (1, 3, 24, 24)
    expected = (shown[..., 0] / 255.0 - 123.68 / 255) / (58.393 / 255)
    np.testing.assert_allclose(x[0, 0], expected, rtol=1e-5, atol=1e-5)
    assert describe(spec).startswith('resize short side to 32, centre crop 24')
    # What the validation pipeline feeds an ImageNet model.
    np.testing.assert_allclose(x, preprocess_image(image_file, 24, 0.75).asnumpy(),
                               rtol=1e-5, atol=1e-5)


def test_cifar_squeezes_to_32_and_mnist5k_pads_a_28_pixel_digit(image_file):
    shown, x = prepare_image(image_file, preprocessing_for('cifar10'))
    assert shown.shape == (32, 32, 3)
    np.testing.assert_allclose(x[0, 2], (shown[..., 2] / 255.0 - 0.4465) / 0.2010, rtol=1e-5,
                               atol=1e-5)
    spec = preprocessing_for('mnist5k')
    assert (spec['resize_to'], spec['pad'], spec['grayscale']) == (28, 2, True)
    shown, x = prepare_image(image_file, spec)
    assert shown.shape == (32, 32, 3)
    assert not shown[:2].any() and not shown[:, -2:].any()       # the zero border
    assert (shown[..., 0] == shown[..., 2]).all()                 # gray
    np.testing.assert_allclose(x[0, 1, 0, 0], -0.1307 / 0.3081, rtol=1e-6)


def test_missing_and_unreadable_images_are_named(tmp_path):
    spec = preprocessing_for('cifar10')
    with pytest.raises(FileNotFoundError, match='image not found'):
        prepare_image(str(tmp_path / 'absent.jpg'), spec)
    (tmp_path / 'text.jpg').write_text('not an image')
    with pytest.raises(DataError) as err:
        prepare_image(str(tmp_path / 'text.jpg'), spec)
    assert str(err.value) == ('refused image %s: neither JPEG nor PNG, the formats whose '
                              'size is checked before decoding' % (tmp_path / 'text.jpg'))
