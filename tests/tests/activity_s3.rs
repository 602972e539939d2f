//! `ingest-activity` against moto: the report is a real S3 object read with `GetObject`
//! (If-Match on the event's ETag, streamed), the figures and reports a real table.

use ingest_activity::{Deps, handle};
use kiro::aws::DynamoStore;
use kiro::aws::s3::S3Objects;
use kiro::domain::seat::SourceKey;
use kiro::domain::{Seat, SeatStatus, Sources, Tier, UserId};
use kiro::ports::{ActivityReads, Commit, SeatStore};
use kiro_fakes::MemorySink;
use kiro_fakes::fixtures::{at, write};
use kiro_tests::{World, repo_root, unique};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

fn alice() -> UserId {
    UserId::parse("u", "94482488-3041-7026-18f3-be45837cd0e4").unwrap()
}

fn object_created(bucket: &str, key: &str, etag: &str) -> LambdaEvent<Value> {
    let event = json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "Object Created", "source": "aws.s3",
        "account": "111122223333", "time": "2026-12-02T06:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "size": 1, "etag": etag, "sequencer": "00"},
                   "request-id": "R", "requester": "q.amazonaws.com", "reason": "PutObject"}
    });
    LambdaEvent::new(event, Context::default())
}

struct S3World {
    world: World,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl S3World {
    async fn new() -> S3World {
        let world = World::new().await;
        let s3 = aws_sdk_s3::Client::new(&world.sdk);
        let bucket = unique("reports").to_lowercase();
        s3.create_bucket().bucket(&bucket).send().await.expect("a bucket");
        S3World { world, s3, bucket }
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> String {
        let out = self.s3.put_object().bucket(&self.bucket).key(key).body(body.into()).send().await.expect("put");
        out.e_tag().unwrap_or_default().trim_matches('"').to_owned()
    }

    fn deps(&self) -> Deps<DynamoStore, MemorySink, S3Objects> {
        Deps {
            store: DynamoStore::new(self.world.dynamo.clone(), &self.world.table),
            events: MemorySink::default(),
            objects: S3Objects::new(self.s3.clone()),
        }
    }
}

#[tokio::test]
async fn a_report_put_in_the_bucket_and_delivered_twice_activates_its_seat_once() {
    let w = S3World::new().await;
    let deps = w.deps();
    let seat = Seat {
        user_id: alice(),
        user_name: Some("alice".into()),
        sources: Sources::from([(SourceKey::Direct, Tier::Pro)]),
        tier: Tier::Pro,
        status: SeatStatus::Pending,
        granted_at: at("2026-11-30T10:00:00Z"),
        updated_at: at("2026-11-30T10:00:00Z"),
        canceled_at: None,
        activated_at: None,
        last_active_date: None,
        bills: Default::default(),
        version: 1,
    };
    deps.store.commit(&Commit { seats: vec![write(seat, None)], ..Commit::default() }).await.unwrap();
    let key = "kiro/AWSLogs/111122223333/KiroLogs/user_report/us-east-1/2026/12/01/00/KIRO_IDE_report.csv";
    let body = std::fs::read(repo_root().join("events/activity/user-report-ide.csv")).unwrap();
    let etag = w.put(key, body).await;

    let first = handle(&deps, object_created(&w.bucket, key, &etag)).await.expect("imported");
    let second = handle(&deps, object_created(&w.bucket, key, &etag)).await.expect("acknowledged");

    assert_eq!(
        (first["status"].as_str(), first["activated"].as_u64(), first["rows"].as_u64()),
        (Some("IMPORTED"), Some(1), Some(4))
    );
    assert_eq!(second["status"], "DUPLICATE");
    let stored = deps.store.get_seats(&[alice()]).await.unwrap().remove(0);
    assert_eq!((stored.status, stored.activated_at), (SeatStatus::Active, Some(at("2026-12-01T00:00:00Z"))));
    let activated = deps.events.events().iter().filter(|e| e.detail_type == "Seat Activated").count();
    assert_eq!(activated, 1);
    let imports = deps.store.list_imports(10, None).await.unwrap().items;
    assert_eq!(imports.len(), 2, "one report per delivered event");
    // Four rows, three stored: dave's is idle (every figure zero) in the first file of its day,
    // so it replaces nothing and is not written (still counted in `rows` and `users`).
    assert_eq!(month_rows(&deps.store, "2026-12").await, 3);
    assert_eq!(first["users"].as_u64(), Some(4));
}

#[tokio::test]
async fn a_rejected_file_leaves_nothing_and_a_replaced_object_is_not_read() {
    let w = S3World::new().await;
    let deps = w.deps();
    let key = "kiro/AWSLogs/111122223333/KiroLogs/user_report/us-east-1/2026/12/01/00/bad.csv";
    let etag = w.put(key, std::fs::read(repo_root().join("events/activity/user-report-not-utf8.csv")).unwrap()).await;
    let report = handle(&deps, object_created(&w.bucket, key, &etag)).await.expect("acknowledged");
    assert_eq!(report["status"], "REJECTED", "{report}");
    assert!(report["reason"].as_str().unwrap().contains("UTF-8"));
    assert!(month_rows(&deps.store, "2026-12").await == 0, "nothing of it stored");

    // The event names an ETag the object no longer has (replaced since): nothing is read.
    let other = "kiro/AWSLogs/111122223333/KiroLogs/user_report/us-east-1/2026/12/02/00/x.csv";
    w.put(other, b"Date,UserId\n".to_vec()).await;
    let stale = handle(&deps, object_created(&w.bucket, other, "0123456789abcdef0123456789abcdef")).await.unwrap();
    assert_eq!(stale["status"], "REJECTED", "{stale}");
}

#[tokio::test]
async fn anything_but_an_object_created_envelope_is_acknowledged_and_ignored() {
    let w = S3World::new().await;
    let deps = w.deps();
    for payload in [json!({}), json!([]), json!({"source": "aws.s3", "detail-type": "Object Deleted", "detail": {}})] {
        let answer = handle(&deps, LambdaEvent::new(payload, Context::default())).await.unwrap();
        assert_eq!(answer["signal"], "ignored");
    }
}

/// GET `url` over plain HTTP (moto on loopback): status line and body.
async fn http_get(url: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("moto answers");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

#[tokio::test]
async fn a_large_export_is_put_in_the_export_bucket_and_read_back_through_its_five_minute_link() {
    use kiro::aws::s3::S3Exports;
    use kiro::ports::Exports;
    let w = S3World::new().await;
    let exports = S3Exports::new(w.s3.clone(), &w.bucket);
    let body = b"userId,userName\r\nu-1,alice\r\n".to_vec();
    let link = exports.publish_export("exports/abc/kiro-seats.csv", body.clone()).await.unwrap().expect("a link");
    assert!(link.contains("X-Amz-Expires=300"), "valid five minutes: {link}");
    let (status, got) = http_get(&link).await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(got.as_bytes(), body.as_slice());
    // Without the signature the object is not readable.
    let (status, _) = http_get(link.split('?').next().unwrap()).await;
    assert!(!status.contains(" 200 "), "a private object: {status}");
}

/// The rows stored for `month`, over every shard (each a page: a handful of rows here).
async fn month_rows<S: kiro::ports::ActivityReads>(store: &S, month: &str) -> usize {
    let mut rows = 0;
    for shard in 0..kiro::ports::SEAT_SHARDS {
        let page = store.month_activity(month, shard, None).await.unwrap();
        assert!(page.next_token.is_none());
        rows += page.items.len();
    }
    rows
}
