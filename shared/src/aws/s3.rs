//! `ReportObjects`: Kiro's report files in S3 (`s3:GetObject`), streamed.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_smithy_runtime_api::client::result::SdkError;

use crate::domain::import::ObjectRef;
use crate::ports::{Exports, ObjectError, ReportObjects};

/// [`ReportObjects`] backed by S3.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
}

impl S3Objects {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// An ETag as `If-Match` takes it: quoted (events carry it bare).
fn quoted(etag: &str) -> String {
    if etag.starts_with('"') { etag.to_owned() } else { format!("\"{etag}\"") }
}

impl ReportObjects for S3Objects {
    async fn open(&self, object: &ObjectRef) -> Result<Box<dyn std::io::Read + Send>, ObjectError> {
        let result = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            // The bytes the event announced, both passes: a newer upload is another event's.
            .if_match(quoted(&object.etag))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if is_gone(&e) => return Err(ObjectError::Gone),
            Err(e) => return Err(ObjectError::Aws { operation: "GetObject", source: Box::new(e) }),
        };
        // Read on a blocking thread (the caller's `spawn_blocking`): the bridge pulls the body
        // from this runtime as the reader asks for it, so memory holds a buffer, not the file.
        Ok(Box::new(tokio_util::io::SyncIoBridge::new(out.body.into_async_read())))
    }
}

/// Deleted (`NoSuchKey`, 404) or replaced since the event (`PreconditionFailed`, 412).
fn is_gone(err: &SdkError<GetObjectError, aws_smithy_runtime_api::http::Response>) -> bool {
    match err {
        SdkError::ServiceError(ctx) => ctx.err().is_no_such_key() || matches!(ctx.raw().status().as_u16(), 404 | 412),
        _ => false,
    }
}

/// [`Exports`] in an S3 bucket of the stack's (`CONSOLE_EXPORT_BUCKET`): the object is private,
/// the link a presigned `GetObject` valid five minutes; the bucket expires objects after a day.
#[derive(Debug, Clone)]
pub struct S3Exports {
    client: Client,
    bucket: String,
}

impl S3Exports {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }
}

/// How long a download link works (the contract: at most 5 minutes).
pub const EXPORT_LINK_SECONDS: u64 = 300;

impl Exports for S3Exports {
    async fn publish_export(&self, name: &str, body: Vec<u8>) -> Result<Option<String>, ObjectError> {
        let aws = |operation: &'static str| {
            move |e: Box<dyn std::error::Error + Send + Sync>| ObjectError::Aws { operation, source: e }
        };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(name)
            .content_type("text/csv; charset=utf-8")
            .content_disposition("attachment; filename=\"kiro-seats.csv\"")
            .body(body.into())
            .send()
            .await
            .map_err(|e| aws("PutObject")(Box::new(e)))?;
        let expires =
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(EXPORT_LINK_SECONDS))
                .map_err(|e| aws("GetObject")(Box::new(e)))?;
        let link = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(name)
            .presigned(expires)
            .await
            .map_err(|e| aws("GetObject")(Box::new(e)))?;
        Ok(Some(link.uri().to_owned()))
    }
}
