"""Camera messages -> RGB arrays: the one decoder of `sensor_msgs` Image / CompressedImage.

Used where images are read from a bag (habc_trainer.episode) and where they arrive live (the
policy node), so training and deployment see the same pixels for the same message. numpy and
cv2 only: no ROS import, the message is any object with the fields of the ROS type (rclpy,
rosbags, or a test's stand-in).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# Raw encodings the contract reads -> channels per pixel (docs/episode-format.md "Topics").
RAW_ENCODINGS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}

# cv2 decode flags of a JPEG: full size, or 1/2 .. 1/8 scale in the DCT domain (coarsest first).
JPEG_FULL_SIZE = cv2.IMREAD_COLOR
_JPEG_REDUCED = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


def _as_uint8(data: Any) -> np.ndarray:
    """A message's `data` field as a flat uint8 array, without a copy where it can be avoided
    (rosbags gives an ndarray, rclpy an array.array or bytes, tests a list)."""
    if isinstance(data, np.ndarray):
        return data.astype(np.uint8, copy=False).reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # not a buffer: a list of ints
        return np.asarray(data, dtype=np.uint8)


def jpeg_reduced_flag(height: int, width: int, size: int) -> int:
    """The cv2 flag of the coarsest JPEG downscale that still leaves >= `size` pixels per side
    (decoding at 1/2 .. 1/8 scale is several times faster than full size, and so is the area
    resize of the smaller image)."""
    for factor, flag in _JPEG_REDUCED:
        if min(height, width) // factor >= size:
            return flag
    return JPEG_FULL_SIZE


def decode_image(msg: Any, *, compressed: bool, jpeg_flag: int = JPEG_FULL_SIZE) -> np.ndarray:
    """Image (`compressed=False`) or CompressedImage -> (h, w, 3) uint8 RGB (a view where it can).

    `jpeg_flag`: cv2 decode flag of a compressed image (see `jpeg_reduced_flag`). Raises
    ValueError, in plain words, for an undecodable JPEG, an unsupported encoding or a buffer too
    small for the size the message states.
    """
    pixels, order = _decoded(msg, compressed, jpeg_flag)
    return _in_rgb(pixels, order)


def decode_square(
    msg: Any, *, compressed: bool, size: int, jpeg_flag: int = JPEG_FULL_SIZE
) -> np.ndarray:
    """`resize_square(decode_image(msg, ...), size)`, the same pixels, faster: the area resize
    runs on the decoder's own buffer (a JPEG's BGR, a raw image's rows) and the channels are
    put in RGB order after, on the small image. The resize is per channel, so the order does
    not change a pixel; on a flipped or padded view cv2 copies the whole image first (a
    160x120 JPEG to 96 px: 212 -> 121 us, measured). The result is contiguous."""
    pixels, order = _decoded(msg, compressed, jpeg_flag)
    small = resize_square(pixels, size)
    if small.ndim == 2:  # cv2 drops a single channel's axis
        return cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)
    # cv2's conversions give a contiguous array, which the episode's stack of frames copies
    # several times faster than the channel-reversed view _in_rgb would be.
    conversion = _TO_RGB.get((order, small.shape[2]))
    return small if conversion is None else cv2.cvtColor(small, conversion)


class CameraDecoder:
    """One camera's images at the training size, each as `decode_square` gives it. The first
    is decoded at full size: it says the camera's resolution, hence the coarsest JPEG scale
    that still leaves `size` pixels a side, at which the others are decoded."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._jpeg_flag: int | None = None

    def __call__(self, msg: Any, *, compressed: bool) -> np.ndarray:
        if self._jpeg_flag is not None:
            return decode_square(
                msg, compressed=compressed, size=self.size, jpeg_flag=self._jpeg_flag
            )
        img = decode_image(msg, compressed=compressed)
        self._jpeg_flag = jpeg_reduced_flag(img.shape[0], img.shape[1], self.size)
        return resize_square(img, self.size)


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Area-resize to size x size (the training resolution; area keeps thin edges visible)."""
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


# How a decoded buffer's channels become RGB.
_BGR, _RGB, _MONO = "bgr", "rgb", "mono"
# (order, channels) -> the cv2 conversion to RGB; none for RGB already.
_TO_RGB = {
    (_BGR, 3): cv2.COLOR_BGR2RGB,
    (_BGR, 4): cv2.COLOR_BGRA2RGB,
    (_RGB, 4): cv2.COLOR_RGBA2RGB,
}


def _decoded(msg: Any, compressed: bool, jpeg_flag: int) -> tuple[np.ndarray, str]:
    """The message's pixels as the decoder or the message holds them, and their order."""
    data = _as_uint8(msg.data)
    if compressed:
        bgr = cv2.imdecode(data, jpeg_flag)
        if bgr is None:
            raise ValueError(f"undecodable compressed image (format {msg.format!r})")
        return bgr, _BGR
    enc = str(msg.encoding).lower()
    channels = RAW_ENCODINGS.get(enc)
    if channels is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if step < w * channels or data.size < h * step:
        raise ValueError(f"image buffer {data.size} B too small for {w}x{h} {enc} step {step}")
    # Rows may be padded to `step` bytes: take each row's pixels, then its colour channels.
    img = data[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if enc == "mono8":
        return img[:, :, 0], _MONO
    return img, _BGR if enc.startswith("bgr") else _RGB


def _in_rgb(pixels: np.ndarray, order: str) -> np.ndarray:
    if order == _MONO:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if order == _BGR:
        return pixels[:, :, 2::-1]
    return pixels[:, :, :3]
