//! One error-code enum for every input path: the gRPC ingest service answers with its
//! [`tonic::Code`], the REST API with its HTTP status and a JSON body
//! `{"error": "...", "field": "..."}`.

use axum::http::StatusCode;

/// What kind of failure a request met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or a value is out of range (names the field).
    InvalidArgument,
    /// No credentials, or unknown or revoked ones.
    Unauthenticated,
    /// The credentials may not do this.
    PermissionDenied,
    /// No such object.
    NotFound,
    /// The object is not in a state that allows this (already resolved, already exists).
    Conflict,
    /// The request is larger than allowed (body, batch).
    TooLarge,
    /// Too many requests; retry later.
    RateLimited,
    /// The collector cannot serve now (database down, shutting down); retry later.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorCode {
    /// The gRPC status code.
    pub fn grpc(self) -> tonic::Code {
        match self {
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::Conflict => tonic::Code::FailedPrecondition,
            ErrorCode::TooLarge | ErrorCode::RateLimited => tonic::Code::ResourceExhausted,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// The HTTP status.
    pub fn http(self) -> StatusCode {
        match self {
            ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code of an HTTP status (for responses made by the HTTP stack itself).
    pub fn from_http(s: StatusCode) -> ErrorCode {
        match s {
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
            StatusCode::FORBIDDEN => ErrorCode::PermissionDenied,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => ErrorCode::NotFound,
            StatusCode::CONFLICT => ErrorCode::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
            s if s.is_server_error() => ErrorCode::Internal,
            _ => ErrorCode::InvalidArgument,
        }
    }

    /// A gRPC status with this code.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.grpc(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_both_ways() {
        for c in [
            ErrorCode::InvalidArgument,
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::TooLarge,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            assert_eq!(ErrorCode::from_http(c.http()), c, "{c:?}");
        }
        assert_eq!(ErrorCode::TooLarge.grpc(), tonic::Code::ResourceExhausted);
        assert_eq!(
            ErrorCode::Unavailable.http(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
