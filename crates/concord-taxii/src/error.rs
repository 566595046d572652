//! The TAXII error message resource (TAXII 2.1 §3.6.1) and every error Concord answers.

use serde::Serialize;

/// Every error a TAXII endpoint of Concord answers, with its HTTP status and title, in one
/// table. Adding an error is one line here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: a malformed filter, parameter or body.
    BadRequest,
    /// 401: no or wrong credentials.
    Unauthorized,
    /// 403: the credential may not do this.
    Forbidden,
    /// 404: no such API root, collection, object or status.
    NotFound,
    /// 405: the method is not allowed on this endpoint.
    MethodNotAllowed,
    /// 406: the `Accept` header allows no TAXII 2.1 response.
    NotAcceptable,
    /// 413: the request is larger than the API root's `max_content_length`.
    PayloadTooLarge,
    /// 415: the POST body is not `application/taxii+json;version=2.1`.
    UnsupportedMediaType,
    /// 422: well-formed but not processable (e.g. an envelope without `objects`).
    UnprocessableEntity,
    /// 429: too many failed authentications from one source or for one key (issue 16).
    TooManyRequests,
    /// 500: a failure of the node.
    Internal,
    /// 503: the node cannot take this request now: every credential-check slot is busy,
    /// or the node is stopping and the request's work was rolled back (retry later).
    ServiceUnavailable,
}

impl ErrorCode {
    /// `(status, error_code, title)` for each code.
    #[rustfmt::skip] // an aligned table reads as one
    const fn row(self) -> (u16, &'static str, &'static str) {
        use ErrorCode::*;
        match self {
            BadRequest           => (400, "bad_request",            "Bad request"),
            Unauthorized         => (401, "unauthorized",           "Authentication required"),
            Forbidden            => (403, "forbidden",              "Permission denied"),
            NotFound             => (404, "not_found",              "Not found"),
            MethodNotAllowed     => (405, "method_not_allowed",     "Method not allowed"),
            NotAcceptable        => (406, "not_acceptable",         "Not acceptable"),
            PayloadTooLarge      => (413, "payload_too_large",      "Request too large"),
            UnsupportedMediaType => (415, "unsupported_media_type", "Unsupported media type"),
            UnprocessableEntity  => (422, "unprocessable_entity",   "Unprocessable entity"),
            TooManyRequests      => (429, "too_many_requests",      "Too many requests"),
            Internal             => (500, "internal",               "Internal server error"),
            ServiceUnavailable   => (503, "service_unavailable",    "Service unavailable"),
        }
    }

    /// The HTTP status code.
    pub const fn status(self) -> u16 {
        self.row().0
    }
}

/// An error answered by a TAXII endpoint; serialises as the error message resource.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {description}", code.row().2, code.status())]
pub struct TaxiiError {
    /// Which error.
    pub code: ErrorCode,
    /// What went wrong, for a person: names the parameter, object id or limit involved.
    pub description: String,
}

impl TaxiiError {
    /// An error with a description.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> TaxiiError {
        TaxiiError {
            code,
            description: description.into(),
        }
    }

    /// The error message resource (TAXII 2.1 §3.6.1): `title` required, `http_status` a string.
    pub fn resource(&self) -> ErrorMessage<'_> {
        let (status, error_code, title) = self.code.row();
        ErrorMessage {
            title,
            description: &self.description,
            error_code,
            http_status: status.to_string(),
        }
    }
}

/// The JSON body of an error (TAXII 2.1 §3.6.1).
#[derive(Debug, Serialize)]
pub struct ErrorMessage<'a> {
    /// Short, human-readable summary.
    pub title: &'static str,
    /// Details.
    pub description: &'a str,
    /// Concord's code for the error.
    pub error_code: &'static str,
    /// The HTTP status, as a string.
    pub http_status: String,
}
