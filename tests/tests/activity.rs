//! Ingesting Kiro's activity reports (contract: "Activity"), through the application layer over
//! the in-memory ports; `activity_s3.rs` runs the function against moto's S3.

use chrono::NaiveDate;
use kiro::app::activity::ingest;
use kiro::domain::import::{ImportStatus, ObjectRef};
use kiro::domain::seat::SourceKey;
use kiro::domain::{Seat, SeatStatus, Sources, Tier, UserId};
use kiro::ports::{ActivityReads, Commit, SeatStore};
use kiro_fakes::fixtures::{at, write};
use kiro_fakes::{MemoryObjects, MemorySink, MemoryStore};
use kiro_tests::repo_root;

const BUCKET: &str = "kiro-reports";
const KEY: &str = "kiro/AWSLogs/111122223333/KiroLogs/user_report/us-east-1/2026/12/01/00/report.csv";

fn alice() -> UserId {
    UserId::parse("u", "94482488-3041-7026-18f3-be45837cd0e4").unwrap()
}
fn dave() -> UserId {
    UserId::parse("u", "c4a8e418-5091-70bf-2a4d-6e7f8091a2b3").unwrap()
}
fn erin() -> UserId {
    UserId::parse("u", "e4d89488-b0d1-70a5-7c2e-3f4a5b6c7d8e").unwrap()
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("events/activity").join(name)).expect("a sample report")
}

fn pending(user: &UserId, granted: &str) -> Seat {
    Seat {
        user_id: user.clone(),
        user_name: None,
        sources: Sources::from([(SourceKey::Direct, Tier::Pro)]),
        tier: Tier::Pro,
        status: SeatStatus::Pending,
        granted_at: at(granted),
        updated_at: at(granted),
        canceled_at: None,
        activated_at: None,
        last_active_date: None,
        bills: Default::default(),
        version: 1,
    }
}

struct World {
    store: MemoryStore,
    sink: MemorySink,
    objects: MemoryObjects,
}

impl World {
    async fn with(seats: Vec<Seat>) -> World {
        let store = MemoryStore::default();
        for seat in seats {
            store.commit(&Commit { seats: vec![write(seat, None)], ..Commit::default() }).await.unwrap();
        }
        World { store, sink: MemorySink::default(), objects: MemoryObjects::default() }
    }

    async fn ingest(&self, object: &ObjectRef) -> kiro::domain::import::ImportReport {
        ingest(&self.store, &self.sink, &self.objects, object.clone(), at("2026-12-02T06:00:00Z")).await.unwrap()
    }

    async fn seat(&self, user: &UserId) -> Seat {
        self.store.get_seats(std::slice::from_ref(user)).await.unwrap().remove(0)
    }

    fn activations(&self) -> usize {
        self.sink.events().iter().filter(|e| e.detail_type == "Seat Activated").count()
    }
}

#[tokio::test]
async fn a_report_activates_a_pending_seat_once_and_a_redelivery_is_a_duplicate() {
    // Given alice holds a PENDING seat granted on 30 November, dave one granted on 2 December
    let w =
        World::with(vec![pending(&alice(), "2026-11-30T10:00:00Z"), pending(&dave(), "2026-12-02T01:00:00Z")]).await;
    let object = w.objects.put(BUCKET, KEY, sample("user-report-ide.csv"));

    // When the report of 1 December is delivered twice
    let first = w.ingest(&object).await;
    let second = w.ingest(&object).await;

    // Then alice (activity on the 1st, after her grant) is ACTIVE from the 1st's first instant,
    // dave (no activity in it, and a later grant) stays PENDING, and one Seat Activated went out
    assert_eq!(first.status, ImportStatus::Imported);
    assert_eq!((first.rows, first.users, first.activated, first.unknown_users, first.rejected_rows), (4, 4, 1, 2, 0));
    let a = w.seat(&alice()).await;
    assert_eq!(a.status, SeatStatus::Active);
    assert_eq!(a.activated_at, Some(at("2026-12-01T00:00:00Z")));
    assert_eq!(a.last_active_date, NaiveDate::from_ymd_opt(2026, 12, 1));
    assert_eq!(w.seat(&dave()).await.status, SeatStatus::Pending);
    assert_eq!(second.status, ImportStatus::Duplicate);
    assert_eq!(w.activations(), 1, "one Seat Activated, however often the event comes");
    assert_eq!(w.objects.gets(), 2, "two passes over the object the first time, none for the duplicate");
    let listed = w.store.list_imports(10, None).await.unwrap().items;
    assert_eq!(listed.iter().map(|r| r.status).collect::<Vec<_>>(), [ImportStatus::Duplicate, ImportStatus::Imported]);
}

#[tokio::test]
async fn a_rejected_file_stores_nothing_and_says_why() {
    for (sample_name, reason) in
        [("user-report-no-userid.csv", "UserId"), ("user-report-not-utf8.csv", "UTF-8"), ("../README.md", "")]
    {
        let w = World::with(vec![pending(&alice(), "2026-11-30T10:00:00Z")]).await;
        let body =
            if sample_name.ends_with(".md") { b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec() } else { sample(sample_name) };
        let object = w.objects.put(BUCKET, KEY, body);
        let report = w.ingest(&object).await;
        assert_eq!(report.status, ImportStatus::Rejected, "{sample_name}");
        assert!(report.reason.as_deref().unwrap_or_default().contains(reason), "{sample_name}: {:?}", report.reason);
        assert!(w.store.activity_snapshot().is_empty(), "{sample_name}: nothing stored");
        assert_eq!(w.seat(&alice()).await.status, SeatStatus::Pending, "{sample_name}");
        assert_eq!(w.ingest(&object).await.status, ImportStatus::Duplicate, "a rejected object is not read again");
    }
}

#[tokio::test]
async fn bad_rows_are_skipped_and_counted_and_a_repeated_key_keeps_its_last_row() {
    let w = World::with(vec![]).await;
    let bad = w.objects.put(
        BUCKET,
        "kiro/AWSLogs/1/KiroLogs/user_report/r/2026/12/02/00/bad.csv",
        sample("user-report-bad-rows.csv"),
    );
    let report = w.ingest(&bad).await;
    assert_eq!((report.status, report.rows, report.rejected_rows), (ImportStatus::Imported, 7, 4));

    let repeated = w.objects.put(
        BUCKET,
        "kiro/AWSLogs/1/KiroLogs/user_report/r/2026/12/01/00/rep.csv",
        sample("user-report-repeated-key.csv"),
    );
    w.ingest(&repeated).await;
    let alice_day: Vec<_> = w
        .store
        .activity_snapshot()
        .into_iter()
        .filter(|(k, _)| k.user_id == alice() && k.date == NaiveDate::from_ymd_opt(2026, 12, 1).unwrap())
        .collect();
    assert_eq!(alice_day.len(), 1);
    assert_eq!(alice_day[0].1.credits_used.to_string(), "50", "the later row of a key replaces the earlier one");
}

#[tokio::test]
async fn activity_before_the_grant_date_or_for_a_canceled_seat_changes_no_status() {
    let mut canceled = pending(&erin(), "2026-11-01T00:00:00Z");
    canceled.status = SeatStatus::Canceled;
    canceled.sources = Sources::new();
    canceled.canceled_at = Some(at("2026-11-15T00:00:00Z"));
    // alice granted on 2 December: the report of the 1st is before her grant.
    let w = World::with(vec![pending(&alice(), "2026-12-02T03:00:00Z"), canceled]).await;
    let csv = "Date,UserId,Client_Type,Total_Messages\n2026-12-01,94482488-3041-7026-18f3-be45837cd0e4,KIRO_CLI,5\n2026-12-01,e4d89488-b0d1-70a5-7c2e-3f4a5b6c7d8e,KIRO_CLI,9\n";
    let report = w.ingest(&w.objects.put(BUCKET, KEY, csv)).await;
    assert_eq!((report.activated, report.unknown_users), (0, 0));
    let a = w.seat(&alice()).await;
    assert_eq!((a.status, a.last_active_date), (SeatStatus::Pending, NaiveDate::from_ymd_opt(2026, 12, 1)));
    let e = w.seat(&erin()).await;
    assert_eq!((e.status, e.last_active_date), (SeatStatus::Canceled, NaiveDate::from_ymd_opt(2026, 12, 1)));
    assert_eq!(w.activations(), 0);
}

#[tokio::test]
async fn a_report_of_many_rows_is_written_in_batches_of_25() {
    let w = World::with(vec![]).await;
    let mut csv = String::from("Date,UserId,Client_Type,Credits_Used\n");
    for i in 0..1_000u32 {
        csv.push_str(&format!("2026-12-01,{:08x}-3041-7026-18f3-be45837cd0e4,KIRO_IDE,{i}.5\n", i));
    }
    w.store.reset_requests();
    let report = w.ingest(&w.objects.put(BUCKET, KEY, csv)).await;
    assert_eq!((report.rows, report.users, report.unknown_users), (1_000, 1_000, 1_000));
    let by_op = w.store.requests_by_operation();
    assert_eq!(by_op.get("BatchWriteItem(activity)"), Some(&40), "{by_op:?}");
    assert_eq!(w.store.activity_snapshot().len(), 1_000);
}

/// The stored figures of `user` on 1 December.
fn stored(w: &World, user: &UserId) -> Vec<String> {
    w.store
        .activity_snapshot()
        .into_iter()
        .filter(|(k, _)| &k.user_id == user && k.date == NaiveDate::from_ymd_opt(2026, 12, 1).unwrap())
        .map(|(k, f)| format!("{} {}", k.client_type.as_str(), f.credits_used))
        .collect()
}

#[tokio::test]
async fn idle_rows_of_a_first_day_are_not_written_but_still_counted() {
    // Given a daily file of 100 users, every other one idle (all figures zero)
    let w = World::with(vec![]).await;
    let mut csv = String::from("Date,UserId,Client_Type,Credits_Used,Total_Messages\n");
    for i in 0..100u32 {
        let (credits, messages) = if i % 2 == 0 { ("1.5", "3") } else { ("0.0", "0") };
        csv.push_str(&format!("2026-12-01,{i:08x}-3041-7026-18f3-be45837cd0e4,KIRO_IDE,{credits},{messages}\n"));
    }
    w.store.reset_requests();

    // When it is the first file of that day and client type
    let report = w.ingest(&w.objects.put(BUCKET, KEY, csv)).await;

    // Then the 50 active rows are written in two full batches, the idle ones not at all, and
    // the report still counts every row and user
    assert_eq!((report.rows, report.users), (100, 100));
    let by_op = w.store.requests_by_operation();
    assert_eq!(by_op.get("BatchWriteItem(activity)"), Some(&2), "{by_op:?}");
    assert_eq!(by_op.get("UpdateItem(activity day)"), Some(&1), "{by_op:?}");
    assert_eq!(w.store.activity_snapshot().len(), 50);
}

#[tokio::test]
async fn an_idle_row_replaces_figures_an_earlier_file_or_row_stored() {
    let w = World::with(vec![]).await;
    // A first file of 1 December: alice used 41.2 credits in the IDE.
    w.ingest(&w.objects.put(BUCKET, KEY, sample("user-report-ide.csv"))).await;
    assert_eq!(stored(&w, &alice()), ["KIRO_IDE 41.237052"]);

    // A corrected file of the same day and client type says she was idle: her figures go to zero.
    let corrected =
        "Date,UserId,Client_Type,Credits_Used\n2026-12-01,94482488-3041-7026-18f3-be45837cd0e4,KIRO_IDE,0\n";
    let key = KEY.replace("report.csv", "corrected.csv");
    w.ingest(&w.objects.put(BUCKET, &key, corrected)).await;
    assert_eq!(stored(&w, &alice()), ["KIRO_IDE 0"], "a later file replaces the day's figures, idle or not");

    // In a first file of another day, a key's idle row 30 rows after its busy one still replaces it.
    let mut csv = String::from("Date,UserId,Client_Type,Credits_Used\n");
    csv.push_str("2026-12-01,c4a8e418-5091-70bf-2a4d-6e7f8091a2b3,KIRO_CLI,9\n");
    for i in 0..30u32 {
        csv.push_str(&format!("2026-12-01,{i:08x}-3041-7026-18f3-be45837cd0e4,KIRO_CLI,1\n"));
    }
    csv.push_str("2026-12-01,c4a8e418-5091-70bf-2a4d-6e7f8091a2b3,KIRO_CLI,0\n");
    let key = KEY.replace("report.csv", "cli.csv");
    w.ingest(&w.objects.put(BUCKET, &key, csv)).await;
    assert_eq!(stored(&w, &dave()), ["KIRO_CLI 0"], "the file's later row of a key wins, idle or not");
}
