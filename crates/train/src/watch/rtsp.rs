//! RTSP cameras: H.264 over RTP interleaved in the RTSP TCP connection (retina), decoded with
//! OpenH264.
//!
//! retina is async; the camera's decode thread drives its session on a tokio runtime of its
//! own (current-thread), so no other camera and nothing else of the watch waits on it.
//! Credentials in the URL are taken out before retina sees it (it refuses them there) and
//! given to it as digest/basic credentials; no message of this module shows them.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fgstp_data::video::h264_live::{LiveFrame, LiveH264Decoder};
use futures_util::StreamExt;
use image::DynamicImage;
use retina::client::{
    Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, TeardownPolicy,
    Transport,
};
use retina::codec::{CodecItem, FrameFormat};

use super::live::{redact, LiveConnection, LivePicture};

/// Longest wait for the camera to answer DESCRIBE, SETUP and PLAY together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A stream that sends nothing for this long is taken as broken (and reconnected).
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Errors from retina in a row (no good packet between) after which the connection is made
/// again: a burst of damaged packets is survived, a connection that only fails is not.
const MAX_ERRORS_IN_ROW: u32 = 30;
/// A stream whose data yields no picture for this long (no key frame to start from, or only
/// RTCP and other streams' packets) is made again: a new session starts with a key frame.
/// Longer than a camera's longest usual key-frame interval (10 s).
const PICTURE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a blocked read looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);

/// One RTSP session, playing.
pub(super) struct RtspStream {
    runtime: tokio::runtime::Runtime,
    /// `None` once dropped (inside the runtime, where retina's session expects to end).
    demuxed: Option<Demuxed>,
    decoder: LiveH264Decoder,
    /// Packets were lost or a frame was damaged: frames are dropped until the next key frame,
    /// and count as damaged.
    damaged_since_key_frame: bool,
    /// Errors from retina since its last good item.
    errors_in_row: u32,
}

impl RtspStream {
    pub(super) fn connect(url: &str) -> Result<Self> {
        let shown = redact(url);
        let (url, credentials) = split_credentials(url)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the RTSP client's runtime")?;
        let demuxed = runtime
            .block_on(async {
                tokio::time::timeout(CONNECT_TIMEOUT, open_session(url, credentials)).await
            })
            .map_err(|_| {
                anyhow::anyhow!("{shown}: no answer within {} s", CONNECT_TIMEOUT.as_secs())
            })?
            .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        Ok(Self {
            runtime,
            demuxed: Some(demuxed),
            decoder: LiveH264Decoder::new().map_err(anyhow::Error::msg)?,
            damaged_since_key_frame: false,
            errors_in_row: 0,
        })
    }
}

/// DESCRIBE, SETUP of the first H.264 video stream (over TCP), PLAY. The error says what went
/// wrong in the camera's terms (credentials refused, no such path, no H.264 video).
async fn open_session(
    url: url::Url,
    credentials: Option<Credentials>,
) -> std::result::Result<Demuxed, String> {
    let options = SessionOptions::default()
        .creds(credentials)
        .user_agent(format!("fgstp/{} watch", env!("CARGO_PKG_VERSION")))
        // Closing the TCP connection ends the session at the camera.
        .teardown(TeardownPolicy::Never);
    let mut session = Session::describe(url, options)
        .await
        .map_err(describe_error)?;
    let Some(video) = session
        .streams()
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name() == "h264")
    else {
        let offered: Vec<String> = session
            .streams()
            .iter()
            .map(|s| format!("{} {}", s.media(), s.encoding_name()))
            .collect();
        return Err(format!(
            "the camera offers no H.264 video (it offers: {}); set the camera's stream to H.264",
            if offered.is_empty() {
                "nothing".to_string()
            } else {
                offered.join(", ")
            }
        ));
    };
    session
        .setup(
            video,
            SetupOptions::default()
                .transport(Transport::default())
                .frame_format(FrameFormat::SIMPLE),
        )
        .await
        .map_err(describe_error)?;
    session
        .play(PlayOptions::default())
        .await
        .map_err(describe_error)?
        .demuxed()
        .map_err(describe_error)
}

/// retina's error, first line only (the rest is connection context), with the usual answers
/// of cameras put in words.
fn describe_error(e: retina::Error) -> String {
    match e.status_code() {
        Some(401 | 403) => "the camera refused the credentials (RTSP 401)".to_string(),
        Some(404) => "the camera has no stream at this path (RTSP 404)".to_string(),
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("").trim();
            if first.contains("no credentials supplied") {
                "the camera asks for credentials: rtsp://USER:PASSWORD@host/…".to_string()
            } else {
                first.to_string()
            }
        }
    }
}

/// The URL without user and password, and the credentials (percent-decoded).
fn split_credentials(url: &str) -> Result<(url::Url, Option<Credentials>)> {
    let mut parsed =
        url::Url::parse(url).with_context(|| format!("{}: not a valid URL", redact(url)))?;
    if parsed.host_str().unwrap_or("").is_empty() {
        bail!("{}: no host in the URL", redact(url));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credentials = (!parsed.username().is_empty()).then(|| Credentials {
        username: decode(parsed.username()),
        password: decode(parsed.password().unwrap_or("")),
    });
    // Neither can fail on a URL with a host.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok((parsed, credentials))
}

impl LiveConnection for RtspStream {
    fn next_picture(&mut self, stop: &dyn Fn() -> bool) -> Result<Option<LivePicture>> {
        let Some(demuxed) = self.demuxed.as_mut() else {
            return Ok(None);
        };
        let mut last_data = Instant::now();
        let waiting_since = Instant::now();
        loop {
            if stop() {
                return Ok(None);
            }
            if waiting_since.elapsed() >= PICTURE_TIMEOUT {
                bail!(
                    "data but no picture for {} s (no key frame to decode from)",
                    PICTURE_TIMEOUT.as_secs()
                );
            }
            let item = self
                .runtime
                .block_on(async { tokio::time::timeout(STOP_POLL, demuxed.next()).await });
            let item = match item {
                Err(_) if last_data.elapsed() >= READ_TIMEOUT => {
                    bail!("no data for {} s", READ_TIMEOUT.as_secs())
                }
                Err(_) => continue,
                Ok(None) => return Ok(None),
                // A packet retina could not depacketize (garbage, cut short): its frame is
                // lost and the next ones wait for a key frame. retina goes on after such an
                // error, unless its stream is done (then the next read ends it); a run of
                // errors with nothing good between means the connection itself is broken.
                Ok(Some(Err(e))) => {
                    self.errors_in_row += 1;
                    if self.errors_in_row >= MAX_ERRORS_IN_ROW {
                        bail!("{}", describe_error(e));
                    }
                    self.decoder.resync();
                    self.damaged_since_key_frame = true;
                    return Ok(Some(LivePicture::Damaged));
                }
                Ok(Some(Ok(item))) => item,
            };
            self.errors_in_row = 0;
            last_data = Instant::now();
            let CodecItem::VideoFrame(frame) = item else {
                continue;
            };
            if frame.loss() > 0 {
                self.decoder.resync();
                self.damaged_since_key_frame = true;
            }
            let key_frame = frame.is_random_access_point();
            match self.decoder.decode(frame.data(), key_frame) {
                Ok(LiveFrame::Picture(image)) => {
                    self.damaged_since_key_frame = false;
                    return Ok(Some(LivePicture::Image(DynamicImage::ImageRgb8(image))));
                }
                Ok(LiveFrame::Pending) => continue,
                // Before the first key frame of a session nothing was lost: the camera was
                // joined between two key frames.
                Ok(LiveFrame::Dropped) if !self.damaged_since_key_frame => continue,
                Ok(LiveFrame::Dropped) => return Ok(Some(LivePicture::Damaged)),
                Err(reason) if reason.starts_with("the camera sends") => bail!(reason),
                Err(_) => {
                    self.damaged_since_key_frame = true;
                    return Ok(Some(LivePicture::Damaged));
                }
            }
        }
    }
}

impl Drop for RtspStream {
    fn drop(&mut self) {
        let _inside = self.runtime.enter();
        self.demuxed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_decoded() {
        let (url, creds) =
            split_credentials("rtsp://op%40site:p%3As+s@10.0.0.5:8554/cam1").unwrap();
        assert_eq!(url.as_str(), "rtsp://10.0.0.5:8554/cam1");
        let creds = creds.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("op@site", "p:s+s")
        );
        let (url, creds) = split_credentials("rtsp://10.0.0.5/cam1").unwrap();
        assert_eq!(url.as_str(), "rtsp://10.0.0.5/cam1");
        assert!(creds.is_none());
        let e = split_credentials("rtsp://user:secret@").unwrap_err();
        assert!(!format!("{e:#}").contains("secret"), "{e:#}");
    }
}
