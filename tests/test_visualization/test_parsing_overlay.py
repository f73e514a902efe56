"""draw_parsing_overlay / colorize_label: panel layout, colours, frames of different sizes."""
import numpy as np
import pytest

from faceanalysis.visualization import colorize_label, draw_parsing_overlay

PALETTE = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]  # RGB


def test_colorize_label_is_bgr_and_blacks_out_unknown_values():
    label = np.array([[0, 1], [2, 255]])
    colours = colorize_label(label, PALETTE)
    assert colours.dtype == np.uint8 and colours.shape == (2, 2, 3)
    np.testing.assert_array_equal(colours[0, 1], [0, 0, 255])  # red in BGR
    np.testing.assert_array_equal(colours[1, 0], [0, 255, 0])
    np.testing.assert_array_equal(colours[1, 1], [0, 0, 0])


def test_panels_image_gt_prediction():
    image = np.full((40, 80, 3), 100, np.uint8)
    gt = np.zeros((40, 80), np.int64)
    gt[10:20, 10:30] = 1
    pred = np.zeros_like(gt)
    pred[10:20, 10:30] = 2
    panel = draw_parsing_overlay(image, gt, pred, PALETTE, alpha=0.5, captions=False)
    assert panel.shape == (40, 240, 3) and panel.dtype == np.uint8
    np.testing.assert_array_equal(panel[:, :80], image)
    np.testing.assert_array_equal(panel[15, 80 + 15], [50, 50, 178])  # 0.5 grey + 0.5 red
    np.testing.assert_array_equal(panel[15, 160 + 15], [50, 178, 50])  # 0.5 grey + 0.5 green
    np.testing.assert_array_equal(panel[35, 160 + 70], [50, 50, 50])  # background: black

    no_gt = draw_parsing_overlay(image, None, pred, PALETTE, captions=True)
    assert no_gt.shape == (40, 160, 3)


def test_image_is_resized_to_the_label_frame():
    """CelebAMask-HQ: 1024 images, 512 labels; the panels are drawn in the label frame."""
    image = np.zeros((64, 64, 3), np.uint8)
    label = np.zeros((32, 32), np.int64)
    assert draw_parsing_overlay(image, label, label, PALETTE).shape == (32, 96, 3)
    with pytest.raises(ValueError, match='same shape'):
        draw_parsing_overlay(image, label, np.zeros((16, 16), np.int64), PALETTE)
