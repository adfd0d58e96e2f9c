"""habc_core.images: one decoder for bag images (trainer) and live images (policy node)."""

import array

import cv2
import numpy as np
import pytest

from habc_core.images import decode_image, jpeg_reduced_flag


class _Msg:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def _raw(rgb: np.ndarray, encoding: str, data_type=bytes, pad: int = 0) -> _Msg:
    h, w, _ = rgb.shape
    pixels = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1], "rgba8": np.dstack([rgb, rgb[:, :, :1]])}
    rows = pixels[encoding].reshape(h, -1)
    padded = np.hstack([rows, np.zeros((h, pad), np.uint8)])
    data = padded.tobytes()
    if data_type is array.array:
        data = array.array("B", data)  # what rclpy gives
    elif data_type is np.ndarray:
        data = np.frombuffer(data, np.uint8)  # what rosbags gives
    return _Msg(height=h, width=w, step=padded.shape[1], encoding=encoding, data=data)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8"])
@pytest.mark.parametrize("data_type", [bytes, array.array, np.ndarray])
def test_raw_encodings_decode_to_the_same_rgb(encoding, data_type):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    got = decode_image(_raw(rgb, encoding, data_type, pad=3), compressed=False)
    assert got.shape == (5, 7, 3) and np.array_equal(got, rgb)


def test_a_bad_raw_image_is_a_plain_value_error():
    rgb = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="unsupported image encoding"):
        decode_image(_Msg(**{**_raw(rgb, "rgb8").__dict__, "encoding": "16UC1"}), compressed=False)
    short = _Msg(**{**_raw(rgb, "rgb8").__dict__, "height": 9})
    with pytest.raises(ValueError, match="too small"):
        decode_image(short, compressed=False)


def test_jpeg_decodes_to_rgb_at_a_reduced_scale():
    rgb = np.zeros((64, 48, 3), np.uint8)
    rgb[..., 0] = 200  # red
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1])
    assert ok
    msg = _Msg(format="rgb8; jpeg compressed bgr8", data=buf.ravel())
    full = decode_image(msg, compressed=True)
    assert full.shape == (64, 48, 3) and abs(int(full[..., 0].mean()) - 200) < 5
    flag = jpeg_reduced_flag(64, 48, 12)
    assert decode_image(msg, compressed=True, jpeg_flag=flag).shape == (16, 12, 3)
    with pytest.raises(ValueError, match="undecodable"):
        decode_image(_Msg(format="jpeg", data=b"not a jpeg"), compressed=True)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "mono8", "jpeg"])
@pytest.mark.parametrize(("hw", "size"), [((30, 40), 12), ((48, 64), 48), ((20, 20), 32)])
def test_decode_square_is_decode_then_resize_pixel_for_pixel(encoding, hw, size):
    from habc_core.images import decode_square, resize_square

    rgb = np.random.default_rng(1).integers(0, 256, (*hw, 3), dtype=np.uint8)
    if encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1])
        msg, compressed = _Msg(format="jpeg", data=buf.ravel()), True
    elif encoding == "mono8":
        gray = rgb[:, :, 0]
        msg = _Msg(
            height=hw[0],
            width=hw[1],
            step=hw[1] + 5,
            encoding="mono8",
            data=np.hstack([gray, np.zeros((hw[0], 5), np.uint8)]).tobytes(),
        )
        compressed = False
    else:
        msg, compressed = _raw(rgb, encoding, pad=3), False
    want = resize_square(decode_image(msg, compressed=compressed), size)
    got = decode_square(msg, compressed=compressed, size=size)
    assert got.shape == (size, size, 3) and np.array_equal(got, want)
    assert got.flags.c_contiguous


def test_a_camera_decoder_picks_the_jpeg_scale_from_its_first_image():
    from habc_core.images import CameraDecoder, decode_square, resize_square

    rgb = np.random.default_rng(2).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1])
    msg = _Msg(format="jpeg", data=buf.ravel())
    decoder = CameraDecoder(12)
    first, second = decoder(msg, compressed=True), decoder(msg, compressed=True)
    assert np.array_equal(first, resize_square(decode_image(msg, compressed=True), 12))
    flag = jpeg_reduced_flag(64, 48, 12)  # 1/4 scale: 16 x 12
    assert np.array_equal(second, decode_square(msg, compressed=True, size=12, jpeg_flag=flag))
