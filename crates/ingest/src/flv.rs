//! FLV tag bodies as RTMP carries them: the payload of an RTMP audio (type 8) or
//! video (type 9) message is an FLV `AUDIODATA`/`VIDEODATA` body. Pure: bytes in,
//! a typed tag or a typed refusal out; no I/O, no state, no allocation beyond the
//! `Bytes` sub-slices it returns.
//!
//! # Specs
//! - Adobe FLV v10.1 §E.4.2.1 (`AUDIODATA`: SoundFormat 10 = AAC, then
//!   `AACPacketType` 0 = AudioSpecificConfig, 1 = raw frame) and §E.4.3.1
//!   (`VIDEODATA`: CodecID 7 = AVC, then `AVCPacketType` 0 = AVCDecoderConfigurationRecord,
//!   1 = NAL units, 2 = end of sequence; `CompositionTime` SI24, milliseconds).
//! - Enhanced RTMP v2 (veovera): a video tag whose first bit is set
//!   (`IsExHeader`) carries `VideoPacketType` in its low nibble and a FourCC; `hvc1`
//!   and `avc1` are taken (SequenceStart = the configuration record, CodedFrames = SI24
//!   composition time then NAL units, CodedFramesX = NAL units with composition time
//!   0). An audio tag with SoundFormat 9 (`ExHeader`) carries `AudioPacketType` in its
//!   low nibble and a FourCC; `Opus` (SequenceStart = RFC 7845 `OpusHead`) and `mp4a`
//!   (SequenceStart = AudioSpecificConfig) are taken.
//!
//! Anything else a publisher may send (AV1, VP9, MP3, multitrack, ModEx) is
//! [`FlvError::Unsupported`]: the door closes the connection rather than store media
//! it cannot describe. Video info/command frames (frame type 5) and metadata packets
//! are [`Tag::Ignored`].

use bytes::Bytes;

/// A codec this door fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 (legacy CodecID 7 or E-RTMP `avc1`).
    Avc,
    /// HEVC (E-RTMP `hvc1`).
    Hevc,
    /// AAC (legacy SoundFormat 10 or E-RTMP `mp4a`).
    Aac,
    /// Opus (E-RTMP `Opus`).
    Opus,
}

/// What one audio or video tag body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// The decoder configuration: avcC, hvcC, AudioSpecificConfig or OpusHead.
    SequenceHeader {
        /// Its codec.
        codec: Codec,
        /// The record, as carried.
        config: Bytes,
    },
    /// One access unit.
    Frame {
        /// Its codec.
        codec: Codec,
        /// A keyframe (video frame type 1; every audio frame).
        keyframe: bool,
        /// Presentation minus decode time, milliseconds (SI24; 0 for audio).
        composition_ms: i32,
        /// Length-prefixed NAL units (video) or one raw frame / packet (audio).
        data: Bytes,
    },
    /// End of sequence: the publisher will send a new sequence header before more.
    EndOfSequence,
    /// Carries nothing to store (video info/command frame, metadata packet, an empty
    /// audio frame).
    Ignored,
}

/// Why a tag body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The body ends before its header does.
    #[error("{kind} tag of {len} bytes is shorter than its header")]
    Truncated {
        /// `audio` or `video`.
        kind: &'static str,
        /// Its length.
        len: usize,
    },
    /// A codec or packet type this door does not take.
    #[error("unsupported {kind}: {what}")]
    Unsupported {
        /// `audio` or `video`.
        kind: &'static str,
        /// The codec id, format or FourCC and packet type.
        what: String,
    },
}

/// Parses the body of an RTMP video message (FLV `VIDEODATA`).
pub fn parse_video(body: &Bytes) -> Result<Tag, FlvError> {
    let b0 = *body.first().ok_or(FlvError::Truncated {
        kind: "video",
        len: 0,
    })?;
    let truncated = || FlvError::Truncated {
        kind: "video",
        len: body.len(),
    };
    let unsupported = |what: String| FlvError::Unsupported {
        kind: "video",
        what,
    };
    if b0 & 0x80 != 0 {
        // Enhanced RTMP: [IsExHeader:1][FrameType:3][VideoPacketType:4][FourCC:32].
        let frame_type = (b0 >> 4) & 0x07;
        let packet_type = b0 & 0x0f;
        let fourcc = body.get(1..5).ok_or_else(truncated)?;
        if frame_type == 5 && packet_type != 4 {
            return Ok(Tag::Ignored);
        }
        let codec = match fourcc {
            b"avc1" => Codec::Avc,
            b"hvc1" => Codec::Hevc,
            other => {
                return Err(unsupported(format!(
                    "FourCC {:?}",
                    String::from_utf8_lossy(other)
                )));
            }
        };
        return match packet_type {
            0 => Ok(Tag::SequenceHeader {
                codec,
                config: body.slice(5..),
            }),
            1 => {
                let cts = body.get(5..8).ok_or_else(truncated)?;
                Ok(Tag::Frame {
                    codec,
                    keyframe: frame_type == 1,
                    composition_ms: si24(cts),
                    data: body.slice(8..),
                })
            }
            2 => Ok(Tag::EndOfSequence),
            3 => Ok(Tag::Frame {
                codec,
                keyframe: frame_type == 1,
                composition_ms: 0,
                data: body.slice(5..),
            }),
            4 => Ok(Tag::Ignored),
            t => Err(unsupported(format!("VideoPacketType {t}"))),
        };
    }
    let frame_type = b0 >> 4;
    let codec_id = b0 & 0x0f;
    if frame_type == 5 {
        return Ok(Tag::Ignored);
    }
    if codec_id != 7 {
        return Err(unsupported(format!("CodecID {codec_id}")));
    }
    let head = body.get(1..5).ok_or_else(truncated)?;
    match head[0] {
        0 => Ok(Tag::SequenceHeader {
            codec: Codec::Avc,
            config: body.slice(5..),
        }),
        1 => Ok(Tag::Frame {
            codec: Codec::Avc,
            keyframe: frame_type == 1,
            composition_ms: si24(&head[1..4]),
            data: body.slice(5..),
        }),
        2 => Ok(Tag::EndOfSequence),
        t => Err(unsupported(format!("AVCPacketType {t}"))),
    }
}

/// Parses the body of an RTMP audio message (FLV `AUDIODATA`).
pub fn parse_audio(body: &Bytes) -> Result<Tag, FlvError> {
    let b0 = *body.first().ok_or(FlvError::Truncated {
        kind: "audio",
        len: 0,
    })?;
    let truncated = || FlvError::Truncated {
        kind: "audio",
        len: body.len(),
    };
    let unsupported = |what: String| FlvError::Unsupported {
        kind: "audio",
        what,
    };
    let format = b0 >> 4;
    let (codec, packet_type, data) = match format {
        10 => {
            let t = *body.get(1).ok_or_else(truncated)?;
            (Codec::Aac, t, body.slice(2..))
        }
        9 => {
            // Enhanced RTMP: [SoundFormat=9:4][AudioPacketType:4][FourCC:32].
            let fourcc = body.get(1..5).ok_or_else(truncated)?;
            let codec = match fourcc {
                b"Opus" => Codec::Opus,
                b"mp4a" => Codec::Aac,
                other => {
                    return Err(unsupported(format!(
                        "FourCC {:?}",
                        String::from_utf8_lossy(other)
                    )));
                }
            };
            match b0 & 0x0f {
                2 => return Ok(Tag::EndOfSequence),
                t @ (0 | 1) => (codec, t, body.slice(5..)),
                t => return Err(unsupported(format!("AudioPacketType {t}"))),
            }
        }
        f => return Err(unsupported(format!("SoundFormat {f}"))),
    };
    match packet_type {
        0 => Ok(Tag::SequenceHeader {
            codec,
            config: data,
        }),
        1 if data.is_empty() => Ok(Tag::Ignored),
        1 => Ok(Tag::Frame {
            codec,
            keyframe: true,
            composition_ms: 0,
            data,
        }),
        t => Err(unsupported(format!("AACPacketType {t}"))),
    }
}

/// A signed 24-bit big-endian integer (FLV `SI24`).
fn si24(b: &[u8]) -> i32 {
    let v = (i32::from(b[0]) << 16) | (i32::from(b[1]) << 8) | i32::from(b[2]);
    (v << 8) >> 8
}

/// AAC's sample rate and samples per frame from an AudioSpecificConfig (ISO/IEC
/// 14496-3 §1.6.2.1: 5 bits of object type, 4 of frequency index or 24 bits of
/// frequency, 4 of channel configuration, then GASpecificConfig's frameLengthFlag).
pub fn aac_timing(asc: &[u8]) -> Option<(u32, u32)> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let bits = asc
        .iter()
        .take(6)
        .fold(0u64, |n, &b| (n << 8) | u64::from(b));
    let len = 8 * asc.len().min(6);
    let take = |at: usize, n: usize| -> Option<u64> {
        (at + n <= len).then(|| (bits >> (len - at - n)) & ((1 << n) - 1))
    };
    let object_type = take(0, 5)?;
    if object_type == 31 {
        // An escaped object type: not one of the AAC profiles an encoder sends.
        return None;
    }
    let index = take(5, 4)? as usize;
    let (rate, at) = if index == 15 {
        (take(9, 24)? as u32, 33)
    } else {
        (*RATES.get(index)?, 9)
    };
    // After channelConfiguration (4 bits): frameLengthFlag for the GA object types.
    let short = matches!(object_type, 1..=4 | 6 | 7 | 17 | 19..=23) && take(at + 4, 1)? == 1;
    (rate > 0).then_some((rate, if short { 960 } else { 1024 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[u8]) -> Bytes {
        Bytes::copy_from_slice(v)
    }

    #[test]
    fn legacy_avc() {
        // FLV §E.4.3.1: keyframe (1) | AVC (7), AVCPacketType 1, CompositionTime -2.
        let t = parse_video(&b(&[0x17, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x65])).unwrap();
        assert_eq!(
            t,
            Tag::Frame {
                codec: Codec::Avc,
                keyframe: true,
                composition_ms: -2,
                data: b(&[0, 0, 0, 1, 0x65]),
            }
        );
        let t = parse_video(&b(&[0x17, 0, 0, 0, 0, 1, 0x64])).unwrap();
        assert!(
            matches!(t, Tag::SequenceHeader { codec: Codec::Avc, config } if config[..] == [1, 0x64])
        );
        assert_eq!(
            parse_video(&b(&[0x27, 2, 0, 0, 0])).unwrap(),
            Tag::EndOfSequence
        );
        assert_eq!(parse_video(&b(&[0x52, 0])).unwrap(), Tag::Ignored);
    }

    #[test]
    fn enhanced_hevc() {
        // E-RTMP: IsExHeader | keyframe (1) | CodedFrames (1), "hvc1", SI24 40.
        let mut v = vec![0x80 | 0x10 | 1];
        v.extend_from_slice(b"hvc1");
        v.extend_from_slice(&[0, 0, 40, 0, 0, 0, 1, 0x26]);
        match parse_video(&b(&v)).unwrap() {
            Tag::Frame {
                codec: Codec::Hevc,
                keyframe: true,
                composition_ms: 40,
                data,
            } => assert_eq!(data.len(), 5),
            t => panic!("{t:?}"),
        }
        let mut x = vec![0x80 | 0x20 | 3];
        x.extend_from_slice(b"hvc1");
        x.push(9);
        assert!(matches!(
            parse_video(&b(&x)).unwrap(),
            Tag::Frame {
                keyframe: false,
                composition_ms: 0,
                ..
            }
        ));
        let mut av1 = vec![0x80 | 0x10];
        av1.extend_from_slice(b"av01");
        assert!(matches!(
            parse_video(&b(&av1)),
            Err(FlvError::Unsupported { .. })
        ));
    }

    #[test]
    fn audio() {
        // SoundFormat 10 (AAC), 44 kHz, 16-bit, stereo; AACPacketType 0.
        let t = parse_audio(&b(&[0xaf, 0, 0x12, 0x10])).unwrap();
        assert!(matches!(
            t,
            Tag::SequenceHeader {
                codec: Codec::Aac,
                ..
            }
        ));
        assert!(matches!(
            parse_audio(&b(&[0xaf, 1, 0x21])).unwrap(),
            Tag::Frame {
                codec: Codec::Aac,
                keyframe: true,
                ..
            }
        ));
        let mut opus = vec![0x90];
        opus.extend_from_slice(b"Opus");
        opus.extend_from_slice(b"OpusHead");
        assert!(matches!(
            parse_audio(&b(&opus)).unwrap(),
            Tag::SequenceHeader {
                codec: Codec::Opus,
                ..
            }
        ));
        // MP3 (SoundFormat 2).
        assert!(matches!(
            parse_audio(&b(&[0x2f, 0xff])),
            Err(FlvError::Unsupported { .. })
        ));
        assert!(matches!(
            parse_audio(&b(&[0xaf])),
            Err(FlvError::Truncated { .. })
        ));
        assert!(matches!(
            parse_audio(&b(&[])),
            Err(FlvError::Truncated { .. })
        ));
    }

    #[test]
    fn aac_configs() {
        // AAC LC (2), 44.1 kHz (4), stereo (2): 0x12 0x10.
        assert_eq!(aac_timing(&[0x12, 0x10]), Some((44100, 1024)));
        // AAC LC, 48 kHz (3), stereo, frameLengthFlag set: 0x11 0x94.
        assert_eq!(aac_timing(&[0x11, 0x94]), Some((48000, 960)));
        assert_eq!(aac_timing(&[0x12]), None);
        assert_eq!(aac_timing(&[0x17, 0x90]), None); // index 14: reserved
    }
}
