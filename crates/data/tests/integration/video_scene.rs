//! Scenes stored as one video file (`<scene>/video.mp4` + `masks/frame_00001.png`): they read,
//! stream and train exactly like the same frames stored as PNGs, decode each frame once when
//! read in order, and every problem is an error naming the file.

use crate::common;

use std::path::{Path, PathBuf};

use common::{frame_image, mask_image};
use fgstp_data::extract::{extract_frames, FrameSelection};
use fgstp_data::video::{VideoReader, VideoWriter, WriterOptions};
use fgstp_data::video_scene::DecodePool;
use fgstp_data::{
    DataConfig, DataError, EvalLoader, ImageSize, Masks, SixteenBit, Split, SynthConfig,
    TrainLoader, TrainSampling,
};
use image::{DynamicImage, GrayImage};

const W: u32 = 48;
const H: u32 = 32;

fn video_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/video")
        .join(name)
}

/// An H.264 MP4 of `n` frames whose pixels encode the frame index, with a key frame every
/// `keyframes` frames (so that reading out of order seeks).
fn write_video(path: &Path, n: usize, keyframes: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let options = WriterOptions {
        keyframe_interval: Some(keyframes),
        ..WriterOptions::default()
    };
    let mut writer = VideoWriter::create_with(path, W, H, 25.0, options).unwrap();
    for i in 0..n {
        writer.push_rgb(&frame_image(i * 3, W, H)).unwrap();
    }
    writer.finish().unwrap();
}

/// `root/<split>/<scene>/video.mp4` with masks for the 1-based frame numbers `masked`.
fn video_scene(root: &Path, split: &str, scene: &str, n: usize, masked: &[usize]) -> PathBuf {
    let dir = root.join(split).join(scene);
    write_video(&dir.join("video.mp4"), n, 10);
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    for &m in masked {
        mask_image(W, H)
            .save(dir.join("masks").join(format!("frame_{m:05}.png")))
            .unwrap();
    }
    dir
}

/// The same scene with its frames as PNGs (extracted from the video, so the pixels are the
/// decoded ones) and the same masks.
fn as_frames(video_dir: &Path, out_dir: &Path) {
    let done = extract_frames(
        &video_dir.join("video.mp4"),
        out_dir,
        &FrameSelection::default(),
        |_| (),
        &|| (),
    )
    .unwrap();
    assert!(done.broken.is_none());
    std::fs::create_dir_all(out_dir.join("masks")).unwrap();
    for entry in std::fs::read_dir(video_dir.join("masks")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, out_dir.join("masks").join(path.file_name().unwrap())).unwrap();
    }
}

fn cfg(root: &Path) -> DataConfig {
    DataConfig {
        root: root.to_path_buf(),
        train_size: ImageSize::square(32),
        eval_batch_size: 4,
        threads: 2,
        ..DataConfig::default()
    }
}

fn message(err: DataError) -> String {
    err.to_string()
}

#[test]
fn a_video_scene_lists_its_frames_and_reads_them_as_the_decoder_gives_them() {
    let tmp = tempfile::tempdir().unwrap();
    video_scene(tmp.path(), "train", "cam", 40, &[1, 5, 40]);
    let split = Split::open(tmp.path(), "train", Masks::Required).unwrap();
    let scene = &split.scenes[0];
    assert_eq!((scene.width, scene.height, scene.frames.len()), (W, H, 40));
    assert_eq!(scene.frames[0].name, "frame_00001");
    assert_eq!(scene.frames[39].stem(), "frame_00040");
    let masked: Vec<usize> = (0..40)
        .filter(|&i| scene.frames[i].mask.is_some())
        .collect();
    assert_eq!(masked, vec![0, 4, 39]);
    assert!(scene.video().is_some());

    let mut reader = VideoReader::open(&scene.dir.join("video.mp4")).unwrap();
    let want: Vec<_> = (0..40)
        .map(|i| reader.frame(i).unwrap().to_rgb8())
        .collect();
    // In order, backwards and shuffled (seeks to key frames): the same pixels.
    let mut order: Vec<usize> = (0..40).collect();
    order.extend((0..40).rev());
    order.extend((0..40).map(|i| (i * 17 + 5) % 40));
    for i in order {
        assert!(
            scene.load_frame(i, SixteenBit::PerVideo).unwrap() == want[i],
            "frame {i}"
        );
    }
    let err = scene.load_raw_frame(40).unwrap_err();
    assert!(message(err).contains("out of range"));
}

#[test]
fn reading_a_video_scene_in_order_decodes_each_frame_once_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    video_scene(tmp.path(), "test", "cam", 150, &[2]);
    let cfg = cfg(tmp.path());

    // Streaming inference: one frame at a time, neighbours looked back to at the end.
    let loader = EvalLoader::open(&cfg, "test").unwrap();
    for sample in loader.samples() {
        for &f in &sample.frames {
            drop(loader.model_input(0, f).unwrap());
        }
    }
    let video = loader.split().scenes[0].video().unwrap();
    assert_eq!(video.decode_count(), 150, "each frame decoded once");

    // Batches: the frames of a batch are loaded in parallel, in any order.
    let loader = EvalLoader::open(&cfg, "test").unwrap();
    for batch in loader.batches() {
        batch.unwrap();
    }
    let video = loader.split().scenes[0].video().unwrap();
    assert_eq!(
        video.decode_count(),
        150,
        "parallel loading still decodes each frame once"
    );

    // What stays in memory is bounded, whatever the length.
    assert_eq!(video.pool().frames_held(), DecodePool::MAX_FRAMES);
    assert!(video.pool().readers_held() <= DecodePool::MAX_IDLE_READERS);
}

#[test]
fn a_video_scene_streams_and_trains_exactly_like_its_frames_as_pngs() {
    let tmp = tempfile::tempdir().unwrap();
    let video_root = tmp.path().join("video");
    let frames_root = tmp.path().join("frames");
    for (scene, n) in [("a", 9), ("b", 12)] {
        let dir = video_scene(&video_root, "train", scene, n, &[1, 2, 3, 5, 8, 9]);
        as_frames(&dir, &frames_root.join("train").join(scene));
    }
    let sampling = TrainSampling {
        batch_size: 3,
        seed: 7,
        empty_masks: fgstp_data::EmptyMasks::Reference,
    };
    let train = |root: &Path| {
        let loader = TrainLoader::open(&cfg(root), sampling).unwrap();
        let batches: Vec<_> = (0..2)
            .flat_map(|epoch| loader.epoch(epoch).map(Result::unwrap).collect::<Vec<_>>())
            .collect();
        batches
    };
    let (from_video, from_frames) = (train(&video_root), train(&frames_root));
    assert_eq!(from_video.len(), from_frames.len());
    for (a, b) in from_video.iter().zip(&from_frames) {
        for k in 0..3 {
            assert!(a.frames[k].equal(&b.frames[k]), "augmented frames differ");
        }
        assert!(a.mask.equal(&b.mask));
        let names = |batch: &fgstp_data::Batch| -> Vec<String> {
            batch
                .samples
                .iter()
                .map(|s| s.names[0].trim_end_matches(".png").to_string())
                .collect()
        };
        assert_eq!(names(a), names(b));
    }

    let eval = |root: &Path| {
        let loader = EvalLoader::open(&cfg(root), "train").unwrap();
        loader.batches().map(Result::unwrap).collect::<Vec<_>>()
    };
    for (a, b) in eval(&video_root).iter().zip(&eval(&frames_root)) {
        for k in 0..3 {
            assert!(a.frames[k].equal(&b.frames[k]));
        }
        assert_eq!(a.masks, b.masks);
    }
}

#[test]
fn a_sixteen_bit_video_is_stretched_over_the_whole_file_like_its_16_bit_pngs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("test/ir");
    std::fs::create_dir_all(&dir).unwrap();
    // An AVI under an .seq name: the format comes from the bytes.
    std::fs::copy(video_fixture("gray16.avi"), dir.join("video.seq")).unwrap();
    let split = Split::open(tmp.path(), "test", Masks::Optional).unwrap();
    let scene = &split.scenes[0];
    assert_eq!(scene.frames[0].color, image::ColorType::L16);

    let mut reader = VideoReader::open(&dir.join("video.seq")).unwrap();
    let raw: Vec<DynamicImage> = reader.frames().map(Result::unwrap).collect();
    let lo = raw
        .iter()
        .map(|f| *f.to_luma16().iter().min().unwrap())
        .min();
    let hi = raw
        .iter()
        .map(|f| *f.to_luma16().iter().max().unwrap())
        .max();
    let range = (lo.unwrap(), hi.unwrap());
    assert!(range.0 < range.1);
    assert_eq!(scene.video_range().unwrap(), range);
    for (i, f) in raw.iter().enumerate() {
        let want = fgstp_data::decode::to_rgb8(f, Some(range));
        assert!(scene.load_frame(i, SixteenBit::PerVideo).unwrap() == want);
    }

    // The same frames extracted as 16-bit PNGs give the same 8-bit frames.
    let pngs = tmp.path().join("png/ir");
    extract_frames(
        &dir.join("video.seq"),
        &pngs,
        &FrameSelection::default(),
        |_| (),
        &|| (),
    )
    .unwrap();
    let first = image::open(pngs.join("images/frame_00001.png")).unwrap();
    assert!(matches!(first, DynamicImage::ImageLuma16(_)));
    let as_pngs = Split::open(tmp.path(), "png", Masks::Optional).unwrap();
    let png_scene = &as_pngs.scenes[0];
    for i in 0..raw.len() {
        assert!(
            png_scene.load_frame(i, SixteenBit::PerVideo).unwrap()
                == scene.load_frame(i, SixteenBit::PerVideo).unwrap(),
            "frame {i}"
        );
    }
}

#[test]
fn a_video_cut_off_part_way_says_n_of_m_and_gives_the_frames_before_the_break() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = video_scene(tmp.path(), "test", "cut", 30, &[]);
    let path = dir.join("video.mp4");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 6 / 10]).unwrap();
    // The index is intact (written first), so the split opens with all 30 frames announced.
    let split = Split::open(tmp.path(), "test", Masks::Required).unwrap();
    let scene = &split.scenes[0];
    assert_eq!(scene.frames.len(), 30);
    let err = message(split.verify_pixels(&|| ()).unwrap_err());
    assert!(
        err.contains("video.mp4") && err.contains("of 30 frames") && err.contains("ffmpeg"),
        "{err}"
    );
    let readable: usize = err
        .split("breaks after ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(readable > 0 && readable < 30, "{err}");
    for i in 0..readable {
        scene.load_frame(i, SixteenBit::PerVideo).unwrap();
    }
    let err = message(
        scene
            .load_frame(readable, SixteenBit::PerVideo)
            .unwrap_err(),
    );
    assert!(err.contains(&format!("{readable} of 30 frames")), "{err}");
}

#[test]
fn video_scene_mistakes_are_named_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = video_scene(tmp.path(), "train", "cam", 6, &[1]);
    let open = || Split::open(tmp.path(), "train", Masks::Required);

    // A mask past the last frame, or not named after a frame number.
    for bad in ["frame_00007.png", "00001.png", "frame_1.png"] {
        let path = dir.join("masks").join(bad);
        mask_image(W, H).save(&path).unwrap();
        let err = open().unwrap_err();
        assert!(matches!(err, DataError::MaskNotAVideoFrame { .. }), "{bad}");
        let msg = message(err);
        assert!(
            msg.contains(bad) && msg.contains("frame_00006.png") && msg.contains("1-based"),
            "{msg}"
        );
        std::fs::remove_file(path).unwrap();
    }
    // A mask of another size.
    GrayImage::new(W + 2, H)
        .save(dir.join("masks/frame_00002.png"))
        .unwrap();
    let msg = message(open().unwrap_err());
    assert!(
        msg.contains("frame_00002.png") && msg.contains("video.mp4"),
        "{msg}"
    );
    std::fs::remove_file(dir.join("masks/frame_00002.png")).unwrap();
    open().unwrap();

    // No masks/ for training; fine for inference.
    std::fs::rename(dir.join("masks"), tmp.path().join("masks-away")).unwrap();
    assert!(matches!(
        open().unwrap_err(),
        DataError::MissingMasks { .. }
    ));
    Split::open(tmp.path(), "train", Masks::Optional).unwrap();
    std::fs::rename(tmp.path().join("masks-away"), dir.join("masks")).unwrap();

    // Two videos.
    std::fs::copy(dir.join("video.mp4"), dir.join("video.avi")).unwrap();
    let msg = message(open().unwrap_err());
    assert!(
        msg.contains("video.avi") && msg.contains("keep one"),
        "{msg}"
    );
    std::fs::remove_file(dir.join("video.avi")).unwrap();

    // A codec fgstp does not decode: the video error, with the conversion command.
    std::fs::copy(video_fixture("hevc.mp4"), dir.join("video.mp4")).unwrap();
    let err = open().unwrap_err();
    assert!(matches!(err, DataError::Video(_)));
    let msg = message(err);
    assert!(
        msg.contains("video.mp4") && msg.contains("HEVC") && msg.contains("ffmpeg"),
        "{msg}"
    );

    // Too short for a sample.
    write_video(&dir.join("video.mp4"), 2, 10);
    std::fs::remove_dir_all(dir.join("masks")).unwrap();
    std::fs::create_dir(dir.join("masks")).unwrap();
    let err = open().unwrap_err();
    assert!(matches!(err, DataError::TooFewFrames { count: 2, .. }));
    assert!(message(err).contains("video.mp4"));

    // Neither images/ nor a video.
    std::fs::remove_file(dir.join("video.mp4")).unwrap();
    let msg = message(open().unwrap_err());
    assert!(msg.contains("images") && msg.contains("video.mp4"), "{msg}");
}

#[test]
fn footage_may_be_a_video_file_a_video_scene_or_a_split_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = video_scene(tmp.path(), "test", "cam", 5, &[]);
    let file = Split::open_footage(&dir.join("video.mp4")).unwrap();
    assert_eq!(file.scenes.len(), 1);
    assert_eq!(file.scenes[0].name, "video");
    assert_eq!(file.scenes[0].dir, dir.join("video.mp4"));
    assert_eq!(file.scenes[0].frames[4].name, "frame_00005");
    let scene = Split::open_footage(&dir).unwrap();
    assert_eq!(
        (scene.scenes.len(), scene.scenes[0].name.as_str()),
        (1, "cam")
    );
    video_scene(tmp.path(), "test", "cam2", 4, &[]);
    let split = Split::open_footage(&tmp.path().join("test")).unwrap();
    let names: Vec<_> = split.scenes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cam", "cam2"]);
    // A folder given as `..` (or `.`) is the folder it resolves to.
    let split = Split::open_footage(&tmp.path().join("test/cam/..")).unwrap();
    assert_eq!((split.name.as_str(), split.scenes.len()), ("test", 2));
    let scene = Split::open_footage(&dir.join("masks/..")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scene.scenes[0].name, "cam");
    let err = Split::open_footage(&tmp.path().join("nope.mp4")).unwrap_err();
    assert!(message(err).contains("video file"));
}

#[test]
fn synth_videos_hold_every_scene_and_read_like_its_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        scenes: 3,
        frames: 5,
        width: 32,
        height: 24,
        seed: 1,
        bit_depth: 16,
        ..SynthConfig::default()
    };
    fgstp_data::generate(&cfg, tmp.path(), &|| ()).unwrap();
    let n = fgstp_data::synth::video::write_scene_videos(tmp.path(), &cfg, &|| ()).unwrap();
    assert_eq!(n, 3);
    let dir = tmp.path().join("val/scene_001");
    let info = fgstp_data::video::probe(&dir.join("video.mp4")).unwrap();
    assert_eq!((info.frames, info.width, info.height), (5, 32, 24));
    assert_eq!(info.fps, fgstp_data::synth::video::SYNTH_FPS);
    // images/ wins while it is there; its frames and masks are named like the video's.
    let split = Split::open(tmp.path(), "val", Masks::Required).unwrap();
    let scene = &split.scenes[0];
    assert!(scene.video().is_none());
    assert_eq!(scene.frames[0].name, "frame_00001.png");
    let pngs: Vec<_> = (0..5)
        .map(|i| scene.load_frame(i, SixteenBit::PerVideo).unwrap())
        .collect();
    // Without images/, the video with the same masks; pixels close to the PNGs' (H.264).
    std::fs::rename(dir.join("images"), tmp.path().join("away")).unwrap();
    let split = Split::open(tmp.path(), "val", Masks::Required).unwrap();
    let scene = &split.scenes[0];
    assert!(scene.video().is_some());
    assert_eq!(scene.mask_count(), 5);
    for (i, png) in pngs.iter().enumerate() {
        let video = scene.load_frame(i, SixteenBit::PerVideo).unwrap();
        let mse: f64 = png
            .as_raw()
            .iter()
            .zip(video.as_raw())
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum::<f64>()
            / png.as_raw().len() as f64;
        let psnr = 10.0 * (255.0f64.powi(2) / mse.max(1e-9)).log10();
        assert!(psnr > 35.0, "frame {i}: PSNR {psnr:.1} dB");
    }
}
