//! The one error type of the domain; the server maps each kind to an HTTP status in one place.

/// What went wrong, classified by who has to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a rule (HTTP 400).
    #[error("{0}")]
    InvalidArgument(String),
    /// No credentials, or credentials that are not valid (HTTP 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials that do not allow this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist or is not visible to the caller (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The resource exists already, or is in a state that forbids this (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// A fault on our side: database, object storage, I/O (HTTP 500).
    #[error("{0}")]
    Internal(String),
    /// A dependency is not available right now (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// Bad input in one named field of a body or form: the dashboard shows the message next to
    /// that field. The HTTP status is the inner error's.
    #[error("{cause}")]
    Field { field: String, cause: Box<Error> },
    /// The caller must slow down: too many attempts, or the server is saturated (HTTP 429 with
    /// `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        /// Seconds after which a new attempt may succeed.
        retry_after_secs: u64,
    },
}

impl Error {
    /// Shorthand for a "not found" error naming the kind of resource and its name.
    pub fn not_found(kind: &str, name: impl std::fmt::Display) -> Self {
        Error::NotFound(format!("{kind} \"{name}\" not found"))
    }

    /// Shorthand for a bad-input error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// Ties an error to the input field it is about (a message alone is a bad-input error).
    pub fn field(field: impl Into<String>, cause: impl Into<Error>) -> Self {
        match cause.into() {
            // The innermost field names the input: keep it.
            e @ Error::Field { .. } => e,
            cause => Error::Field {
                field: field.into(),
                cause: Box::new(cause),
            },
        }
    }

    /// The input field this error is about, if any.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            Error::Field { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The error without its field.
    pub fn without_field(&self) -> &Error {
        match self {
            Error::Field { cause, .. } => cause.without_field(),
            other => other,
        }
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::InvalidArgument(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::InvalidArgument(message.to_string())
    }
}

/// Result with the domain error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
