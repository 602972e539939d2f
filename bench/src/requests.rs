//! AWS requests and in-process time per operation, through the real handlers over the fakes.
//!
//! Every figure is a warm execution environment's: the profile is already cached (a cold one
//! adds one `GetItem(profile)`). Times are the handler's own, in this process, with no network.

use std::time::{Duration, Instant};

use kiro::domain::{GroupId, UserId};

use crate::directory::Shard;
use crate::fakes::{self, Fakes, Requests};
use crate::report::{REQUESTS_PER_MEMBERSHIP_EVENT, REQUESTS_PER_SEAT, REQUESTS_PER_SEAT_READ, Row, Section};
use crate::{ms, percentile, us};

/// Runs of the membership-event loop for the handler-time percentiles.
pub const HANDLER_RUNS: usize = 1_000;

/// What one operation sent and how long the handler took.
struct Measured<T> {
    requests: Requests,
    elapsed: Duration,
    answer: T,
}

async fn measure<T>(f: &Fakes, op: impl std::future::Future<Output = T>) -> Measured<T> {
    let before = f.counts();
    let started = Instant::now();
    let answer = op.await;
    let elapsed = started.elapsed();
    Measured { requests: f.counts().since(&before), elapsed, answer }
}

/// `1 request`, `7 requests`.
fn count(requests: u64) -> String {
    if requests == 1 { "1 request".to_owned() } else { format!("{requests} requests") }
}

fn detail(m: &Measured<impl Sized>) -> String {
    format!("{}; {}", m.requests.breakdown(), ms(m.elapsed))
}

/// `publish-events`' share of what was measured before it: the outboxes the request path left,
/// published from the stream (a `BatchGetItem` per 100 outboxes, a `PutEvents` per 10 events, a
/// `DeleteItem` per outbox).
async fn publisher(f: &Fakes, what: &str) -> Row {
    let (requests, events) = f.publish_outboxes().await;
    let per_event = requests.total as f64 / events.max(1) as f64;
    Row::new(format!("{what}: publish-events, requests per event"), format!("{per_event:.3}")).detail(format!(
        "{} requests for {events} events, off the request path: {}",
        requests.total,
        requests.breakdown()
    ))
}

/// A direct subscription: `POST /subscriptions` for one user.
pub async fn direct_subscribe() -> Section {
    let f = Fakes::with_profile().await;
    f.warm().await;
    let user = f.directory.add_user(&f.directory.new_shard(), "solo", "Solo");
    let m = measure(&f, f.subscribe("USER", user.as_str(), "PRO")).await;
    let mut s = Section::new("Direct subscribe (assign-tier, in-memory fakes)")
        .note("The request path; its seat event goes out from the table's stream (publish-events, the next row).");
    s.push(Row::new("POST /subscriptions USER", count(m.requests.total)).detail(detail(&m)));
    s.push(publisher(&f, "its event").await);
    let mut get = kiro_tests::http_event("get-seat.json", None);
    get.payload.raw_path = Some(format!("/seats/{}", user.as_str()));
    get.payload.path_parameters.insert("userId".to_owned(), user.as_str().to_owned());
    let m = measure(&f, f.http(get)).await;
    assert_eq!(m.answer.0, 200, "GET /seats/{{userId}}: {}", m.answer.1);
    s.push(
        Row::new("GET /seats/{userId}", count(m.requests.total))
            .against(REQUESTS_PER_SEAT_READ, m.requests.total as f64)
            .detail(detail(&m)),
    );
    s
}

/// Membership events through `sync_group::handle`: requests per event, and handler time over
/// [`HANDLER_RUNS`] joins, duplicates and leaves.
pub async fn membership_events() -> Section {
    let f = Fakes::with_profile().await;
    // One shard: alice joins both groups.
    let shard = f.directory.new_shard();
    let (group, _) = f.group_of(&shard, "engineering", 100);
    f.subscribe("GROUP", group.as_str(), "PRO").await;
    // The group's own grants, out from the stream before anything is measured.
    f.publish_outboxes().await;
    let (unsubscribed, _) = f.group_of(&shard, "unsubscribed", 10);
    f.warm().await;
    let alice = f.directory.add_user(&shard, "alice", "Alice");
    let mut s = Section::new("Membership events (sync-group, in-memory fakes)").note(
        "One event each, a warm environment (the first event of an environment adds one `GetItem(profile)`). \
         The user joins a subscribed group of 100 members. The request path only: seat events go out from the \
         table's stream (publish-events, counted apart).",
    );
    let row = |what: &str, m: &Measured<serde_json::Value>| {
        Row::new(what, count(m.requests.total))
            .against(REQUESTS_PER_MEMBERSHIP_EVENT, m.requests.total as f64)
            .detail(detail(m))
    };

    let membership = shard.add_member(&group, &alice);
    let join = fakes::create_membership(&group, &alice, &membership);
    let m = measure(&f, f.event(join.clone())).await;
    assert_eq!(m.answer["applied"]["granted"], 1, "{}", m.answer);
    s.push(row("join, seat granted (API `CreateGroupMembership`)", &m));

    let m = measure(&f, f.event(join.clone())).await;
    assert_eq!(m.answer["applied"]["unchanged"], 1, "{}", m.answer);
    s.push(row("the same join delivered again", &m));

    let other = shard.add_member(&unsubscribed, &alice);
    let m = measure(&f, f.event(fakes::create_membership(&unsubscribed, &alice, &other))).await;
    s.push(row("join, group nobody subscribed", &m));

    shard.remove_member(&membership);
    let m = measure(&f, f.event(fakes::delete_membership(&membership))).await;
    assert_eq!(m.answer["applied"]["canceled"], 1, "{}", m.answer);
    s.push(row("leave, seat canceled (API `DeleteGroupMembership`)", &m));

    shard.add_member(&group, &alice);
    let m = measure(&f, f.event(fakes::console_membership(true, &group, &alice))).await;
    assert_eq!(m.answer["applied"]["granted"], 1, "{}", m.answer);
    s.push(row("join, seat granted (console `AddMemberToGroup`)", &m));

    shard.remove_user_from_group(&group, &alice);
    let m = measure(&f, f.event(fakes::console_membership(false, &group, &alice))).await;
    assert_eq!(m.answer["applied"]["canceled"], 1, "{}", m.answer);
    s.push(row("leave, seat canceled (console `RemoveMemberFromGroup`)", &m));

    s.push(publisher(&f, "the events above, in one stream batch").await);

    for row in handler_times(&f, &shard, &group, &alice).await {
        s.push(row);
    }
    // Not a figure: the outboxes of the handler-time loop, out of the store.
    f.publish_outboxes().await;
    s
}

/// p50/p90 of the handler's time for a join, its duplicate and a leave, [`HANDLER_RUNS`] each.
async fn handler_times(f: &Fakes, shard: &Shard, group: &GroupId, user: &UserId) -> Vec<Row> {
    let (mut joins, mut duplicates, mut leaves) = (Vec::new(), Vec::new(), Vec::new());
    let before = f.counts();
    for _ in 0..HANDLER_RUNS {
        let membership = shard.add_member(group, user);
        let join = fakes::create_membership(group, user, &membership);
        joins.push(time_event(f, join.clone()).await);
        duplicates.push(time_event(f, join).await);
        shard.remove_member(&membership);
        leaves.push(time_event(f, fakes::delete_membership(&membership)).await);
    }
    let total = f.counts().since(&before).total;
    let per_event = total as f64 / (3 * HANDLER_RUNS) as f64;
    let row = |what: &str, samples: &[Duration]| {
        Row::new(
            format!("handler time, {what} (p50 / p90 of {HANDLER_RUNS})"),
            format!("{} / {}", us(percentile(samples, 50.0)), us(percentile(samples, 90.0))),
        )
    };
    let mut rows = vec![
        row("join, seat granted", &joins),
        row("the same join again", &duplicates),
        row("leave, seat canceled", &leaves),
    ];
    rows[0].detail = format!("{per_event:.2} requests per event over the {} events", 3 * HANDLER_RUNS);
    rows
}

/// The handler's time for one event; the envelope is parsed before the clock starts.
async fn time_event(f: &Fakes, raw: serde_json::Value) -> Duration {
    let event = fakes::envelope(raw);
    let started = Instant::now();
    let answer = sync_group::handle(&f.sync, event).await;
    let elapsed = started.elapsed();
    answer.expect("sync-group handles the event");
    elapsed
}

/// A group subscription fanned out to `members` seats by `POST /subscriptions`.
pub async fn fan_out(members: usize) -> Section {
    let f = Fakes::with_profile().await;
    let (group, _) = f.group_of(&f.directory.new_shard(), "everyone", members);
    f.warm().await;
    let m = measure(&f, f.subscribe("GROUP", group.as_str(), "PRO")).await;
    assert_eq!(m.answer["seats"], members, "{}", m.answer);
    // The budget is the grant's: the fan-out's `Seat Names Requested` (its only
    // `PutEvents`, seat events leaving from the stream) names the seats and is counted apart.
    let naming = m.requests.by_operation.iter().find(|(op, _)| op == "PutEvents").map_or(0, |(_, n)| *n);
    let grant = m.requests.total - naming;
    let per_seat = grant as f64 / members as f64;
    let mut s = Section::new(format!("Group fan-out of {members} members (assign-tier, in-memory fakes)"));
    s.push(
        Row::new("requests per seat, the grant (naming apart)", format!("{per_seat:.4}"))
            .against(REQUESTS_PER_SEAT, per_seat)
            .detail(format!("{grant} requests; all {} with naming: {}", m.requests.total, m.requests.breakdown())),
    );
    s.push(Row::new("in-process time", ms(m.elapsed)).detail(format!("{} per seat", us(m.elapsed / members as u32))));
    s.push(publisher(&f, "its events").await);
    s
}

/// An audit of `groups × per_group` seats with ~1% drift (silent leaves and joins): report mode;
/// the first repair after the fan-outs (which also names seats granted through groups); then, once
/// every seat is named, a daily repair with another ~1% drift and one with nothing to do.
pub async fn audit(groups: usize, per_group: usize) -> Section {
    let seats = groups * per_group;
    let f = Fakes::with_profile().await;
    let started = Instant::now();
    let mut members: Vec<(Shard, GroupId, Vec<UserId>)> = Vec::with_capacity(groups);
    for g in 0..groups {
        let shard = f.directory.new_shard();
        let (group, users) = f.group_of(&shard, &format!("g{g:03}"), per_group);
        f.subscribe("GROUP", group.as_str(), "PRO").await;
        members.push((shard, group, users));
    }
    // The fan-outs' events, out from the stream before anything is measured.
    f.publish_outboxes().await;
    f.sink.clear();
    let seeded = started.elapsed();
    f.warm().await;

    // ~1% drift that no event reported: per group, as many members leave as new users join.
    let drift = (per_group / 100).max(2);
    let (leaves, joins) = (drift / 2, drift - drift / 2);
    let mut round = 0;
    let mut drift_once = || {
        for (g, (shard, group, users)) in members.iter().enumerate() {
            for user in &users[round * leaves..(round + 1) * leaves] {
                shard.remove_user_from_group(group, user);
            }
            for j in 0..joins {
                let user = f.directory.add_user(shard, format!("late-{round}-{g:03}-{j:03}"), "");
                shard.add_member(group, &user);
            }
        }
        round += 1;
    };

    let mut s = Section::new(format!("Audit of {seats} seats across {groups} groups (sync-group, in-memory fakes)"));
    let run = async |what: &str, mode: Option<&str>, s: &mut Section| {
        let m = measure(&f, f.event(fakes::audit(mode))).await;
        // The repair's events go out from the stream, off its count (and out of the store).
        f.publish_outboxes().await;
        let r = &m.answer;
        let per_seat = m.requests.total as f64 / seats as f64;
        s.push(
            Row::new(format!("{what}: requests per seat"), format!("{per_seat:.4}"))
                .against(REQUESTS_PER_SEAT, per_seat)
                .detail(format!(
                    "{} requests: {}; {}; granted {}, canceled {}, names filled {}, active seats {}",
                    m.requests.total,
                    m.requests.breakdown(),
                    ms(m.elapsed),
                    r["granted"],
                    r["canceled"],
                    r["namesFilled"],
                    r["activeSeats"]
                )),
        );
        let named = r["namesFilled"].as_u64().unwrap_or(0);
        if what.starts_with("first repair") && named > 0 {
            // The seats the fan-outs granted unnamed are named here, as the fan-out's own naming
            // is counted apart from its grants: a name is one DescribeUser and one UpdateItem.
            let updates = m.requests.of("UpdateItem(seat name)");
            let apart = m.requests.total.saturating_sub(updates + named);
            let per_seat = apart as f64 / seats as f64;
            s.push(
                Row::new(format!("{what}, naming apart: requests per seat"), format!("{per_seat:.4}"))
                    .against(REQUESTS_PER_SEAT, per_seat)
                    .detail(format!(
                        "{apart} requests: the {} above less the naming of {named} seats ({named} Identity Store \
                         DescribeUser, {updates} UpdateItem(seat name))",
                        m.requests.total
                    )),
            );
        }
        named
    };

    drift_once();
    run("report mode, ~1% drift", Some("report"), &mut s).await;
    run("first repair after the fan-outs, ~1% drift", None, &mut s).await;
    // Later repairs name the rest, up to MAX_NAMES_PER_AUDIT each.
    let mut naming = Section::default();
    let mut naming_runs = 0;
    while run("naming", None, &mut naming).await > 0 && naming_runs < 100 {
        naming_runs += 1;
    }
    drift_once();
    run("daily repair, ~1% drift, seats named", None, &mut s).await;
    run("repair with nothing to do", None, &mut s).await;

    // The same daily repair cut into about ten invocations, each stopped after a tenth of the
    // units of work (groups, pages of seats, batches), as the deadline would stop it: compare
    // with the whole daily repair above.
    drift_once();
    let units = u32::try_from((groups + seats / 100) / 10).unwrap_or(u32::MAX);
    let mut sliced = sync_group::Deps::new(f.store.clone(), f.directory.clone(), f.sink.clone(), 25);
    sliced.audit_units_per_invocation = Some(units);
    let before = f.counts();
    let started = Instant::now();
    let sink = f.sink.clone();
    let (r, invocations) =
        kiro_tests::audit_to_completion(&sliced, fakes::envelope(fakes::audit(None)).payload, || sink.events()).await;
    let (elapsed, requests) = (started.elapsed(), f.counts().since(&before));
    let sizes = f.store.checkpoint_sizes();
    let per_seat = requests.total as f64 / seats as f64;
    s.push(
        Row::new(
            format!("daily repair, ~1% drift, cut into {invocations} invocations: requests per seat"),
            format!("{per_seat:.4}"),
        )
        .detail(format!(
            "{} requests: {}; {}; granted {}, canceled {}; {} checkpoints, largest state {} bytes",
            requests.total,
            requests.breakdown(),
            ms(elapsed),
            r["granted"],
            r["canceled"],
            sizes.len(),
            sizes.iter().max().copied().unwrap_or(0),
        )),
    );

    let spread = members.iter().filter(|(_, group, _)| f.store.is_spread(group)).count();
    s.note = format!(
        "Seeded with {groups} group subscriptions in {}; {spread} of them with their grant rows spread over 16 \
         partitions (a group of more than 2,000 members: listing one reads the counter's partition and each shard). \
         Each drift: {} members leave and {} join without an event ({:.1}%). The first repair names up to {} seats granted through groups (`DescribeUser` + `UpdateItem`); \
         {naming_runs} more repairs named the rest before the daily one. The repairs' seat events go out from the \
         table's stream (publish-events), not counted here.",
        ms(seeded),
        leaves * groups,
        joins * groups,
        (drift * groups) as f64 * 100.0 / seats as f64,
        kiro::domain::audit::MAX_NAMES_PER_AUDIT,
    );
    s
}
