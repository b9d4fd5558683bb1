//! S3-compatible storage: configuration only. Built with the `s3` feature, delta-rs's S3
//! backend is registered; credentials and endpoint come from the usual `AWS_*`
//! environment variables. Concurrent writers need conditional puts (`AWS_CONDITIONAL_PUT=etag`,
//! which S3 and most compatible stores support) or a locking provider (see the README).

use crate::error::StoreError;

#[cfg(feature = "s3")]
pub(crate) fn register() -> Result<(), StoreError> {
    deltalake::aws::register_handlers(None);
    Ok(())
}

#[cfg(not(feature = "s3"))]
pub(crate) fn register() -> Result<(), StoreError> {
    Err(StoreError::Config(
        "this build has no S3 support; rebuild with `--features dvc-pulse-store/s3`".into(),
    ))
}
