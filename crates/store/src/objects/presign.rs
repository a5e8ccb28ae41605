//! Presigned URLs on both backends: S3 signs with SigV4 (`rusty-s3`); the local directory has no
//! server of its own, so this server signs URLs to itself with HMAC-SHA256, under a key kept in
//! the database so that every replica accepts every other's URLs.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use yatai_domain::{time::now_micros, Error};

use crate::db::{settings, Db};

/// What a presigned URL allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresignOp {
    /// Download the object (Range allowed).
    Get,
    /// Upload the whole object in one PUT.
    Put,
    /// Upload one part of a multipart upload.
    Part { upload_id: String, part_number: u16 },
}

impl PresignOp {
    /// The path segment of a local URL.
    pub fn name(&self) -> &'static str {
        match self {
            PresignOp::Get => "get",
            PresignOp::Put => "put",
            PresignOp::Part { .. } => "part",
        }
    }
}

/// The fields of a local presigned URL, as its query carries them.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LocalPresigned {
    pub key: String,
    #[serde(default)]
    pub upload_id: String,
    #[serde(default)]
    pub part_number: u16,
    pub expires: i64,
    pub signature: String,
}

/// The path under the public URL where local presigned URLs point.
pub const LOCAL_PATH: &str = "/api/v1/presigned";

/// The setting that holds the local signing key.
const KEY_SETTING: &str = "presign_key";

/// Signs and checks the server's own URLs (local backend).
#[derive(Debug)]
pub(super) struct LocalSigner {
    db: Db,
    base_url: String,
    key: tokio::sync::OnceCell<Vec<u8>>,
}

impl LocalSigner {
    pub(super) fn new(db: Db, base_url: String) -> Arc<Self> {
        Arc::new(LocalSigner {
            db,
            base_url: base_url.trim_end_matches('/').to_string(),
            key: tokio::sync::OnceCell::new(),
        })
    }

    async fn key(&self) -> Result<&[u8], Error> {
        self.key
            .get_or_try_init(|| async {
                let pool = self.db.pool();
                let mut fresh = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut fresh);
                settings::insert_new(pool, KEY_SETTING, &hex::encode(fresh)).await?;
                let key = settings::get(pool, KEY_SETTING)
                    .await?
                    .ok_or_else(|| Error::Internal("the presign key is missing".into()))?;
                Ok::<_, Error>(key.into_bytes())
            })
            .await
            .map(Vec::as_slice)
    }

    fn signature(
        key: &[u8],
        op: &str,
        object: &str,
        upload_id: &str,
        part: u16,
        expires: i64,
    ) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(format!("{op}\n{object}\n{upload_id}\n{part}\n{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub(super) async fn url(
        &self,
        key: &str,
        op: &PresignOp,
        ttl: Duration,
    ) -> Result<String, Error> {
        let expires = now_micros() / 1_000_000 + ttl.as_secs() as i64;
        let (upload_id, part) = match op {
            PresignOp::Part {
                upload_id,
                part_number,
            } => (upload_id.as_str(), *part_number),
            _ => ("", 0),
        };
        let sig = Self::signature(self.key().await?, op.name(), key, upload_id, part, expires);
        let mut url = url::Url::parse(&format!("{}{LOCAL_PATH}/{}", self.base_url, op.name()))
            .map_err(|e| Error::Internal(format!("bad public URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("key", key)
            .append_pair("upload_id", upload_id)
            .append_pair("part_number", &part.to_string())
            .append_pair("expires", &expires.to_string())
            .append_pair("signature", &sig);
        Ok(url.to_string())
    }

    pub(super) async fn verify(&self, op_name: &str, p: &LocalPresigned) -> Result<(), Error> {
        let expected = Self::signature(
            self.key().await?,
            op_name,
            &p.key,
            &p.upload_id,
            p.part_number,
            p.expires,
        );
        if !constant_time_eq(expected.as_bytes(), p.signature.as_bytes()) {
            return Err(Error::Forbidden(
                "the presigned URL's signature does not match".into(),
            ));
        }
        if p.expires < now_micros() / 1_000_000 {
            return Err(Error::Forbidden(
                "the presigned URL has expired; ask for a new one".into(),
            ));
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs S3 URLs that clients use directly (SigV4 query signing by `rusty-s3`).
#[derive(Debug)]
pub(super) struct S3Presigner {
    pub(super) bucket: rusty_s3::Bucket,
    pub(super) credentials: rusty_s3::Credentials,
}

impl S3Presigner {
    pub(super) fn url(&self, key: &str, op: &PresignOp, ttl: Duration) -> String {
        use rusty_s3::S3Action;
        let creds = Some(&self.credentials);
        match op {
            PresignOp::Get => self.bucket.get_object(creds, key).sign(ttl),
            PresignOp::Put => self.bucket.put_object(creds, key).sign(ttl),
            PresignOp::Part {
                upload_id,
                part_number,
            } => self
                .bucket
                .upload_part(creds, key, *part_number, upload_id)
                .sign(ttl),
        }
        .to_string()
    }
}
