"""Tiny video fixtures for crates/data/tests/integration/video*.rs, and what FFmpeg (PyAV) decodes from them.

    scripts/pytools scripts/make_video_fixtures.py [OUT_DIR]   (default crates/data/tests/fixtures/video)

Writes, each 64x48 (the 16-bit one 32x24), a few KB to tens of KB:
  h264_high_bframes.mp4  libx264 High profile, 2 B-frames (pyramid), CABAC, IDR every 6 frames,
                         12 frames at 30000/1001 fps, moov first (faststart)
  mjpeg.avi              Motion JPEG (yuvj420p), 12 frames at 9 fps
  gray16.avi             uncompressed 16-bit grey (big-endian, FourCC 'b16g'), 32x24, 6 frames
                         at 10 fps
  hevc.mp4               libx265 (for the "not supported" message), 4 frames
  mpeg4.mp4              MPEG-4 Part 2 (same), 4 frames
and next to each FILE a FILE.json with what PyAV itself decodes: frame count, size, frame
rate, codec/profile/B-frames as FFmpeg reports them, and per frame (display order) checksums of
the decoded planes: for H.264 the Y, U, V planes exactly as decoded (H.264 decoding is
bit-exact, so fgstp's planes must match); for MJPEG 8x8 block means of the decoded luma and
each frame's mean RGB (JPEG decoders may differ by IDCT rounding and chroma upsampling, so the
test compares these within a stated tolerance); for 16-bit grey the exact values.

Checksums: sum(v) and sum((i % 65521 + 1) * v) over the plane in raster order (i from 0).
"""

import json
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

W, H = 64, 48


def frames_rgb(n, w=W, h=H, seed=0):
    """Moving gradient + noise + a moving bright blob: every frame differs and shows its index."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for t in range(n):
        base = 40 + 120 * ((xs + 3 * t) % w) / w + 40 * ys / h
        cx, cy = 8 + 3.5 * t, 10 + 2 * t
        blob = 90 * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 30)
        noise = rng.normal(0, 4, (h, w))
        r = base + blob + noise
        g = 0.8 * base + 0.5 * blob + noise
        b = 255 - base + 0.2 * blob + noise
        out.append(np.clip(np.stack([r, g, b], -1), 0, 255).round().astype(np.uint8))
    return out


def checksums(plane):
    v = np.asarray(plane, dtype=np.int64).ravel()
    weights = (np.arange(v.size, dtype=np.int64) % 65521) + 1
    return {"sum": int(v.sum()), "wsum": int((v * weights).sum())}


def tight_plane(frame, index, width, height):
    """A plane without FFmpeg's line padding."""
    plane = frame.planes[index]
    data = np.frombuffer(bytes(plane), dtype=np.uint8).reshape(-1, plane.line_size)
    return data[:height, :width]


def encode(path, codec, rate, frames, pix_fmt, options=None, fmt=None, container_options=None,
           profile=None, bit_rate=None):
    container = av.open(str(path), "w", format=fmt, options=container_options or {})
    stream = container.add_stream(codec, rate=rate, options=options or {})
    stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
    stream.pix_fmt = pix_fmt
    if profile:
        stream.profile = profile
    if bit_rate:
        stream.bit_rate = bit_rate
    for i, img in enumerate(frames):
        if img.ndim == 2 and img.dtype == np.uint16:
            frame = av.VideoFrame.from_ndarray(img, format=pix_fmt)
        else:
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def describe(path, per_frame):
    """What PyAV decodes from `path`, in display order."""
    container = av.open(str(path))
    stream = container.streams.video[0]
    ctx = stream.codec_context
    frames = []
    for frame in container.decode(stream):
        frames.append((frame.pts, per_frame(frame)))
    container.close()
    frames.sort(key=lambda f: f[0])
    rate = Fraction(stream.average_rate) if stream.average_rate else Fraction(0)
    return {
        "file": path.name,
        "frames": len(frames),
        "stream_frames": stream.frames,
        "width": ctx.width,
        "height": ctx.height,
        "fps_num": rate.numerator,
        "fps_den": rate.denominator,
        "codec": ctx.name,
        "profile": ctx.profile,
        "has_b_frames": bool(ctx.has_b_frames),
        "pix_fmt": ctx.pix_fmt,
        "pts": [f[0] for f in frames],
        "per_frame": [f[1] for f in frames],
    }


def yuv_planes(frame):
    w, h = frame.width, frame.height
    cw, ch = (w + 1) // 2, (h + 1) // 2
    y = tight_plane(frame, 0, w, h)
    return {
        "y": checksums(y),
        "u": checksums(tight_plane(frame, 1, cw, ch)),
        "v": checksums(tight_plane(frame, 2, cw, ch)),
        "y_samples": [int(y[0, 0]), int(y[h // 2, w // 2]), int(y[h - 1, w - 1])],
    }


def jpeg_summary(frame):
    """8x8 block means of the decoded luma plane (JPEG's Y, full range) and the frame's mean RGB.

    Luma is what JPEG decoders agree on up to IDCT rounding; colour also depends on how chroma
    is upsampled (FFmpeg repeats samples, others interpolate), which moves sharp colour edges
    by up to a pixel, so colour is summarised over the whole frame only."""
    h, w = frame.height, frame.width
    y = tight_plane(frame, 0, w, h).astype(np.float64)
    blocks = y[: h // 8 * 8, : w // 8 * 8].reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))
    rgb = frame.to_ndarray(format="rgb24").astype(np.float64)
    return {"blocks_8x8_y": np.round(blocks, 3).ravel().tolist(),
            "mean_rgb": np.round(rgb.mean(axis=(0, 1)), 3).tolist()}


def gray16_values(frame):
    g = frame.to_ndarray()
    assert g.dtype == np.uint16, g.dtype
    return {"gray16": checksums(g), "samples": [int(g[0, 0]), int(g[-1, -1])]}


def write_json(path, info):
    Path(str(path) + ".json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"{path}: {path.stat().st_size} bytes, {info['frames']} frames, {info['codec']} "
          f"profile={info['profile']} b_frames={info['has_b_frames']} {info['pix_fmt']}")


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "crates/data/tests/fixtures/video")
    out.mkdir(parents=True, exist_ok=True)
    rgb12 = frames_rgb(12)

    h264 = out / "h264_high_bframes.mp4"
    encode(h264, "libx264", Fraction(30000, 1001), rgb12, "yuv420p",
           options={"crf": "26", "preset": "medium", "bf": "2", "b-pyramid": "normal", "g": "6",
                    "keyint_min": "6", "sc_threshold": "0", "threads": "1"},
           container_options={"movflags": "+faststart"}, profile="High")
    info = describe(h264, yuv_planes)
    assert info["profile"] == "High", info["profile"]
    assert info["has_b_frames"], "the H.264 fixture must have B-frames"
    assert info["frames"] == 12
    write_json(h264, info)

    mjpeg = out / "mjpeg.avi"
    encode(mjpeg, "mjpeg", 9, rgb12, "yuvj420p", options={"q:v": "4"}, bit_rate=2_000_000)
    info = describe(mjpeg, jpeg_summary)
    assert info["frames"] == 12
    write_json(mjpeg, info)

    g16 = []
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[0:24, 0:32]
    for t in range(6):
        g16.append((12000 + 40 * xs + 25 * ys + 300 * t + rng.integers(0, 50, (24, 32))).astype(np.uint16))
    gray16 = out / "gray16.avi"
    # FFmpeg's AVI muxer labels raw 16-bit grey as BI_RGB 16-bit, which every reader (FFmpeg's
    # own included) takes for RGB555; of the 16-bit grey FourCCs its AVI demuxer knows only
    # 'b16g' (big-endian). So: big-endian samples, relabelled 'b16g' in the header.
    encode(gray16, "rawvideo", 10, g16, "gray16be")
    data = bytearray(gray16.read_bytes())
    compression = data.index(b"strf") + 8 + 16
    assert data[compression:compression + 4] == b"\0\0\0\0"
    data[compression:compression + 4] = b"b16g"
    gray16.write_bytes(bytes(data))
    info = describe(gray16, gray16_values)
    assert info["frames"] == 6
    write_json(gray16, info)

    rgb4 = frames_rgb(4)
    hevc = out / "hevc.mp4"
    encode(hevc, "libx265", 25, rgb4, "yuv420p",
           options={"crf": "35", "x265-params": "log-level=error:pools=1:frame-threads=1"})
    write_json(hevc, describe(hevc, lambda f: {}))

    mpeg4 = out / "mpeg4.mp4"
    encode(mpeg4, "mpeg4", 25, rgb4, "yuv420p", options={"q:v": "10"})
    write_json(mpeg4, describe(mpeg4, lambda f: {}))


if __name__ == "__main__":
    main()
