//! Every way a request can fail, and the one function that turns a failure into
//! an HTTP status and a JSON body `{"error": "...", "field": "..."}`.
//!
//! Handlers return `Result<Response, ApiError>`; nothing else in the server picks a
//! status code for an error. Display text is for humans; clients branch on the status.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use dvrclip_fmp4::progressive::BuildError;
use dvrclip_ingest::UploadError;

use crate::auth::AuthError;
use crate::http::body::BodyError;
use crate::http::host::HostError;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: missing or wrong API key.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// 400: the request is malformed; `field` names the offending field when there is one.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The JSON field or parameter at fault.
        field: Option<&'static str>,
    },
    /// 403: the ingest key is wrong or the path leaves the stream.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such stream, clip, video or path.
    #[error("{0}")]
    NotFound(String),
    /// 409: the stream already has a publisher (a forwarded publish refused).
    #[error("{0}")]
    Conflict(String),
    /// 405: the path exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// 408: the body did not arrive in time.
    #[error("request body timed out")]
    Timeout,
    /// 410: the clip was made but its media did not survive a restart.
    #[error("{0}")]
    Gone(String),
    /// 412: a fragment without (or with a mismatched) init segment.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: the body is over the limit for its kind.
    #[error("{0}")]
    TooLarge(String),
    /// 415: a codec the server cannot describe.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// 422: understood but not possible for this stream (DVR disabled).
    #[error("{message}")]
    Unprocessable {
        /// Why.
        message: String,
        /// The field at fault.
        field: Option<&'static str>,
    },
    /// 425: the clip is still recording.
    #[error("{0}")]
    TooEarly(String),
    /// 429: the stream holds as many clips as it may.
    #[error("{0}")]
    TooManyRequests(String),
    /// 503: over the memory budget, or shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// 503 (500 for a record this version cannot read): the cluster's etcd failed
    /// or refused; the reason is in the message.
    #[error("cluster: {0}")]
    Cluster(#[from] dvrclip_cluster::ClusterError),
    /// 502: the node owning the stream did not answer a forwarded request.
    #[error("{0}")]
    BadGateway(String),
    /// 500: a bug or a failed dependency; the message is logged, not trusted.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad_field(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            field: Some(field),
        }
    }

    /// A 400 with no single field at fault.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            field: None,
        }
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooEarly(_) => StatusCode::TOO_EARLY,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Cluster(dvrclip_cluster::ClusterError::Record { .. }) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Cluster(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            ApiError::BadRequest { field, .. } | ApiError::Unprocessable { field, .. } => *field,
            _ => None,
        }
    }

    /// The response: status, JSON body, and `WWW-Authenticate`/`Allow` where the RFC
    /// asks for them (RFC 9110 §11.6.1, §15.5.6).
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = self.status();
        let mut body = serde_json::json!({ "error": self.to_string() });
        if let Some(field) = self.field() {
            body["field"] = field.into();
        }
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            ApiError::Unauthorized(_) => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("APIKey"));
            }
            ApiError::MethodNotAllowed(allow) => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        resp
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
            BodyError::Timeout => ApiError::Timeout,
            BodyError::Aborted(_) | BodyError::BadLength => ApiError::bad(e.to_string()),
            BodyError::NoMemory { .. } | BodyError::Storage(_) => {
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        // RFC 9112 §3.2: "MUST respond with a 400 (Bad Request)".
        ApiError::bad_field("Host", e.to_string())
    }
}

/// Media that does not parse (DASH-IF Live Media Ingest: 412 a track the init
/// lacks, 415 a codec the server cannot describe, 400 anything malformed).
fn media_error(e: &dvrclip_fmp4::Error, message: String) -> ApiError {
    use dvrclip_fmp4::ErrorKind;
    match e.kind() {
        ErrorKind::UnknownTrack(_) => ApiError::PreconditionFailed(message),
        ErrorKind::UnsupportedCodec(_) => ApiError::UnsupportedMedia(message),
        _ => ApiError::bad(format!("malformed media: {message}")),
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::UnknownKey => ApiError::Forbidden(e.to_string()),
            UploadError::Engine(e) => e.into(),
            UploadError::BadName
            | UploadError::ReservedName
            | UploadError::UnsupportedType(_)
            | UploadError::NotUnderRendition
            | UploadError::Playlist(_) => ApiError::bad(e.to_string()),
        }
    }
}

impl From<BuildError> for ApiError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Empty => ApiError::NotFound("the clip holds no media".into()),
            e => ApiError::Internal(format!("building the MP4: {e}")),
        }
    }
}

impl From<dvrclip_engine::Error> for ApiError {
    fn from(e: dvrclip_engine::Error) -> Self {
        use dvrclip_engine::Error as E;
        let field = e.field();
        let message = e.to_string();
        match e {
            E::Media { source, .. } => media_error(&source, message),
            E::UnknownStream(_) | E::UnknownRendition { .. } | E::UnknownClip => {
                ApiError::NotFound(message)
            }
            E::DvrDisabled(_) | E::NoMediaInRange(_) => ApiError::Unprocessable { message, field },
            E::DurationTooLong { .. }
            | E::ZeroDuration
            | E::StartTooFarAhead { .. }
            | E::BadExpiration { .. }
            | E::InvalidSetting { .. }
            | E::InvalidName(_)
            | E::TooManyRenditions { .. }
            | E::EmptySegment { .. }
            | E::BadTiming { .. }
            | E::EmptyInit => ApiError::BadRequest { message, field },
            E::StreamInactive(_) => ApiError::Forbidden(message),
            E::ClipLost { .. } => ApiError::Gone(message),
            E::NoInit { .. } | E::TrackMismatch { .. } => ApiError::PreconditionFailed(message),
            E::TooManyClips { .. } => ApiError::TooManyRequests(message),
            E::OverBudget { .. } | E::Storage { .. } | E::NoVideoId(_) => {
                ApiError::Unavailable(message)
            }
            _ => ApiError::Internal(message),
        }
    }
}
