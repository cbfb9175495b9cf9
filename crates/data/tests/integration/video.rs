//! Video files: H.264 MP4, MJPEG and 16-bit AVI fixtures against what FFmpeg (PyAV) decodes from
//! them (`scripts/pytools scripts/fixtures/make_video_fixtures.py`), the refusals, a file cut off
//! part-way, and encode -> mux -> demux -> decode round trips of the writer (one read back by
//! FFmpeg through PyAV).

use std::path::{Path, PathBuf};
use std::process::Command;

use fgstp_data::video::{
    probe, Codec, Container, VideoError, VideoReader, VideoWriter, WriterOptions,
};
use image::{DynamicImage, GrayImage, Rgb, RgbImage};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/video")
        .join(name)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// sum(v) and sum((i % 65521 + 1) * v), as the fixture script computes them.
fn checksums<T: Copy + Into<u64>>(values: &[T]) -> (u64, u64) {
    let mut sum = 0u64;
    let mut wsum = 0u64;
    for (i, &v) in values.iter().enumerate() {
        let v: u64 = v.into();
        sum += v;
        wsum += (i as u64 % 65521 + 1) * v;
    }
    (sum, wsum)
}

fn json_checksums(v: &Value) -> (u64, u64) {
    (v["sum"].as_u64().unwrap(), v["wsum"].as_u64().unwrap())
}

// ---------------------------------------------------------------- H.264 High with B-frames

#[test]
fn h264_high_profile_with_b_frames_matches_ffmpeg_bit_for_bit_in_display_order() {
    let path = fixture("h264_high_bframes.mp4");
    let want = expected("h264_high_bframes.mp4");
    assert_eq!(want["profile"], "High");
    assert_eq!(want["has_b_frames"], true);

    let info = probe(&path).unwrap();
    assert_eq!(
        (info.container, info.codec, info.bit_depth),
        (Container::Mp4, Codec::H264, 8)
    );
    assert_eq!((info.width, info.height), (64, 48));
    assert_eq!(info.frames, want["frames"].as_u64().unwrap() as usize);
    assert_eq!(info.fps, 30000.0 / 1001.0);

    let mut video = VideoReader::open(&path).unwrap();
    assert_eq!(video.info(), &info);
    let per_frame = want["per_frame"].as_array().unwrap();
    let check = |video: &mut VideoReader, i: usize| {
        let yuv = video.frame_yuv(i).unwrap().expect("H.264 gives planes");
        let w = &per_frame[i];
        assert_eq!(
            checksums(&yuv.y),
            json_checksums(&w["y"]),
            "frame {i}: Y plane differs from FFmpeg's"
        );
        assert_eq!(
            checksums(&yuv.u),
            json_checksums(&w["u"]),
            "frame {i}: U plane differs"
        );
        assert_eq!(
            checksums(&yuv.v),
            json_checksums(&w["v"]),
            "frame {i}: V plane differs"
        );
    };
    // Forward, then jumps backwards and forwards across the two GOPs, then look-backs.
    for i in 0..info.frames {
        check(&mut video, i);
        // A triplet window looks back two frames: no re-decoding.
        if i >= 2 {
            check(&mut video, i - 2);
            check(&mut video, i - 1);
        }
    }
    assert_eq!(
        video.decode_count(),
        12,
        "reading forward decodes each frame once"
    );
    for i in [7, 2, 11, 0, 6, 5, 9, 8, 1] {
        check(&mut video, i);
    }
    let mut fresh = VideoReader::open(&path).unwrap();
    for i in [9, 3, 4, 5, 4, 3, 10, 11] {
        check(&mut fresh, i);
    }
    // The iterator gives RGB frames, exactly as many as the container says.
    let frames: Vec<DynamicImage> = video.frames().collect::<Result<_, _>>().unwrap();
    assert_eq!(frames.len(), 12);
    assert!(frames
        .iter()
        .all(|f| matches!(f, DynamicImage::ImageRgb8(i) if i.dimensions() == (64, 48))));
    assert!(matches!(
        video.frame(12),
        Err(VideoError::OutOfRange {
            index: 12,
            frames: 12,
            ..
        })
    ));
}

#[test]
fn h264_cut_off_part_way_gives_the_frames_before_the_break_then_n_of_m() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("h264_high_bframes.mp4")).unwrap();
    let path = dir.path().join("cut.mp4");
    std::fs::write(&path, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let per_frame = expected("h264_high_bframes.mp4")["per_frame"]
        .as_array()
        .unwrap()
        .clone();

    let mut video = VideoReader::open(&path).unwrap();
    assert_eq!(
        video.info().frames,
        12,
        "the count comes from the container"
    );
    let mut good = 0;
    let mut error = None;
    for (i, want) in per_frame.iter().enumerate() {
        match video.frame_yuv(i) {
            Ok(yuv) => {
                let yuv = yuv.unwrap();
                assert_eq!(checksums(&yuv.y), json_checksums(&want["y"]), "frame {i}");
                good += 1;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error
        .expect("a cut file cannot give all 12 frames")
        .to_string();
    assert!(good > 0 && good < 12, "{good} frames before the break");
    assert!(error.contains(&format!("{good} of 12 frames")), "{error}");
    assert!(
        error.contains("cut.mp4") && error.contains("H.264"),
        "{error}"
    );
    // The iterator stops at the same place.
    let mut again = VideoReader::open(&path).unwrap();
    let results: Vec<_> = again.frames().collect();
    assert_eq!(results.len(), good + 1);
    assert!(results[good].is_err());
}

#[test]
fn mp4_without_its_index_says_the_recording_was_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("h264_high_bframes.mp4")).unwrap();
    let path = dir.path().join("nomoov.mp4");
    // ftyp + a bare mdat: what a camera leaves when it dies mid-recording (moov at the end).
    let ftyp_len = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let mut cut = bytes[..ftyp_len].to_vec();
    cut.extend_from_slice(&[0, 0, 0, 0, b'm', b'd', b'a', b't', 1, 2, 3, 4]);
    std::fs::write(&path, cut).unwrap();
    let error = VideoReader::open(&path).err().unwrap().to_string();
    assert!(
        error.contains("nomoov.mp4") && error.contains("cut off"),
        "{error}"
    );
}

// ---------------------------------------------------------------- AVI fixtures

#[test]
fn mjpeg_avi_matches_ffmpeg_within_jpeg_rounding() {
    let path = fixture("mjpeg.avi");
    let want = expected("mjpeg.avi");
    let info = probe(&path).unwrap();
    assert_eq!(
        (info.container, info.codec, info.bit_depth),
        (Container::Avi, Codec::Mjpeg, 8)
    );
    assert_eq!((info.width, info.height, info.frames), (64, 48, 12));
    assert_eq!(info.fps, 9.0);
    let mut video = VideoReader::open(&path).unwrap();
    let (mut worst_luma, mut worst_rgb) = (0f64, 0f64);
    let mut count = 0;
    for (i, frame) in video.frames().enumerate() {
        let rgb = frame.unwrap().to_rgb8();
        // JFIF luma of our RGB (the inverse of the decoder's colour conversion, up to rounding).
        let luma = |x: u32, y: u32| {
            let p = rgb.get_pixel(x, y);
            0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
        };
        let blocks = want["per_frame"][i]["blocks_8x8_y"].as_array().unwrap();
        for by in 0..6 {
            for bx in 0..8 {
                let mean = (0..64)
                    .map(|k| luma(bx * 8 + k % 8, by * 8 + k / 8))
                    .sum::<f64>()
                    / 64.0;
                let theirs = blocks[(by * 8 + bx) as usize].as_f64().unwrap();
                worst_luma = worst_luma.max((mean - theirs).abs());
            }
        }
        for c in 0..3 {
            let mean = rgb.pixels().map(|p| p[c] as f64).sum::<f64>() / (64.0 * 48.0);
            let theirs = want["per_frame"][i]["mean_rgb"][c].as_f64().unwrap();
            worst_rgb = worst_rgb.max((mean - theirs).abs());
        }
        count += 1;
    }
    assert_eq!(count, 12);
    // Two JPEG decoders agree on luma up to IDCT rounding and on colour up to how chroma is
    // upsampled; a wrong frame, order or colour conversion is off by tens of levels.
    assert!(
        worst_luma < 0.5,
        "largest 8x8 luma block mean difference from FFmpeg: {worst_luma}"
    );
    assert!(
        worst_rgb < 1.5,
        "largest frame mean RGB difference from FFmpeg: {worst_rgb}"
    );
}

#[test]
fn sixteen_bit_grey_avi_matches_ffmpeg_exactly() {
    let path = fixture("gray16.avi");
    let want = expected("gray16.avi");
    let info = probe(&path).unwrap();
    assert_eq!(
        (info.container, info.codec, info.bit_depth),
        (Container::Avi, Codec::Gray16, 16)
    );
    assert_eq!((info.width, info.height, info.frames), (32, 24, 6));
    assert_eq!(info.fps, 10.0);
    let mut video = VideoReader::open(&path).unwrap();
    for (i, frame) in video.frames().enumerate() {
        let DynamicImage::ImageLuma16(g) = frame.unwrap() else {
            panic!("frame {i} is not 16-bit grey")
        };
        assert_eq!(
            checksums(g.as_raw()),
            json_checksums(&want["per_frame"][i]["gray16"]),
            "frame {i}"
        );
    }
}

// ---------------------------------------------------------------- refusals

fn refusal(path: &Path) -> String {
    let e1 = probe(path).expect_err("probe refuses").to_string();
    let e2 = VideoReader::open(path)
        .err()
        .expect("open refuses")
        .to_string();
    assert_eq!(e1, e2);
    e1
}

fn assert_conversion_hint(message: &str, path: &Path) {
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(message.contains(name), "names the file: {message}");
    assert!(
        message.contains(&format!("ffmpeg -i {}", path.display()))
            && message.contains("-c:v libx264 -pix_fmt yuv420p")
            && message.contains("frame_%05d.png"),
        "gives the ffmpeg lines: {message}"
    );
}

#[test]
fn hevc_and_mpeg4_part2_are_refused_with_the_conversion() {
    let hevc = fixture("hevc.mp4");
    let message = refusal(&hevc);
    assert!(
        message.contains("H.265/HEVC") && message.contains("MP4"),
        "{message}"
    );
    assert_conversion_hint(&message, &hevc);

    let mpeg4 = fixture("mpeg4.mp4");
    let message = refusal(&mpeg4);
    assert!(message.contains("MPEG-4 Part 2"), "{message}");
    assert_conversion_hint(&message, &mpeg4);
}

#[test]
fn matroska_random_bytes_and_empty_files_are_refused_by_content_not_name() {
    let dir = tempfile::tempdir().unwrap();
    // A Matroska header named .mp4: the bytes decide.
    let mkv = dir.path().join("clip.mp4");
    let mut bytes = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01];
    bytes.extend_from_slice(b"\x42\x82\x88matroska");
    std::fs::write(&mkv, &bytes).unwrap();
    let message = refusal(&mkv);
    assert!(message.contains("Matroska"), "{message}");
    assert_conversion_hint(&message, &mkv);

    let noise = dir.path().join("noise.avi");
    let mut state = 0x1234_5678u32;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(&noise, &random).unwrap();
    let message = refusal(&noise);
    assert!(
        message.contains("not a video fgstp reads") && message.contains("first bytes"),
        "{message}"
    );
    assert!(message.contains("the name says AVI"), "{message}");
    assert_conversion_hint(&message, &noise);

    let empty = dir.path().join("empty.seq");
    std::fs::write(&empty, b"").unwrap();
    assert!(refusal(&empty).contains("empty"));

    let missing = dir.path().join("missing.mp4");
    assert!(matches!(probe(&missing), Err(VideoError::Io { .. })));
}

// ---------------------------------------------------------------- writer round trips

/// Moving gradient + noise + a moving blob: every frame differs from its neighbours.
fn synthetic(index: usize, w: u32, h: u32) -> RgbImage {
    let mut state = 0x9E37_79B9u32.wrapping_mul(index as u32 + 1);
    RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 9) as f64 - 4.0;
        // Periodic, so the moving gradient has no hard edge (4:2:0 chroma would blur it).
        let phase = std::f64::consts::TAU * (x as f64 + 3.0 * index as f64) / w as f64;
        let base = 100.0 + 60.0 * phase.sin() + 40.0 * y as f64 / h as f64;
        let (cx, cy) = (8.0 + 2.5 * index as f64, 10.0 + 1.5 * index as f64);
        let d2 = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2);
        let blob = 90.0 * (-d2 / 30.0).exp();
        let px = |v: f64| (v + noise).clamp(0.0, 255.0).round() as u8;
        // Mostly grey with a coloured blob, like an overlay on thermal footage.
        Rgb([
            px(base + blob),
            px(0.9 * base + 0.3 * blob),
            px(0.7 * base + 30.0 + 0.1 * blob),
        ])
    })
}

/// PSNR of `b`'s top-left `a`-sized region against `a`.
fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let mut se = 0f64;
    for (x, y, p) in a.enumerate_pixels() {
        let q = b.get_pixel(x, y);
        for c in 0..3 {
            se += (p[c] as f64 - q[c] as f64).powi(2);
        }
    }
    let mse = se / (a.width() * a.height() * 3) as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-10)).log10()
}

/// Top-level box types in file order.
fn top_level_boxes(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut pos = 0;
    let mut out = Vec::new();
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned());
        assert!(size >= 8, "box size {size}");
        pos += size;
    }
    assert_eq!(pos, bytes.len(), "boxes tile the file");
    out
}

fn round_trip(w: u32, h: u32, fps: f64, n: usize) -> (PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("rt_{w}x{h}.mp4"));
    let options = WriterOptions {
        qp: 12,
        keyframe_interval: Some(8),
    };
    let mut writer = VideoWriter::create_with(&path, w, h, fps, options).unwrap();
    for i in 0..n {
        writer.push_rgb(&synthetic(i, w, h)).unwrap();
    }
    assert_eq!(writer.frames(), n);
    writer.finish().unwrap();
    // Atomic: only the video is left in the folder.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(top_level_boxes(&path), ["ftyp", "moov", "mdat"]);

    let info = probe(&path).unwrap();
    assert_eq!((info.container, info.codec), (Container::Mp4, Codec::H264));
    assert_eq!(info.frames, n);
    assert_eq!(info.fps, fps, "frame rate kept exactly");
    assert_eq!(
        (info.width, info.height),
        (w + w % 2, h + h % 2),
        "odd sizes are padded to even"
    );
    let mut video = VideoReader::open(&path).unwrap();
    let mut count = 0;
    for (i, frame) in video.frames().enumerate() {
        let frame = frame.unwrap().to_rgb8();
        let p = psnr(&synthetic(i, w, h), &frame);
        assert!(p >= 40.0, "frame {i}: PSNR {p:.1} dB");
        if i > 0 {
            // Order: the previous source frame matches far worse than this one.
            assert!(
                psnr(&synthetic(i - 1, w, h), &frame) < p - 5.0,
                "frame {i} is not in its place"
            );
        }
        if w % 2 == 1 {
            // The padding column repeats the last one.
            let (lx, px) = (w - 1, w);
            let diff: i32 = (0..h)
                .map(|y| {
                    (frame.get_pixel(lx, y)[0] as i32 - frame.get_pixel(px, y)[0] as i32).abs()
                })
                .max()
                .unwrap();
            assert!(diff <= 12, "padding column differs by {diff}");
        }
        count += 1;
    }
    assert_eq!(count, n);
    assert_eq!(video.decode_count(), n);
    (path, dir)
}

#[test]
fn writer_round_trip_even_size_ntsc_rate() {
    round_trip(64, 48, 30000.0 / 1001.0, 20);
}

#[test]
fn writer_round_trip_odd_size_nine_fps() {
    round_trip(65, 49, 9.0, 20);
}

#[test]
fn a_video_scenes_priors_are_found_by_frame_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let mut writer = VideoWriter::create(&path, 32, 16, 25.0).unwrap();
    for _ in 0..4 {
        writer.push_gray(&GrayImage::new(32, 16)).unwrap();
    }
    writer.finish().unwrap();
    let split = fgstp_data::dataset::Split::open_footage(&path).unwrap();
    let scene = &split.scenes[0];
    let priors = dir.path().join("maps");
    // Nothing there yet: the error names the frame, not only the video.
    let err = fgstp_data::prior::prior_path(&priors, scene, 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("maps/clip/frame_00002.png") && err.contains("clip.mp4 (frame_00002)"),
        "{err}"
    );
    // What `infer --save-maps` writes for a video: maps/<scene>/frame_<n>.png.
    std::fs::create_dir_all(priors.join("clip")).unwrap();
    for n in 1..=4 {
        GrayImage::new(32, 16)
            .save(priors.join(format!("clip/frame_{n:05}.png")))
            .unwrap();
    }
    for frame in 0..4 {
        let found = fgstp_data::prior::prior_path(&priors, scene, frame).unwrap();
        assert_eq!(
            found,
            priors.join(format!("clip/frame_{:05}.png", frame + 1))
        );
    }
}

#[test]
fn writer_grey_frames_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mask.mp4");
    let mut writer = VideoWriter::create(&path, 32, 16, 25.0).unwrap();
    for i in 0..5u32 {
        let mask = GrayImage::from_fn(32, 16, |x, _| {
            image::Luma([if x / 4 == i { 255 } else { 0 }])
        });
        writer.push_gray(&mask).unwrap();
    }
    let wrong = writer
        .push_gray(&GrayImage::new(8, 8))
        .err()
        .unwrap()
        .to_string();
    assert!(
        wrong.contains("8x8") && wrong.contains("32x16") && wrong.contains("mask.mp4"),
        "{wrong}"
    );
    writer.finish().unwrap();
    let mut video = VideoReader::open(&path).unwrap();
    for i in 0..5u32 {
        let g = video.frame_luma(i as usize).unwrap();
        // Video levels: 0 -> 16, 255 -> 235.
        for x in 0..32 {
            let v = g.get_pixel(x, 8)[0] as i32;
            let want = if x / 4 == i { 235 } else { 16 };
            assert!((v - want).abs() <= 6, "frame {i} x {x}: {v} vs {want}");
        }
        let rgb = video.frame(i as usize).unwrap().to_rgb8();
        assert!(
            rgb.get_pixel(i * 4 + 2, 8)[0] > 240 && rgb.get_pixel((i * 4 + 18) % 32, 8)[0] < 15
        );
    }

    // Nothing pushed, bad rates, abandoned writers: errors and no files.
    let empty = dir.path().join("empty.mp4");
    let e = VideoWriter::create(&empty, 16, 16, 25.0)
        .unwrap()
        .finish()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no frames"), "{e}");
    assert!(VideoWriter::create(dir.path().join("x.mp4"), 16, 16, 0.0).is_err());
    assert!(VideoWriter::create(dir.path().join("x.mp4"), 16, 16, f64::NAN).is_err());
    let tiny = VideoWriter::create(dir.path().join("x.mp4"), 8, 8, 25.0)
        .err()
        .unwrap()
        .to_string();
    assert!(tiny.contains("8x8") && tiny.contains("16x16"), "{tiny}");
    {
        let mut abandoned =
            VideoWriter::create(dir.path().join("abandoned.mp4"), 16, 16, 25.0).unwrap();
        abandoned.push_rgb(&RgbImage::new(16, 16)).unwrap();
    }
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["mask.mp4"]);
}

/// FFmpeg (through PyAV) reads the writer's output: frame count, size, rate, profile, and the
/// very same decoded pixels as OpenH264.
#[test]
fn ffmpeg_reads_the_written_video() {
    let (path, _dir) = round_trip(65, 49, 30000.0 / 1001.0, 20);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let code = r#"
import sys, json, av, numpy as np
c = av.open(sys.argv[1]); s = c.streams.video[0]
sums = []
for f in c.decode(s):
    p = f.planes[0]
    y = np.frombuffer(bytes(p), np.uint8).reshape(-1, p.line_size)[:f.height, :f.width].astype(np.int64).ravel()
    w = (np.arange(y.size, dtype=np.int64) % 65521) + 1
    sums.append([int(y.sum()), int((y * w).sum())])
r = s.average_rate
print(json.dumps({"frames": len(sums), "width": s.codec_context.width, "height": s.codec_context.height,
                  "num": r.numerator, "den": r.denominator, "profile": s.codec_context.profile,
                  "pix_fmt": s.codec_context.pix_fmt, "y": sums}))
"#;
    let out = Command::new(script.join("pytools"))
        .arg("-c")
        .arg(code)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["frames"], 20);
    assert_eq!(
        (got["width"].as_u64(), got["height"].as_u64()),
        (Some(66), Some(50))
    );
    assert_eq!(
        (got["num"].as_u64(), got["den"].as_u64()),
        (Some(30000), Some(1001))
    );
    assert_eq!(got["profile"], "Constrained Baseline");
    assert_eq!(got["pix_fmt"], "yuv420p");
    let mut video = VideoReader::open(&path).unwrap();
    for i in 0..20 {
        let yuv = video.frame_yuv(i).unwrap().unwrap();
        let (s, w) = checksums(&yuv.y);
        assert_eq!(
            [s, w],
            [
                got["y"][i][0].as_u64().unwrap(),
                got["y"][i][1].as_u64().unwrap()
            ],
            "frame {i}"
        );
    }
}

#[test]
fn readers_and_writers_can_move_to_other_threads() {
    fn is_send<T: Send>() {}
    is_send::<VideoReader>();
    is_send::<VideoWriter>();
}
