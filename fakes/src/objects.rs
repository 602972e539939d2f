//! Report files in memory: [`ReportObjects`] for tests and benchmarks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use kiro::domain::import::ObjectRef;
use kiro::ports::{ObjectError, ReportObjects};

/// (bucket, key) → (ETag, body).
type Objects = HashMap<(String, String), (String, Vec<u8>)>;

/// Objects by (bucket, key), each with its ETag; counts the `GetObject`s.
#[derive(Debug, Default)]
pub struct MemoryObjects {
    objects: Mutex<Objects>,
    gets: AtomicU64,
}

impl MemoryObjects {
    /// Stores `body` under (bucket, key) with a fresh ETag; answers its reference.
    pub fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> ObjectRef {
        let body = body.into();
        let etag =
            format!("{:032x}", body.len() as u128 * 0x9e37_79b9_7f4a_7c15 + self.gets.load(Ordering::Relaxed) as u128);
        self.objects.lock().unwrap().insert((bucket.to_owned(), key.to_owned()), (etag.clone(), body));
        ObjectRef { bucket: bucket.to_owned(), key: key.to_owned(), etag }
    }

    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }
}

impl ReportObjects for MemoryObjects {
    async fn open(&self, object: &ObjectRef) -> Result<Box<dyn std::io::Read + Send>, ObjectError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        let objects = self.objects.lock().unwrap();
        match objects.get(&(object.bucket.clone(), object.key.clone())) {
            Some((etag, body)) if *etag == object.etag => Ok(Box::new(std::io::Cursor::new(body.clone()))),
            _ => Err(ObjectError::Gone),
        }
    }
}
