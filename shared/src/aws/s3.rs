//! `ReportObjects`: Kiro's report files in S3 (`s3:GetObject`), streamed.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_smithy_runtime_api::client::result::SdkError;

use crate::domain::import::ObjectRef;
use crate::ports::{ObjectError, ReportObjects};

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
