//! AAC in ADTS (ISO/IEC 13818-7 §6.2 / ISO/IEC 14496-3 §1.A.2.2): the 7- or 9-byte
//! header of each frame, read for its length and for the AudioSpecificConfig
//! (ISO/IEC 14496-3 §1.6.2.1) that the `esds` needs and a TS stream never carries.
//! Frames are returned as ranges of the PES payload, so the fragmenter's samples are
//! slices of it: no copy.

use std::ops::Range;

/// Samples per AAC frame (one raw_data_block; 960-sample frames are not signalled
/// in ADTS).
pub(crate) const FRAME_SAMPLES: u32 = 1024;

/// ISO/IEC 14496-3 Table 1.18, `samplingFrequencyIndex` 0..=12.
const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// What ADTS headers say about the stream; a change is a new track configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AdtsConfig {
    /// `audioObjectType`: ADTS `profile` + 1 (1 Main, 2 LC, 3 SSR).
    object_type: u8,
    frequency_index: u8,
    /// 1..=7 (0, "defined in a program_config_element", is refused).
    channels: u8,
}

impl AdtsConfig {
    pub(crate) fn sample_rate(&self) -> u32 {
        RATES
            .get(usize::from(self.frequency_index))
            .copied()
            .unwrap_or(48_000)
    }

    /// The 2-byte AudioSpecificConfig: audioObjectType (5 bits),
    /// samplingFrequencyIndex (4), channelConfiguration (4), GASpecificConfig's
    /// three zero flags.
    pub(crate) fn audio_specific_config(&self) -> [u8; 2] {
        [
            self.object_type << 3 | self.frequency_index >> 1,
            (self.frequency_index & 1) << 7 | self.channels << 3,
        ]
    }
}

/// Why an ADTS payload is not read further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdtsError {
    NoSync,
    Truncated,
    Unsupported,
}

/// The frames of a PES payload: each one's configuration and raw-data range.
pub(crate) fn frames(data: &[u8]) -> Frames<'_> {
    Frames { data, at: 0 }
}

pub(crate) struct Frames<'a> {
    data: &'a [u8],
    at: usize,
}

impl Iterator for Frames<'_> {
    type Item = Result<(AdtsConfig, Range<usize>), AdtsError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.at..).filter(|r| !r.is_empty())?;
        let result = read_frame(rest).map(|(config, header, len)| {
            let start = self.at + header;
            let end = self.at + len;
            (config, start..end)
        });
        match &result {
            Ok((_, range)) => self.at = range.end,
            Err(_) => self.at = self.data.len(),
        }
        Some(result)
    }
}

/// (config, header length, frame length) of the frame at the start of `d`.
fn read_frame(d: &[u8]) -> Result<(AdtsConfig, usize, usize), AdtsError> {
    let [b0, b1, b2, b3, b4, b5, b6, ..] = *d else {
        return Err(AdtsError::Truncated);
    };
    // syncword 0xFFF, then ID, layer ('00').
    if b0 != 0xff || b1 & 0xf6 != 0xf0 {
        return Err(AdtsError::NoSync);
    }
    let protection_absent = b1 & 1 != 0;
    let profile = b2 >> 6;
    let frequency_index = (b2 >> 2) & 0x0f;
    let channels = (b2 & 1) << 2 | b3 >> 6;
    let frame_len = usize::from(b3 & 3) << 11 | usize::from(b4) << 3 | usize::from(b5 >> 5);
    let raw_blocks = b6 & 3;
    let header = if protection_absent { 7 } else { 9 };
    if profile == 3 || frequency_index > 12 || channels == 0 || raw_blocks != 0 {
        return Err(AdtsError::Unsupported);
    }
    if frame_len <= header || frame_len > d.len() {
        return Err(AdtsError::Truncated);
    }
    let config = AdtsConfig {
        object_type: profile + 1,
        frequency_index,
        channels,
    };
    Ok((config, header, frame_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(profile: u8, freq: u8, channels: u8, len: usize) -> [u8; 7] {
        [
            0xff,
            0xf1,
            profile << 6 | freq << 2 | channels >> 2,
            (channels & 3) << 6 | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 7) << 5) as u8 | 0x1f,
            0xfc,
        ]
    }

    #[test]
    fn config_of_lc_stereo_44100_and_mono_48000() {
        let mut d = header(1, 4, 2, 10).to_vec();
        d.extend_from_slice(&[1, 2, 3]);
        d.extend_from_slice(&header(1, 3, 1, 8));
        d.push(9);
        let got: Vec<_> = frames(&d).collect::<Result<_, _>>().unwrap();
        assert_eq!(got[0].1, 7..10);
        assert_eq!(got[1].1, 17..18);
        // ISO/IEC 14496-3 §1.6.2.1: LC (2), index 4, 2 channels → 0x12 0x10.
        assert_eq!(got[0].0.audio_specific_config(), [0x12, 0x10]);
        assert_eq!(got[0].0.sample_rate(), 44100);
        assert_eq!(got[1].0.audio_specific_config(), [0x11, 0x88]);
    }

    #[test]
    fn lies_are_refused() {
        let d = header(1, 4, 2, 100);
        assert_eq!(frames(&d).next(), Some(Err(AdtsError::Truncated)));
        let d = header(1, 15, 2, 7);
        assert_eq!(frames(&d).next(), Some(Err(AdtsError::Unsupported)));
        assert_eq!(frames(&[0u8; 9]).next(), Some(Err(AdtsError::NoSync)));
    }
}
