//! Which format a file is, from its first bytes (never from its extension: a camera's `.mov`
//! may be an MP4, a renamed `.avi` may be anything).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::error::VideoError;

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// ISO base media (`ftyp`, or a QuickTime file starting with `moov`/`mdat`/`wide`/`free`).
    Mp4,
    /// `RIFF....AVI ` (or an OpenDML `AVIX` piece).
    Avi,
    /// A FLIR FFF record (`FFF\0`): `.seq` (and `.csq`, told apart by its frames' compression).
    FlirFff,
    /// Recognised, not readable: the container's name for the error message.
    Other(&'static str),
    /// A PNG, JPEG or TIFF picture.
    StillImage,
    Unknown,
}

/// Bytes read for sniffing: enough for every magic below and an MPEG-TS sync check.
const SNIFF_LEN: usize = 3 * 188 + 1;

pub(crate) fn sniff_file(path: &Path) -> Result<(Sniffed, Vec<u8>), VideoError> {
    let mut file = File::open(path).map_err(|e| VideoError::io(path, e))?;
    let mut head = Vec::with_capacity(SNIFF_LEN);
    (&mut file)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| VideoError::io(path, e))?;
    Ok((sniff(&head), head))
}

pub(crate) fn sniff(b: &[u8]) -> Sniffed {
    let at = |i: usize, magic: &[u8]| b.len() >= i + magic.len() && &b[i..i + magic.len()] == magic;
    if at(4, b"ftyp") {
        return Sniffed::Mp4;
    }
    // Old QuickTime files may start straight with a top-level atom.
    if ["moov", "mdat", "wide", "free", "skip", "pnot"]
        .iter()
        .any(|t| at(4, t.as_bytes()))
        && b.len() >= 4
    {
        return Sniffed::Mp4;
    }
    if at(0, b"RIFF") && (at(8, b"AVI ") || at(8, b"AVIX")) {
        return Sniffed::Avi;
    }
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Sniffed::Other("a WAV audio file (RIFF WAVE)");
    }
    if at(0, b"FFF\0") {
        return Sniffed::FlirFff;
    }
    if at(0, b"AFF\0") {
        return Sniffed::Other("a FLIR AFF sequence");
    }
    if at(0, b"FPF Public Image Format\0") {
        return Sniffed::Other("a FLIR FPF single image");
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return Sniffed::Other(if contains(b, b"webm") {
            "WebM (Matroska)"
        } else {
            "Matroska (MKV)"
        });
    }
    if at(0, &[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11]) {
        return Sniffed::Other("ASF/WMV");
    }
    if at(0, b"FLV\x01") {
        return Sniffed::Other("Flash video (FLV)");
    }
    if at(0, b"OggS") {
        return Sniffed::Other("Ogg");
    }
    if at(0, &[0, 0, 1, 0xBA]) {
        return Sniffed::Other("an MPEG program stream (MPG/VOB)");
    }
    if b.len() > 2 * 188 && b[0] == 0x47 && b[188] == 0x47 && b[376] == 0x47 {
        return Sniffed::Other("an MPEG transport stream (TS/M2TS)");
    }
    if at(0, &[0, 0, 0, 1]) || at(0, &[0, 0, 1]) {
        return Sniffed::Other("a raw H.264/H.265 elementary stream (no container)");
    }
    if at(0, b"\x89PNG\r\n\x1a\n")
        || at(0, &[0xFF, 0xD8, 0xFF])
        || at(0, b"II*\0")
        || at(0, b"MM\0*")
    {
        return Sniffed::StillImage;
    }
    if at(0, b"GIF8") {
        return Sniffed::Other("a GIF animation");
    }
    Sniffed::Unknown
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The error for a file whose bytes match nothing readable.
pub(crate) fn refuse(path: &Path, sniffed: Sniffed, head: &[u8]) -> VideoError {
    let magic = head
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    let magic = if magic.is_empty() {
        "none: the file is empty".to_string()
    } else {
        magic
    };
    match sniffed {
        Sniffed::Other(what) => VideoError::unsupported(path, what, "its video", ""),
        Sniffed::StillImage => VideoError::StillImage {
            path: path.to_path_buf(),
        },
        _ => {
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            let guess = match ext.as_str() {
                "ats" => ", and the name says FLIR ResearchIR .ats: export it from ResearchIR/FLIR Tools as .seq with raw or PNG frames, or as 16-bit TIFF/PNG frames",
                "csq" => ", and the name says FLIR .csq: export it from FLIR Tools/Thermal Studio as .seq with raw or PNG frames, or as 16-bit TIFF/PNG frames",
                "mp4" | "mov" | "m4v" => ", although the name says MP4/MOV: the file is damaged or not a video",
                "avi" => ", although the name says AVI: the file is damaged or not a video",
                "seq" => ", although the name says FLIR .seq (which starts with FFF\\0): the file is damaged or another camera's format",
                _ => "",
            };
            VideoError::UnknownFormat {
                path: path.to_path_buf(),
                magic,
                guess: guess.into(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(sniff(b"\0\0\0\x20ftypisom"), Sniffed::Mp4);
        assert_eq!(sniff(b"RIFF\0\0\0\0AVI LIST"), Sniffed::Avi);
        assert_eq!(sniff(b"FFF\0CAMCTRL"), Sniffed::FlirFff);
        assert!(
            matches!(sniff(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F]), Sniffed::Other(m) if m.contains("Matroska"))
        );
        assert_eq!(sniff(b"hello world!"), Sniffed::Unknown);
        assert_eq!(sniff(b""), Sniffed::Unknown);
    }

    #[test]
    fn a_still_image_is_refused_with_the_folder_of_frames_as_the_way_out() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(sniff(png), Sniffed::StillImage);
        let message = refuse(Path::new("f.png"), sniff(png), png).to_string();
        assert_eq!(
            message,
            "f.png is a single still image, not a video: give the folder that holds the frames \
             (the video's images, in natural order) instead"
        );
    }
}
