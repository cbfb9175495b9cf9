//! Scoring folders of PNG files (feature `io`): masks read as
//! `cv2.imread(path, cv2.IMREAD_GRAYSCALE)` reads them — what PySODMetrics users load with —
//! predictions read as asked ([`PredKind`]: soft maps as cv2 reads them, masks, object ids),
//! paired by video and file name, scored on all cores into a [`MetricRecorder`]; several
//! systems side by side ([`compare`]); exact recorder states in files ([`state_file`]).

pub mod compare;
mod compare_report;
mod decode;
mod exclude;
mod files;
mod pairing;
mod pred_kind;
mod score;
pub mod state_file;

pub use compare_report::{Aggregation, TableOptions};
pub use decode::{decode_png, read_gray, Color, Decoded};
pub use exclude::Exclusions;
pub use files::write_atomically;
pub use pairing::{
    eval_maps_and_masks, pair_files, prediction_videos, FramePair, PairOptions, Pairs,
};
pub use pred_kind::{prediction_map, PredKind, Reading};
pub use score::{
    describe_readings, detection_area, read_mask, read_prediction, score_pairs, Map, Scored,
};
