//! What every live camera connection (RTSP, MJPEG over HTTP) gives the reconnecting source
//! of [`super::source`], and how its URL is shown.

use anyhow::Result;
use image::DynamicImage;

/// `url` with its user and password replaced (`http://***@host/…`), for messages, files, the
/// dashboard and its API.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // Up to the last '@' before any query: a password with an unescaped '/' (not valid in a
    // URL, but typed) is hidden too; a path with an '@' is shown less than it could be.
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    match rest[..before_query].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// What a live connection delivers.
pub enum LivePicture {
    Image(DynamicImage),
    /// A frame that could not be used (a damaged JPEG; an H.264 frame that was damaged or
    /// depends on lost packets, up to the next key frame).
    Damaged,
}

/// One connection to a live stream.
pub trait LiveConnection: Send {
    /// The next picture; `None` when the stream ended (or `stop` turned true).
    fn next_picture(&mut self, stop: &dyn Fn() -> bool) -> Result<Option<LivePicture>>;
}
