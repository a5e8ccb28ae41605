//! Rules of the bento and model registry.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How archives travel between the client and object storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransmissionStrategy {
    /// Through the server (`PUT .../upload`, `GET .../download`).
    #[default]
    Proxy,
    /// Straight to storage through presigned URLs (single or multipart).
    PresignedUrl,
}

impl TransmissionStrategy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TransmissionStrategy::Proxy => "proxy",
            TransmissionStrategy::PresignedUrl => "presigned_url",
        }
    }
}

impl std::str::FromStr for TransmissionStrategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "" | "proxy" => Ok(TransmissionStrategy::Proxy),
            "presigned_url" => Ok(TransmissionStrategy::PresignedUrl),
            other => Err(Error::invalid(format!(
                "unknown transmission strategy {other:?}; expected proxy or presigned_url"
            ))),
        }
    }
}
