//! Operations on a Yatai installation, behind the `yatai` subcommands: checking the S3
//! connection (`s3check`), and backing up / restoring the metadata database with every archive it
//! refers to (`backup`, `restore`).

pub mod s3check;
pub mod sigv4;
