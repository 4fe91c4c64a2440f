//! Parse errors: where in the box tree the input went wrong, and why.
//!
//! An [`Error`] names the box path (`moof/traf/trun`) and the byte offset of the
//! offending box so an operator can find it in a capture; [`ErrorKind`] is what a
//! caller branches on (the server maps it to an HTTP status in one place).

use crate::model::FourCC;

/// A refused input. Display text is for humans; branch on [`Error::kind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} at byte {offset}: {kind}")]
pub struct Error {
    /// Box types from the top level down to the offending box, `/`-separated.
    pub path: String,
    /// Byte offset of the offending box inside the input.
    pub offset: u64,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl Error {
    /// What is wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ends inside a box or field.
    #[error("truncated: needed {needed} bytes, {available} left")]
    Truncated {
        /// Bytes the field or box needs.
        needed: u64,
        /// Bytes actually left.
        available: u64,
    },
    /// A box size is smaller than its header or larger than its parent.
    #[error("bad box size {0}")]
    BadSize(u64),
    /// Boxes nest deeper than the parser allows.
    #[error("boxes nested deeper than {0}")]
    TooDeep(usize),
    /// A required box is absent.
    #[error("missing {0} box")]
    Missing(FourCC),
    /// A fragment names a track the init segment does not declare (wrong or no init).
    #[error("track {0} is not in the init segment")]
    UnknownTrack(u32),
    /// A sample entry this crate cannot describe.
    #[error("unsupported codec {0}")]
    UnsupportedCodec(FourCC),
    /// A value that breaks the format's rules.
    #[error("{0}")]
    Invalid(&'static str),
}
