//! AVI and FLIR SEQ files built byte by byte in the test (no public tiny samples exist for
//! most of these layouts), read back and compared with the pixels that went in.

use std::path::Path;

use fgstp_data::video::{probe, Codec, Container, VideoReader};
use image::{DynamicImage, ImageBuffer, Luma};

// ---------------------------------------------------------------- AVI builder

fn chunk(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
    out
}

fn list(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut data = kind.to_vec();
    data.extend(body);
    chunk(b"LIST", &data)
}

struct AviSpec<'a> {
    width: i32,
    /// Negative: top-down rows.
    height: i32,
    bit_count: u16,
    compression: [u8; 4],
    /// BGRA palette entries.
    palette: Vec<[u8; 4]>,
    frames: &'a [Vec<u8>],
    idx1: bool,
    rate: u32,
    scale: u32,
    /// Frames announced in the headers (defaults to frames.len()).
    declared: Option<u32>,
    /// Bytes after the frames in the `movi` list.
    movi_tail: Vec<u8>,
}

fn build_avi(spec: &AviSpec) -> Vec<u8> {
    let n = spec.declared.unwrap_or(spec.frames.len() as u32);
    let mut avih = Vec::new();
    for v in [
        1_000_000 * spec.scale / spec.rate,
        0,
        0,
        if spec.idx1 { 0x10 } else { 0 },
        n,
        0,
        1,
        0,
        spec.width as u32,
        spec.height.unsigned_abs(),
        0,
        0,
        0,
        0,
    ] {
        avih.extend(v.to_le_bytes());
    }
    let mut strh = b"vids".to_vec();
    strh.extend(spec.compression);
    for v in [0u32, 0, 0, spec.scale, spec.rate, 0, n, 0, 0, 0] {
        strh.extend(v.to_le_bytes());
    }
    strh.extend([0u8; 8]);
    let mut strf = Vec::new();
    strf.extend(40u32.to_le_bytes());
    strf.extend(spec.width.to_le_bytes());
    strf.extend(spec.height.to_le_bytes());
    strf.extend(1u16.to_le_bytes());
    strf.extend(spec.bit_count.to_le_bytes());
    strf.extend(spec.compression);
    strf.extend(0u32.to_le_bytes());
    strf.extend([0u8; 8]);
    strf.extend((spec.palette.len() as u32).to_le_bytes());
    strf.extend(0u32.to_le_bytes());
    for c in &spec.palette {
        strf.extend(c);
    }
    let strl = list(
        b"strl",
        &[chunk(b"strh", &strh), chunk(b"strf", &strf)].concat(),
    );
    let hdrl = list(b"hdrl", &[chunk(b"avih", &avih), strl].concat());
    let mut movi_body = Vec::new();
    let mut idx = Vec::new();
    for frame in spec.frames {
        idx.extend(b"00dc");
        idx.extend(0x10u32.to_le_bytes());
        idx.extend((4 + movi_body.len() as u32).to_le_bytes());
        idx.extend((frame.len() as u32).to_le_bytes());
        movi_body.extend(chunk(b"00dc", frame));
    }
    movi_body.extend(&spec.movi_tail);
    let mut riff = b"AVI ".to_vec();
    riff.extend(hdrl);
    riff.extend(list(b"movi", &movi_body));
    if spec.idx1 {
        riff.extend(chunk(b"idx1", &idx));
    }
    chunk(b"RIFF", &riff)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn spec(frames: &[Vec<u8>]) -> AviSpec<'_> {
    AviSpec {
        width: 5,
        height: 3,
        bit_count: 8,
        compression: *b"Y800",
        palette: Vec::new(),
        frames,
        idx1: true,
        rate: 15,
        scale: 1,
        declared: None,
        movi_tail: Vec::new(),
    }
}

/// Value of pixel (x, y) in frame t.
fn value(t: usize, x: usize, y: usize) -> u8 {
    (t * 50 + y * 10 + x) as u8
}

#[test]
fn grey8_avi_with_and_without_index() {
    let dir = tempfile::tempdir().unwrap();
    // Y800: packed rows, top-down.
    let frames: Vec<Vec<u8>> = (0..4)
        .map(|t| {
            (0..3)
                .flat_map(|y| (0..5).map(move |x| value(t, x, y)))
                .collect()
        })
        .collect();
    for idx1 in [true, false] {
        let path = write(
            dir.path(),
            &format!("grey{idx1}.avi"),
            &build_avi(&AviSpec {
                idx1,
                ..spec(&frames)
            }),
        );
        let info = probe(&path).unwrap();
        assert_eq!(
            (info.container, info.codec, info.bit_depth),
            (Container::Avi, Codec::Gray8, 8)
        );
        assert_eq!(
            (info.width, info.height, info.frames, info.fps),
            (5, 3, 4, 15.0)
        );
        let mut video = VideoReader::open(&path).unwrap();
        for t in [0, 3, 1, 2] {
            let DynamicImage::ImageLuma8(g) = video.frame(t).unwrap() else {
                panic!("not Luma8")
            };
            for (x, y, p) in g.enumerate_pixels() {
                assert_eq!(
                    p[0],
                    value(t, x as usize, y as usize),
                    "idx1 {idx1} frame {t} ({x},{y})"
                );
            }
        }
    }
}

#[test]
fn an_avi_whose_lists_nest_without_end_is_read_without_exhausting_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let frames = vec![vec![7u8; 15]; 2];
    // After the frames, 200000 'rec ' lists, each holding the rest: read without an index,
    // a walk that followed them all would overflow the stack.
    let depth = 200_000;
    let mut nested = Vec::with_capacity(12 * depth);
    for k in 0..depth {
        nested.extend(b"LIST");
        nested.extend((((depth - k - 1) * 12 + 4) as u32).to_le_bytes());
        nested.extend(b"rec ");
    }
    let path = write(
        dir.path(),
        "nested.avi",
        &build_avi(&AviSpec {
            idx1: false,
            movi_tail: nested,
            ..spec(&frames)
        }),
    );
    assert_eq!(probe(&path).unwrap().frames, 2);
    let mut video = VideoReader::open(&path).unwrap();
    assert!(matches!(
        video.frame(1).unwrap(),
        DynamicImage::ImageLuma8(_)
    ));
}

#[test]
fn bgr24_bottom_up_padded_rows_and_palette() {
    let dir = tempfile::tempdir().unwrap();
    // BI_RGB 24-bit, height > 0: rows bottom-up, each padded from 15 to 16 bytes.
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|t| {
            let mut data = Vec::new();
            for y in (0..3).rev() {
                for x in 0..5 {
                    let v = value(t, x, y);
                    data.extend([v / 2, v, 255 - v]); // B, G, R
                }
                data.push(0);
            }
            data
        })
        .collect();
    let path = write(
        dir.path(),
        "bgr.avi",
        &build_avi(&AviSpec {
            bit_count: 24,
            compression: [0; 4],
            ..spec(&frames)
        }),
    );
    let info = probe(&path).unwrap();
    assert_eq!(
        (info.codec, info.bit_depth, info.frames),
        (Codec::Bgr, 8, 3)
    );
    let mut video = VideoReader::open(&path).unwrap();
    for t in 0..3 {
        let DynamicImage::ImageRgb8(img) = video.frame(t).unwrap() else {
            panic!("not Rgb8")
        };
        for (x, y, p) in img.enumerate_pixels() {
            let v = value(t, x as usize, y as usize);
            assert_eq!(p.0, [255 - v, v, v / 2], "frame {t} ({x},{y})");
        }
    }

    // 8-bit BI_RGB with a colour palette (top-down: negative height), rows padded 5 -> 8.
    let palette: Vec<[u8; 4]> = (0..=255u8).map(|i| [i, 0, 255 - i, 0]).collect();
    let frames: Vec<Vec<u8>> = (0..2)
        .map(|t| {
            (0..3)
                .flat_map(|y| (0..8).map(move |x| if x < 5 { value(t, x, y) } else { 0 }))
                .collect()
        })
        .collect();
    let path = write(
        dir.path(),
        "pal.avi",
        &build_avi(&AviSpec {
            height: -3,
            compression: [0; 4],
            palette,
            ..spec(&frames)
        }),
    );
    let mut video = VideoReader::open(&path).unwrap();
    assert_eq!(video.info().codec, Codec::Bgr);
    let DynamicImage::ImageRgb8(img) = video.frame(1).unwrap() else {
        panic!("not Rgb8")
    };
    for (x, y, p) in img.enumerate_pixels() {
        let v = value(1, x as usize, y as usize);
        assert_eq!(p.0, [255 - v, 0, v], "({x},{y})");
    }
}

#[test]
fn sixteen_bit_grey_avi_little_endian_fourccs() {
    let dir = tempfile::tempdir().unwrap();
    let pixel = |t: usize, x: usize, y: usize| (40000 + t * 1000 + y * 300 + x * 7) as u16;
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|t| {
            (0..3)
                .flat_map(|y| (0..5).flat_map(move |x| pixel(t, x, y).to_le_bytes()))
                .collect()
        })
        .collect();
    for fourcc in [*b"Y16 ", *b"Y1\0\x10"] {
        let path = write(
            dir.path(),
            "g16.avi",
            &build_avi(&AviSpec {
                bit_count: 16,
                compression: fourcc,
                ..spec(&frames)
            }),
        );
        let info = probe(&path).unwrap();
        assert_eq!((info.codec, info.bit_depth), (Codec::Gray16, 16));
        let mut video = VideoReader::open(&path).unwrap();
        for t in 0..3 {
            let DynamicImage::ImageLuma16(g) = video.frame(t).unwrap() else {
                panic!("not Luma16")
            };
            for (x, y, p) in g.enumerate_pixels() {
                assert_eq!(p[0], pixel(t, x as usize, y as usize));
            }
        }
    }
}

#[test]
fn avi_errors_name_the_codec_and_count_frames_of_a_cut_file() {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<Vec<u8>> = (0..4).map(|t| vec![t as u8; 15]).collect();
    let xvid = write(
        dir.path(),
        "xvid.avi",
        &build_avi(&AviSpec {
            bit_count: 12,
            compression: *b"XVID",
            ..spec(&frames)
        }),
    );
    let message = probe(&xvid).err().unwrap().to_string();
    assert!(
        message.contains("xvid.avi")
            && message.contains("MPEG-4 Part 2")
            && message.contains("ffmpeg -i"),
        "{message}"
    );

    // Written without an index and cut inside the third frame; the header says 4 frames.
    let bytes = build_avi(&AviSpec {
        idx1: false,
        ..spec(&frames)
    });
    let movi = bytes.windows(4).position(|w| w == b"movi").unwrap();
    let cut = movi + 4 + 2 * (8 + 16) + 10;
    let path = write(dir.path(), "cut.avi", &bytes[..cut]);
    let mut video = VideoReader::open(&path).unwrap();
    assert_eq!(video.info().frames, 4);
    assert_eq!(video.frame(1).unwrap().to_luma8().get_pixel(0, 0)[0], 1);
    let message = video.frame(2).err().unwrap().to_string();
    assert!(
        message.contains("2 of 4 frames") && message.contains("cut.avi"),
        "{message}"
    );
}

// ---------------------------------------------------------------- FLIR SEQ builder

#[derive(Clone, Copy)]
enum Pixels {
    RawLittle,
    RawBig,
    /// PNG holding byte-swapped values, as FLIR cameras write them.
    PngSwapped,
    PngPlain,
}

fn put16(buf: &mut [u8], at: usize, v: u16, big: bool) {
    buf[at..at + 2].copy_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}
fn put32(buf: &mut [u8], at: usize, v: u32, big: bool) {
    buf[at..at + 4].copy_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}

fn thermal(t: usize, w: usize, h: usize) -> Vec<u16> {
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            // Smooth scene, a warm moving spot; raw counts as radiometric cameras give them.
            let d2 = (x as f64 - 3.0 - t as f64).powi(2) + (y as f64 - 4.0).powi(2);
            (13000.0 + 40.0 * x as f64 + 25.0 * y as f64 + 2000.0 * (-d2 / 6.0).exp()) as u16
        })
        .collect()
}

fn fff_record(values: &[u16], w: u16, h: u16, pixels: Pixels, frame_rate: u16) -> Vec<u8> {
    let big = matches!(pixels, Pixels::RawBig);
    let payload = match pixels {
        Pixels::RawLittle => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Pixels::RawBig => values.iter().flat_map(|v| v.to_be_bytes()).collect(),
        Pixels::PngSwapped | Pixels::PngPlain => {
            let stored: Vec<u16> = values
                .iter()
                .map(|v| {
                    if matches!(pixels, Pixels::PngSwapped) {
                        v.swap_bytes()
                    } else {
                        *v
                    }
                })
                .collect();
            let img: ImageBuffer<Luma<u16>, Vec<u16>> =
                ImageBuffer::from_raw(w as u32, h as u32, stored).unwrap();
            let mut png = std::io::Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png).unwrap();
            png.into_inner()
        }
    };
    let subtype = match pixels {
        Pixels::RawBig => 1,
        Pixels::RawLittle => 2,
        _ => 3,
    };
    let raw_len = 32 + payload.len();
    let camera_len = 0x470;
    let dir_at = 0x40;
    let raw_at = dir_at + 2 * 0x20;
    let camera_at = raw_at + raw_len;
    let mut rec = vec![0u8; camera_at + camera_len];
    rec[0..4].copy_from_slice(b"FFF\0");
    rec[4..14].copy_from_slice(b"fgstp test");
    put32(&mut rec, 0x14, 100, big);
    put32(&mut rec, 0x18, dir_at as u32, big);
    put32(&mut rec, 0x1c, 2, big);
    for (i, (kind, sub, at, len)) in [
        (1u16, subtype, raw_at, raw_len),
        (0x20, 1, camera_at, camera_len),
    ]
    .into_iter()
    .enumerate()
    {
        let e = dir_at + i * 0x20;
        put16(&mut rec, e, kind, big);
        put16(&mut rec, e + 2, sub, big);
        put32(&mut rec, e + 4, 100, big);
        put32(&mut rec, e + 8, 1, big);
        put32(&mut rec, e + 0x0c, at as u32, big);
        put32(&mut rec, e + 0x10, len as u32, big);
    }
    put16(&mut rec, raw_at, 2, big);
    put16(&mut rec, raw_at + 2, w, big);
    put16(&mut rec, raw_at + 4, h, big);
    rec[raw_at + 32..raw_at + raw_len].copy_from_slice(&payload);
    put16(&mut rec, camera_at, 2, big);
    put16(&mut rec, camera_at + 0x464, frame_rate, big);
    rec
}

fn build_seq(frames: usize, w: u16, h: u16, pixels: Pixels, frame_rate: u16) -> Vec<u8> {
    (0..frames)
        .flat_map(|t| {
            fff_record(
                &thermal(t, w as usize, h as usize),
                w,
                h,
                pixels,
                frame_rate,
            )
        })
        .collect()
}

#[test]
fn flir_seq_raw_both_byte_orders_and_png_either_way() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (12u16, 9u16);
    for (name, pixels, codec) in [
        ("le.seq", Pixels::RawLittle, Codec::FlirRaw),
        ("be.seq", Pixels::RawBig, Codec::FlirRaw),
        ("png_swapped.seq", Pixels::PngSwapped, Codec::FlirPng),
        ("png_plain.seq", Pixels::PngPlain, Codec::FlirPng),
    ] {
        let path = write(dir.path(), name, &build_seq(5, w, h, pixels, 30));
        let info = probe(&path).unwrap();
        assert_eq!(
            (info.container, info.codec, info.bit_depth),
            (Container::FlirSeq, codec, 16),
            "{name}"
        );
        assert_eq!(
            (info.width, info.height, info.frames, info.fps),
            (12, 9, 5, 30.0),
            "{name}"
        );
        let mut video = VideoReader::open(&path).unwrap();
        // Random order first: the PNG byte order is decided from frame 0 whatever is read first.
        for t in [3, 0, 4, 1, 2] {
            let DynamicImage::ImageLuma16(g) = video.frame(t).unwrap() else {
                panic!("{name}: not Luma16")
            };
            assert_eq!(
                g.as_raw(),
                &thermal(t, w as usize, h as usize),
                "{name} frame {t}"
            );
        }
    }
}

#[test]
fn flir_seq_cut_off_gives_n_of_m_and_csq_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = build_seq(4, 12, 9, Pixels::RawLittle, 0);
    let record = bytes.len() / 4;
    // Cut inside the last frame's pixels.
    let path = write(dir.path(), "cut.seq", &bytes[..3 * record + 0x80 + 40]);
    let mut video = VideoReader::open(&path).unwrap();
    assert_eq!(
        (video.info().frames, video.info().fps),
        (4, 0.0),
        "no frame rate in the file: 0"
    );
    let results: Vec<_> = video.frames().collect();
    assert_eq!(results.len(), 4);
    assert!(results[..3].iter().all(Result::is_ok));
    let message = results[3].as_ref().err().unwrap().to_string();
    assert!(
        message.contains("3 of 4 frames") && message.contains("cut.seq"),
        "{message}"
    );

    // JPEG-LS frames: a .csq recording.
    let mut csq = fff_record(&thermal(0, 12, 9), 12, 9, Pixels::RawLittle, 30);
    let pixels_at = 0x80 + 32;
    csq[pixels_at..pixels_at + 4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xF7]);
    let path = write(dir.path(), "rec.csq", &csq);
    let message = probe(&path).err().unwrap().to_string();
    assert!(
        message.contains("JPEG-LS") && message.contains(".csq") && message.contains("rec.csq"),
        "{message}"
    );
}
