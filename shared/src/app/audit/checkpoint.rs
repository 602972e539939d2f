//! How an audit spans Lambda invocations: when it must stop, whether a request starts, resumes
//! or leaves alone the audit in progress, and what is saved in between.
//!
//! An invocation works in units (one group read, one page of seats, one batch of changes, …)
//! and stops between two of them while the time left still covers a save and the longest unit
//! seen. It then saves its state under a new step of the checkpoint head, releasing its lease,
//! and puts an `Audit Requested` event with `continues: <auditId>` on the bus, which the
//! `AuditRequested` rule delivers to this function again. Whoever resumes takes the lease with a
//! conditional write first, so duplicate deliveries do no work twice.

use crate::domain::audit::AuditMode;
use crate::ports::CheckpointHead;
use chrono::{DateTime, Utc};

use super::Request;

/// A checkpoint not saved for this long belongs to an audit that lost its continuation (a
/// crash, a failed delivery): its drift is too old to apply, so the next audit starts over.
pub const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(1);

pub use crate::app::budget::Budget;

/// What a request does given the checkpoint head.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// A new audit; `replaces` is a stale checkpoint it supersedes.
    Fresh { replaces: Option<CheckpointHead> },
    /// Continue the audit of this head.
    Resume(CheckpointHead),
    /// Nothing to do, and why.
    Skip(String),
}

fn describe(mode: AuditMode, force: bool) -> String {
    if force { format!("{}, forced", mode.as_str()) } else { mode.as_str().to_owned() }
}

/// A continuation resumes its own audit; a new request resumes the audit in progress when it
/// asks for the same (mode, force), and otherwise waits for it to finish — but a `repair`
/// supersedes a `report` in progress, running or not: the daily repair is never starved by
/// reports (the superseded report stops at its next save). A stale checkpoint is superseded; a
/// live lease means another invocation is at work.
pub fn begin(request: &Request, head: Option<CheckpointHead>, now: DateTime<Utc>) -> Begin {
    let Some(head) = head else {
        return match &request.continues {
            None => Begin::Fresh { replaces: None },
            Some(id) => Begin::Skip(format!("audit {id} is not in progress: it has finished, or never started")),
        };
    };
    if request.continues.is_none() && request.mode == AuditMode::Repair && head.mode == AuditMode::Report {
        return Begin::Fresh { replaces: Some(head) };
    }
    let retried = !request.invocation.is_empty() && head.lease_owner == request.invocation;
    if head.lease_until_ms > now.timestamp_millis() && !retried {
        return Begin::Skip(format!("audit {} is running in another invocation", head.audit_id));
    }
    if now - head.saved_at > STALE_AFTER {
        return match &request.continues {
            None => Begin::Fresh { replaces: Some(head) },
            Some(id) => Begin::Skip(format!(
                "the checkpoint of audit {id} is older than {} minutes; the next audit starts over",
                STALE_AFTER.num_minutes()
            )),
        };
    }
    match &request.continues {
        Some(id) if *id == head.audit_id => Begin::Resume(head),
        Some(id) => Begin::Skip(format!("audit {id} is not the audit in progress ({})", head.audit_id)),
        None if (head.mode, head.force) == (request.mode, request.force) => Begin::Resume(head),
        None => Begin::Skip(format!(
            "audit {} ({}) is in progress; request a {} audit again when it completes",
            head.audit_id,
            describe(head.mode, head.force),
            describe(request.mode, request.force)
        )),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 3, minute, 0).unwrap()
    }

    fn head(lease_until: Option<DateTime<Utc>>, saved_at: DateTime<Utc>) -> CheckpointHead {
        CheckpointHead {
            audit_id: "a1".into(),
            step: 3,
            mode: AuditMode::Repair,
            force: false,
            lease_until_ms: lease_until.map_or(0, |t| t.timestamp_millis()),
            lease_owner: lease_until.map_or(String::new(), |_| "req-1".into()),
            saved_at,
            save_id: "s".into(),
        }
    }

    fn request(mode: AuditMode, force: bool, continues: Option<&str>) -> Request {
        Request { mode, force, clock: at(0), continues: continues.map(str::to_owned), invocation: "req-2".into() }
    }

    #[test]
    fn without_a_checkpoint_only_new_audits_start() {
        assert_eq!(begin(&request(AuditMode::Repair, false, None), None, at(5)), Begin::Fresh { replaces: None });
        assert!(matches!(begin(&request(AuditMode::Repair, false, Some("a1")), None, at(5)), Begin::Skip(_)));
    }

    #[test]
    fn the_continuation_or_the_same_request_resumes_and_others_wait() {
        let h = head(None, at(4));
        assert_eq!(
            begin(&request(AuditMode::Repair, false, Some("a1")), Some(h.clone()), at(5)),
            Begin::Resume(h.clone())
        );
        // A schedule tick whose audit is the one in progress (its continuation was lost).
        assert_eq!(begin(&request(AuditMode::Repair, false, None), Some(h.clone()), at(5)), Begin::Resume(h.clone()));
        for other in [request(AuditMode::Report, false, None), request(AuditMode::Repair, true, None)] {
            let Begin::Skip(why) = begin(&other, Some(h.clone()), at(5)) else { panic!("{other:?} must wait") };
            assert!(why.contains("a1") && why.contains("in progress"), "{why}");
        }
        assert!(matches!(begin(&request(AuditMode::Repair, false, Some("b2")), Some(h), at(5)), Begin::Skip(_)));
    }

    #[test]
    fn a_live_lease_keeps_everyone_out_until_it_ends() {
        let h = head(Some(at(20)), at(4));
        for r in [request(AuditMode::Repair, false, Some("a1")), request(AuditMode::Repair, false, None)] {
            let Begin::Skip(why) = begin(&r, Some(h.clone()), at(5)) else { panic!("lease ignored") };
            assert!(why.contains("running"), "{why}");
        }
        assert_eq!(
            begin(&request(AuditMode::Repair, false, Some("a1")), Some(h.clone()), at(21)),
            Begin::Resume(h.clone())
        );
        // Lambda's retry of the invocation that holds it (it failed or timed out) takes it back.
        let retry = Request { invocation: "req-1".into(), ..request(AuditMode::Repair, false, Some("a1")) };
        assert_eq!(begin(&retry, Some(h.clone()), at(5)), Begin::Resume(h.clone()));
        let anonymous = Request { invocation: String::new(), ..retry };
        let unowned = CheckpointHead { lease_owner: String::new(), ..h.clone() };
        assert!(matches!(begin(&anonymous, Some(unowned), at(5)), Begin::Skip(_)), "an empty id owns nothing");
    }

    #[test]
    fn a_stale_checkpoint_is_superseded_never_resumed() {
        let h = head(None, at(0));
        let later = at(0) + STALE_AFTER + chrono::TimeDelta::seconds(1);
        assert_eq!(
            begin(&request(AuditMode::Report, false, None), Some(h.clone()), later),
            Begin::Fresh { replaces: Some(h.clone()) }
        );
        assert!(matches!(begin(&request(AuditMode::Repair, false, Some("a1")), Some(h), later), Begin::Skip(_)));
    }
}
