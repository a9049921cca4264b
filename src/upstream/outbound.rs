//! A request on its way to Keystone, and why it may not get there.

use ::http::StatusCode;
use thiserror::Error;

use crate::conn::ConnInfo;
use crate::http::body::Body;
use crate::identity::Identity;

/// Why a request could not be forwarded.
#[derive(Debug, Error)]
pub enum UpstreamError {
    #[error("Keystone is unreachable: {0}")]
    Connect(std::io::Error),
    #[error("Keystone did not accept the connection in time")]
    ConnectTimeout,
    #[error("Keystone did not answer in time")]
    ResponseTimeout,
    #[error("Keystone sent an invalid response: {0}")]
    BadResponse(String),
    #[error("connection to Keystone failed: {0}")]
    Io(std::io::Error),
    #[error("request body is larger than the limit of {0} bytes")]
    BodyTooLarge(u64),
    #[error("request body could not be read: {0}")]
    ClientBody(String),
    #[error("{0}")]
    ClientTimeout(crate::http::body::BodyTimeout),
    #[error("request headers and identity are {0} bytes, more than the uwsgi limit of 65535")]
    EnvironTooLarge(usize),
    #[error("request cannot be forwarded: {0}")]
    BadRequest(String),
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Connect(_)
            | UpstreamError::ConnectTimeout
            | UpstreamError::BadResponse(_)
            | UpstreamError::Io(_) => StatusCode::BAD_GATEWAY,
            UpstreamError::ResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::ClientTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            UpstreamError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UpstreamError::ClientBody(_) | UpstreamError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UpstreamError::EnvironTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// Short label for the `fedgate_upstream_errors_total` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::ResponseTimeout => "response_timeout",
            UpstreamError::BadResponse(_) => "bad_response",
            UpstreamError::Io(_) => "io",
            UpstreamError::BodyTooLarge(_) => "body_too_large",
            UpstreamError::ClientBody(_) => "client_body",
            UpstreamError::ClientTimeout(_) => "client_timeout",
            UpstreamError::EnvironTooLarge(_) => "environ_too_large",
            UpstreamError::BadRequest(_) => "bad_request",
        }
    }

    /// A failure to read the client's request body: the client's fault.
    pub fn client_body(e: &crate::http::body::BoxError) -> UpstreamError {
        match e.downcast_ref::<crate::http::body::BodyTimeout>() {
            Some(t) => UpstreamError::ClientTimeout(*t),
            None => UpstreamError::ClientBody(e.to_string()),
        }
    }

    /// Whether Keystone (rather than the client) is at fault.
    pub fn is_upstream_fault(&self) -> bool {
        self.status().is_server_error()
    }
}

/// A request ready to leave: scrubbed headers, forwarding headers set,
/// identity verified.
pub struct Outbound<'a> {
    pub parts: ::http::request::Parts,
    pub body: Body,
    pub conn: &'a ConnInfo,
    pub identity: Option<&'a Identity>,
}
