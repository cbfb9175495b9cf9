//! The H.264 encoder behind [`VideoWriter`](super::VideoWriter): OpenH264 set up for
//! Constrained Baseline at a fixed QP (the choices are listed in [`mp4_mux`](super::mp4_mux)),
//! one picture in, its NAL units out.

use std::ffi::c_void;
use std::ptr::null_mut;

use openh264_sys2::{
    source::APILoader, videoFormatI420, videoFrameTypeIDR, videoFrameTypeInvalid,
    videoFrameTypeSkip, ISVCEncoder, SEncParamExt, SFrameBSInfo, SSourcePicture,
    CAMERA_VIDEO_REAL_TIME, CONSTANT_ID, ENCODER_OPTION_DATAFORMAT, ENCODER_OPTION_TRACE_LEVEL,
    MEDIUM_COMPLEXITY, PRO_BASELINE, RC_OFF_MODE, SM_SINGLE_SLICE, WELS_LOG_QUIET,
};

use super::yuv::Yuv420;

/// The OpenH264 encoder with our parameters.
pub(super) struct Encoder {
    raw: *mut ISVCEncoder,
    info: Box<SFrameBSInfo>,
    width: u32,
    height: u32,
}

impl Encoder {
    pub(super) fn new(
        width: u32,
        height: u32,
        fps: f64,
        qp: u8,
        keyframe_interval: u32,
    ) -> Result<Self, String> {
        let mut raw: *mut ISVCEncoder = null_mut();
        // SAFETY: WelsCreateSVCEncoder writes a fresh encoder (or fails); it is owned by the
        // returned handle and released in Drop.
        unsafe {
            if APILoader::WelsCreateSVCEncoder(&mut raw) != 0 || raw.is_null() {
                return Err("OpenH264 could not create an encoder".into());
            }
            let encoder = Self {
                raw,
                info: Box::default(),
                width,
                height,
            };
            let vt = &**raw;
            let set = vt.SetOption.ok_or("OpenH264 encoder has no SetOption")?;
            let mut quiet = if std::env::var_os("FGSTP_H264_DEBUG").is_some() {
                15
            } else {
                WELS_LOG_QUIET
            };
            set(
                raw,
                ENCODER_OPTION_TRACE_LEVEL,
                (&raw mut quiet).cast::<c_void>(),
            );
            let mut p = SEncParamExt::default();
            (vt.GetDefaultParams
                .ok_or("OpenH264 encoder has no GetDefaultParams")?)(raw, &mut p);
            p.iUsageType = CAMERA_VIDEO_REAL_TIME;
            p.iPicWidth = width as i32;
            p.iPicHeight = height as i32;
            p.iRCMode = RC_OFF_MODE;
            p.fMaxFrameRate = fps as f32;
            p.iTemporalLayerNum = 1;
            p.iSpatialLayerNum = 1;
            p.iComplexityMode = MEDIUM_COMPLEXITY;
            p.uiIntraPeriod = keyframe_interval;
            p.iNumRefFrame = 1;
            p.eSpsPpsIdStrategy = CONSTANT_ID;
            p.iEntropyCodingModeFlag = 0;
            p.bEnableFrameSkip = false;
            p.iMinQp = qp as i32;
            p.iMaxQp = qp as i32;
            p.bEnableDenoise = false;
            p.bEnableBackgroundDetection = false;
            p.bEnableAdaptiveQuant = false;
            p.bEnableSceneChangeDetect = false;
            p.bEnableLongTermReference = false;
            p.iMultipleThreadIdc = 1;
            p.iLoopFilterDisableIdc = 0;
            p.bEnableFrameCroppingFlag = true;
            let layer = &mut p.sSpatialLayers[0];
            layer.iVideoWidth = width as i32;
            layer.iVideoHeight = height as i32;
            layer.fFrameRate = fps as f32;
            layer.uiProfileIdc = PRO_BASELINE;
            layer.iDLayerQp = qp as i32;
            layer.sSliceArgument.uiSliceMode = SM_SINGLE_SLICE;
            layer.sSliceArgument.uiSliceNum = 1;
            layer.bVideoSignalTypePresent = true;
            layer.uiVideoFormat = 5; // unspecified
            layer.bFullRange = false;
            layer.bColorDescriptionPresent = true;
            layer.uiColorPrimaries = 2; // unspecified
            layer.uiTransferCharacteristics = 2; // unspecified
            layer.uiColorMatrix = 6; // BT.601 (SMPTE 170M)
            let init = vt
                .InitializeExt
                .ok_or("OpenH264 encoder has no InitializeExt")?;
            if init(raw, &p) != 0 {
                return Err(format!(
                    "OpenH264 refused the encoder settings for {width}x{height} at {fps} fps"
                ));
            }
            let mut format = videoFormatI420;
            set(
                raw,
                ENCODER_OPTION_DATAFORMAT,
                (&raw mut format).cast::<c_void>(),
            );
            Ok(encoder)
        }
    }

    /// Encodes one picture: its NAL units (without start codes) and whether it is an IDR.
    pub(super) fn encode(
        &mut self,
        yuv: &Yuv420,
        millis: i64,
    ) -> Result<(Vec<Vec<u8>>, bool), String> {
        debug_assert_eq!((yuv.width, yuv.height), (self.width, self.height));
        let cw = yuv.width.div_ceil(2) as i32;
        let src = SSourcePicture {
            iColorFormat: videoFormatI420,
            iStride: [yuv.width as i32, cw, cw, 0],
            pData: [
                yuv.y.as_ptr().cast_mut(),
                yuv.u.as_ptr().cast_mut(),
                yuv.v.as_ptr().cast_mut(),
                null_mut(),
            ],
            iPicWidth: yuv.width as i32,
            iPicHeight: yuv.height as i32,
            uiTimeStamp: millis,
            ..Default::default()
        };
        // SAFETY: the planes outlive the call and OpenH264 only reads them; info is ours.
        unsafe {
            let vt = &**self.raw;
            let encode = vt
                .EncodeFrame
                .ok_or("OpenH264 encoder has no EncodeFrame")?;
            let rc = encode(self.raw, &src, &mut *self.info);
            if rc != 0 {
                return Err(format!("OpenH264 failed to encode (error {rc})"));
            }
            let info = &*self.info;
            if info.eFrameType == videoFrameTypeSkip || info.eFrameType == videoFrameTypeInvalid {
                return Err("OpenH264 skipped the frame".into());
            }
            let mut nals = Vec::new();
            for layer in &info.sLayerInfo[..info.iLayerNum.max(0) as usize] {
                let mut pos = 0usize;
                for i in 0..layer.iNalCount.max(0) as usize {
                    let len = *layer.pNalLengthInByte.add(i) as usize;
                    let nal = std::slice::from_raw_parts(layer.pBsBuf.add(pos), len);
                    pos += len;
                    nals.push(strip_start_code(nal).to_vec());
                }
            }
            Ok((nals, info.eFrameType == videoFrameTypeIDR))
        }
    }
}

// The encoder is heap state owned by this handle (single-threaded encoding), so the writer
// may move to another thread.
unsafe impl Send for Encoder {}

fn strip_start_code(nal: &[u8]) -> &[u8] {
    if nal.starts_with(&[0, 0, 0, 1]) {
        &nal[4..]
    } else if nal.starts_with(&[0, 0, 1]) {
        &nal[3..]
    } else {
        nal
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: raw came from WelsCreateSVCEncoder and is released exactly once.
        unsafe {
            if let Some(uninit) = (**self.raw).Uninitialize {
                uninit(self.raw);
            }
            APILoader::WelsDestroySVCEncoder(self.raw);
        }
    }
}
