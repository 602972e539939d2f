//! Kiro's daily user activity report: a CSV file, read as a stream of records.
//!
//! Columns are found by header name, in any order; unknown columns (one `<model>_messages` per
//! model, `ProfileId`, `User_Email`, …) are ignored. `Date` and `UserId` are required; the
//! figures this project uses are read when present. Names match whatever their ASCII case:
//! Kiro's documentation writes `Credits_Used`, `UserId`, …, but readers of the same report in
//! the wild fold case, and a report whose header changed case is still the same report.
//!
//! Nothing here does I/O of its own: [`Report`] pulls from any [`std::io::Read`] and holds one
//! record at a time, so memory stays bounded whatever the file's size (a record longer than
//! [`MAX_RECORD_BYTES`], such as a quote left open, rejects the file instead of growing).
//!
//! # All or nothing
//!
//! A file that is not UTF-8, not CSV or lacks a required column is rejected whole, and nothing
//! from it may be stored — but a bad byte may come on the last line of a large file. So the
//! caller reads the object twice: [`validate`] (stores nothing; answers the [`ReadSummary`] or
//! why the file is [`Rejected`]), then, only if it passed, [`read_report`] (or [`Report`]) to
//! store the rows. Both passes must read the same bytes: fetch the object by the ETag (or
//! version) of the event both times (`GetObject` with `If-Match`), so that the second pass is
//! the first one again and cannot be rejected halfway.
//!
//! # A repeated (user, date, client type) replaces the earlier row
//!
//! Rows come out in file order, repeats included. Written in that order, a later `PutItem` of
//! the same key overwrites the earlier one, which is the contract's rule for free. Within one
//! `BatchWriteItem` (which refuses two items with the same key) use [`dedupe`] first; and let
//! each batch, its `UnprocessedItems` retried included, finish before the next one starts, so
//! that a retried earlier row never lands after a later one.

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::io::{self, Read};

use chrono::NaiveDate;
use csv::StringRecord;

use super::{IdentityStoreId, Invalid, UserId};

/// The columns this project reads, as Kiro's documentation writes them.
pub mod column {
    pub const DATE: &str = "Date";
    pub const USER_ID: &str = "UserId";
    pub const CLIENT_TYPE: &str = "Client_Type";
    pub const CREDITS_USED: &str = "Credits_Used";
    pub const OVERAGE_CREDITS_USED: &str = "Overage_Credits_Used";
    pub const TOTAL_MESSAGES: &str = "Total_Messages";
    pub const CHAT_CONVERSATIONS: &str = "Chat_Conversations";
    pub const SUBSCRIPTION_TIER: &str = "Subscription_Tier";
}

/// A record (the header or a row) longer than this rejects the file as [`Rejected::NotCsv`]:
/// a quote left open would otherwise read the rest of the file into one field. A real row is a
/// few hundred bytes; the header grows by one column per model.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// A number of the report (credits, messages, conversations): non-negative and exact to the
/// millionth, so that sums over days and client types are exact.
///
/// Kiro writes credits as full-precision floats (`114.45787414391377`): digits beyond the sixth
/// decimal are rounded half up, a difference of at most half a millionth of a credit per row.
/// Exponents (`1e-05`) are read too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Amount(u64);

/// Why a number cell could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("is not a number")]
    Unreadable,
    #[error("is negative")]
    Negative,
}

impl Amount {
    /// Millionths in one unit.
    pub const SCALE: u64 = 1_000_000;
    pub const ZERO: Amount = Amount(0);

    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// The amount in millionths: what to store and to add up.
    pub const fn micros(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// For prices and display only; sums stay in [`Amount`].
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / Self::SCALE as f64
    }

    /// A cell of a number column: empty reads as 0; `12`, `12.5`, `.5`, `+1`, `1.5E3` are read;
    /// a negative number (other than zero), anything else or more than `u64::MAX` millionths is
    /// an error.
    pub fn parse(raw: &str) -> Result<Self, AmountError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::ZERO);
        }
        let (negative, unsigned) = match raw.as_bytes()[0] {
            b'-' => (true, &raw[1..]),
            b'+' => (false, &raw[1..]),
            _ => (false, raw),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], parse_exponent(&unsigned[at + 1..])?),
            None => (unsigned, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits_only(int) || !digits_only(frac) {
            return Err(AmountError::Unreadable);
        }
        if negative && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            return Err(AmountError::Negative);
        }
        // value = digits × 10^(exponent − frac.len()); in millionths, the first `keep` digits
        // are the integer and the next one rounds it.
        let digit_count = (int.len() + frac.len()) as i64;
        let shift = exponent + 6 - frac.len() as i64;
        let keep = digit_count + shift;
        let mut micros: u64 = 0;
        let mut round_up = false;
        for (i, digit) in int.bytes().chain(frac.bytes()).map(|b| u64::from(b - b'0')).enumerate() {
            let i = i as i64;
            if i < keep {
                micros = micros.checked_mul(10).and_then(|m| m.checked_add(digit)).ok_or(AmountError::Unreadable)?;
            } else {
                round_up = i == keep && digit >= 5;
                break;
            }
        }
        if micros != 0 {
            for _ in 0..shift.max(0) {
                micros = micros.checked_mul(10).ok_or(AmountError::Unreadable)?;
            }
        }
        if round_up {
            micros = micros.checked_add(1).ok_or(AmountError::Unreadable)?;
        }
        Ok(Self(micros))
    }
}

/// `[+-]` then 1 to 4 digits: enough for any float a report writes.
fn parse_exponent(raw: &str) -> Result<i64, AmountError> {
    let (sign, digits) = match raw.as_bytes().first() {
        Some(b'-') => (-1, &raw[1..]),
        Some(b'+') => (1, &raw[1..]),
        _ => (1, raw),
    };
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::Unreadable);
    }
    digits.parse::<i64>().map(|e| sign * e).map_err(|_| AmountError::Unreadable)
}

/// The exact decimal, without trailing zeros: `12`, `12.5`, `0.000001`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (int, frac) = (self.0 / Self::SCALE, self.0 % Self::SCALE);
        if frac == 0 {
            write!(f, "{int}")
        } else {
            let frac = format!("{frac:06}");
            write!(f, "{int}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl std::iter::Sum for Amount {
    /// Saturates at `u64::MAX` millionths (18 million million credits): never reached.
    fn sum<I: Iterator<Item = Amount>>(iter: I) -> Self {
        Amount(iter.fold(0u64, |total, a| total.saturating_add(a.0)))
    }
}

/// The Kiro client a row is about, as the report writes it (`KIRO_IDE`, `KIRO_CLI`, `PLUGIN`).
/// A report without a `Client_Type` column, or a row with an empty cell, is [`ClientType::UNKNOWN`].
///
/// Letters, digits, `_`, `-` and `.` only, at most 64 of them: safe inside a table key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientType(String);

impl ClientType {
    /// The client type of rows that do not name one.
    pub const UNKNOWN: &'static str = "UNKNOWN";

    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(field, "must be 1 to 64 letters, digits, '_', '-' or '.'"))
        }
    }

    pub fn unknown() -> Self {
        Self(Self::UNKNOWN.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the figures of a row are kept by: one row per (user, date, client type).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivityKey {
    pub user_id: UserId,
    pub date: NaiveDate,
    pub client_type: ClientType,
}

/// The figures of one row. A column the report does not have reads as 0 (or `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// `Credits_Used`: overage included.
    pub credits_used: Amount,
    pub overage_credits_used: Amount,
    pub total_messages: Amount,
    pub chat_conversations: Amount,
    /// `Subscription_Tier` as Kiro writes it (`PRO`, `PRO_PLUS`, `POWER`, and tiers this project
    /// does not sell); `None` when absent or empty.
    pub subscription_tier: Option<String>,
}

impl Figures {
    /// The contract's **activity**: any of `Total_Messages`, `Chat_Conversations`,
    /// `Credits_Used` above zero (overage credits alone are not).
    pub fn is_activity(&self) -> bool {
        !(self.total_messages.is_zero() && self.chat_conversations.is_zero() && self.credits_used.is_zero())
    }

    /// Every figure is zero: the row adds nothing to any sum (a user listed for a day they did
    /// not use Kiro). Such a row needs storing only to replace figures an earlier file stored for
    /// its key.
    pub fn is_nothing(&self) -> bool {
        !self.is_activity() && self.overage_credits_used.is_zero()
    }
}

/// A (date, client type) a report has rows for: Kiro writes one file per client type a day.
pub type ReportDay = (NaiveDate, ClientType);

/// How many distinct [`ReportDay`]s [`survey`] keeps before it stops listing them.
pub const MAX_SURVEYED_DAYS: usize = 64;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a whole file is rejected. `Display` is a plain sentence for the ImportReport's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the file is not UTF-8 text")]
    NotUtf8,
    /// Empty, no header naming any of the report's columns, or a record longer than
    /// [`MAX_RECORD_BYTES`].
    #[error("the file is not a CSV user activity report")]
    NotCsv,
    #[error("the required column {0} is missing")]
    MissingColumn(&'static str),
}

/// Why one row is skipped (and counted in `rejectedRows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRow {
    #[error("the row has {found} fields where the header has {expected}")]
    FieldCount { expected: usize, found: usize },
    #[error("its {0} is unreadable")]
    Unreadable(&'static str),
    #[error("its {0} is negative")]
    Negative(&'static str),
}

/// A skipped row and its line in the file (the header is line 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRowAt {
    pub line: u64,
    pub error: BadRow,
}

/// Why reading stopped. `E` is the error of the caller's own step ([`read_report`]'s `each`).
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E = Infallible> {
    /// The file is rejected whole: acknowledge the event, store nothing, report why.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// The input failed (an interrupted S3 stream): not the file's fault, worth a retry.
    #[error("reading the report failed")]
    Io(#[source] io::Error),
    /// The caller's step failed; reading stopped there.
    #[error("handing a row on failed")]
    Caller(#[source] E),
}

impl ReadError {
    fn widen<E>(self) -> ReadError<E> {
        match self {
            ReadError::Rejected(rejected) => ReadError::Rejected(rejected),
            ReadError::Io(err) => ReadError::Io(err),
            ReadError::Caller(never) => match never {},
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Header and rows
// ---------------------------------------------------------------------------------------------

/// Where the columns of one report are. Built from its header record; reads its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    width: usize,
    date: usize,
    user_id: usize,
    client_type: Option<usize>,
    credits_used: Option<usize>,
    overage_credits_used: Option<usize>,
    total_messages: Option<usize>,
    chat_conversations: Option<usize>,
    subscription_tier: Option<usize>,
}

impl Header {
    /// Finds the columns by name (trimmed, ASCII case folded; the first of two same-named
    /// columns wins), ignoring a byte-order mark before the first. A header naming none of the
    /// report's columns is [`Rejected::NotCsv`]; one lacking `Date` or `UserId` is
    /// [`Rejected::MissingColumn`].
    pub fn parse(headers: &StringRecord) -> Result<Header, Rejected> {
        use column::*;
        let mut found: [Option<usize>; 8] = [None; 8];
        let names = [
            DATE,
            USER_ID,
            CLIENT_TYPE,
            CREDITS_USED,
            OVERAGE_CREDITS_USED,
            TOTAL_MESSAGES,
            CHAT_CONVERSATIONS,
            SUBSCRIPTION_TIER,
        ];
        for (at, name) in headers.iter().enumerate() {
            let name = if at == 0 { name.trim_start_matches('\u{feff}') } else { name }.trim();
            if let Some(slot) = names.iter().position(|known| known.eq_ignore_ascii_case(name)) {
                found[slot].get_or_insert(at);
            }
        }
        let [
            date,
            user_id,
            client_type,
            credits_used,
            overage_credits_used,
            total_messages,
            chat_conversations,
            subscription_tier,
        ] = found;
        if found.iter().all(Option::is_none) {
            return Err(Rejected::NotCsv);
        }
        Ok(Header {
            width: headers.len(),
            date: date.ok_or(Rejected::MissingColumn(DATE))?,
            user_id: user_id.ok_or(Rejected::MissingColumn(USER_ID))?,
            client_type,
            credits_used,
            overage_credits_used,
            total_messages,
            chat_conversations,
            subscription_tier,
        })
    }

    /// Reads one data row. A row whose number of fields differs from the header's, or with an
    /// unreadable date (`YYYY-MM-DD`), user id, client type or number, or a negative number, is
    /// a [`BadRow`].
    pub fn row(&self, record: &StringRecord) -> Result<(ActivityKey, Figures), BadRow> {
        use column::*;
        if record.len() != self.width {
            return Err(BadRow::FieldCount { expected: self.width, found: record.len() });
        }
        let cell = |at: usize| record.get(at).unwrap_or("").trim();
        let optional = |at: Option<usize>| at.map_or("", cell);
        let number = |at: Option<usize>, name: &'static str| {
            Amount::parse(optional(at)).map_err(|err| match err {
                AmountError::Unreadable => BadRow::Unreadable(name),
                AmountError::Negative => BadRow::Negative(name),
            })
        };

        let date = parse_date(cell(self.date)).ok_or(BadRow::Unreadable(DATE))?;
        let user_id = parse_user_id(cell(self.user_id)).ok_or(BadRow::Unreadable(USER_ID))?;
        let client_type = match optional(self.client_type) {
            "" => ClientType::unknown(),
            raw => ClientType::parse(CLIENT_TYPE, raw).map_err(|_| BadRow::Unreadable(CLIENT_TYPE))?,
        };
        let figures = Figures {
            credits_used: number(self.credits_used, CREDITS_USED)?,
            overage_credits_used: number(self.overage_credits_used, OVERAGE_CREDITS_USED)?,
            total_messages: number(self.total_messages, TOTAL_MESSAGES)?,
            chat_conversations: number(self.chat_conversations, CHAT_CONVERSATIONS)?,
            subscription_tier: Some(optional(self.subscription_tier)).filter(|t| !t.is_empty()).map(str::to_owned),
        };
        Ok((ActivityKey { user_id, date, client_type }, figures))
    }
}

/// Exactly `YYYY-MM-DD`, a real day.
fn parse_date(raw: &str) -> Option<NaiveDate> {
    let b = raw.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    if !shaped {
        return None;
    }
    let (year, month, day) = (raw[..4].parse().ok()?, raw[5..7].parse().ok()?, raw[8..].parse().ok()?);
    NaiveDate::from_ymd_opt(year, month, day)
}

/// An Identity Store user id (or its ARN). Some reports prefix it with the identity store and a
/// dot (`d-1234567890.<user id>`): the user id is what follows.
fn parse_user_id(raw: &str) -> Option<UserId> {
    let bare = match raw.split_once('.') {
        Some((store, id)) if IdentityStoreId::parse(column::USER_ID, store).is_ok() => id,
        _ => raw,
    };
    UserId::parse(column::USER_ID, bare).ok()
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// What one reading of a report found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Data rows: the header excluded, skipped rows included (the ImportReport's `rows`).
    pub rows: u64,
    /// Rows skipped as unreadable (`rejectedRows`).
    pub rejected_rows: u64,
    /// The first skipped row, for the log.
    pub first_bad_row: Option<BadRowAt>,
}

/// A report being read: one record in memory at a time. Yields the readable rows in file order;
/// skipped rows are only counted in [`Report::summary`].
pub struct Report<R> {
    reader: csv::Reader<Input<R>>,
    header: Header,
    record: StringRecord,
    summary: ReadSummary,
    done: bool,
}

impl<R: Read> Report<R> {
    /// Reads the header.
    pub fn open(input: R) -> Result<Self, ReadError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            // Rows of another width are counted as bad rows, not errors that stop the reading.
            .flexible(true)
            .from_reader(Input::new(input));
        let header = match reader.headers() {
            Ok(headers) => Header::parse(headers)?,
            Err(err) => return Err(read_failure(err)),
        };
        reader.get_mut().record_done();
        Ok(Self { reader, header, record: StringRecord::new(), summary: ReadSummary::default(), done: false })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The rows read so far; the whole file's once [`Report::next_row`] has answered `None`.
    pub fn summary(&self) -> ReadSummary {
        self.summary
    }

    /// The next readable row, `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<(ActivityKey, Figures)>, ReadError> {
        while !self.done {
            let more = self.reader.read_record(&mut self.record);
            self.reader.get_mut().record_done();
            match more {
                Ok(true) => {}
                Ok(false) => self.done = true,
                Err(err) => {
                    self.done = true;
                    return Err(read_failure(err));
                }
            }
            if self.done {
                break;
            }
            self.summary.rows += 1;
            match self.header.row(&self.record) {
                Ok(row) => return Ok(Some(row)),
                Err(error) => {
                    self.summary.rejected_rows += 1;
                    let line = self.record.position().map_or(0, csv::Position::line);
                    self.summary.first_bad_row.get_or_insert(BadRowAt { line, error });
                }
            }
        }
        Ok(None)
    }
}

impl<R: Read> Iterator for Report<R> {
    type Item = Result<(ActivityKey, Figures), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

/// Reads the whole report, handing each readable row to `each` in file order. Stops at the
/// first error: the file's rejection, the input's failure, or `each`'s.
///
/// Rows handed on before a rejection were read from a file that is rejected whole: call
/// [`validate`] first (see the module's documentation).
pub fn read_report<R: Read, E>(
    input: R,
    mut each: impl FnMut(ActivityKey, Figures) -> Result<(), E>,
) -> Result<ReadSummary, ReadError<E>> {
    let mut report = Report::open(input).map_err(ReadError::widen)?;
    while let Some((key, figures)) = report.next_row().map_err(ReadError::widen)? {
        each(key, figures).map_err(ReadError::Caller)?;
    }
    Ok(report.summary())
}

/// The first pass: reads the whole report and keeps nothing. `Ok` means the storing pass over
/// the same bytes cannot be rejected, and gives its counts.
pub fn validate<R: Read>(input: R) -> Result<ReadSummary, ReadError> {
    read_report(input, |_, _| Ok::<(), Infallible>(()))
}

/// [`validate`], and the [`ReportDay`]s of the readable rows: `None` when there are more than
/// [`MAX_SURVEYED_DAYS`] (memory stays bounded; the caller then treats every day as seen).
pub fn survey<R: Read>(input: R) -> Result<(ReadSummary, Option<BTreeSet<ReportDay>>), ReadError> {
    let mut days = Some(BTreeSet::new());
    let summary = read_report(input, |key, _| {
        if let Some(set) = &mut days {
            set.insert((key.date, key.client_type));
            if set.len() > MAX_SURVEYED_DAYS {
                days = None;
            }
        }
        Ok::<(), Infallible>(())
    })?;
    Ok((summary, days))
}

/// Within one batch, keeps only the last row of each key, in file order. A `BatchWriteItem`
/// refuses two items with the same key; across batches written one after the other, the later
/// `PutItem` overwrites the earlier, which is what "replaces" asks.
pub fn dedupe<V>(batch: &mut Vec<(ActivityKey, V)>) {
    let mut seen = HashSet::with_capacity(batch.len());
    let mut last: Vec<bool> = batch.iter().rev().map(|(key, _)| seen.insert(key)).collect();
    drop(seen);
    last.reverse();
    let mut last = last.into_iter();
    batch.retain(|_| last.next().unwrap_or(true));
}

fn read_failure(err: csv::Error) -> ReadError {
    match err.into_kind() {
        csv::ErrorKind::Utf8 { .. } => ReadError::Rejected(Rejected::NotUtf8),
        csv::ErrorKind::Io(err) if err.get_ref().is_some_and(|inner| inner.is::<RecordTooLong>()) => {
            ReadError::Rejected(Rejected::NotCsv)
        }
        csv::ErrorKind::Io(err) => ReadError::Io(err),
        // Not produced by a flexible reader of strings; whatever it is, the file is not CSV.
        _ => ReadError::Rejected(Rejected::NotCsv),
    }
}

/// A record went past [`MAX_RECORD_BYTES`].
#[derive(Debug)]
struct RecordTooLong;

impl fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a record is longer than {MAX_RECORD_BYTES} bytes")
    }
}

impl std::error::Error for RecordTooLong {}

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// The input as the CSV reader sees it: without a leading byte-order mark (before a quoted first
/// header it would otherwise make the quote a literal), and failing once a record has read more
/// than [`MAX_RECORD_BYTES`] since [`Input::record_done`].
struct Input<R> {
    inner: R,
    head: [u8; 3],
    head_len: usize,
    head_pos: usize,
    head_checked: bool,
    since_record: u64,
}

impl<R> Input<R> {
    fn new(inner: R) -> Self {
        Self { inner, head: [0; 3], head_len: 0, head_pos: 0, head_checked: false, since_record: 0 }
    }

    fn record_done(&mut self) {
        self.since_record = 0;
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.head_checked {
            while self.head_len < BOM.len() {
                match self.inner.read(&mut self.head[self.head_len..])? {
                    0 => break,
                    n => self.head_len += n,
                }
            }
            self.head_checked = true;
            if self.head[..self.head_len] == BOM {
                self.head_pos = self.head_len;
            }
        }
        if self.since_record > MAX_RECORD_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, RecordTooLong));
        }
        let n = if self.head_pos < self.head_len {
            let n = buf.len().min(self.head_len - self.head_pos);
            buf[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            n
        } else {
            self.inner.read(buf)?
        };
        self.since_record += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const ALICE: &str = "94482488-3041-7026-18f3-be45837cd0e4";
    const DAVE: &str = "c4a8e418-5091-70bf-2a4d-6e7f8091a2b3";

    type Rows = Vec<(ActivityKey, Figures)>;

    fn read_all(input: &[u8]) -> Result<(Rows, ReadSummary), ReadError> {
        let mut rows = Vec::new();
        let summary = read_report(input, |key, figures| {
            rows.push((key, figures));
            Ok::<(), Infallible>(())
        })?;
        Ok((rows, summary))
    }

    fn rejection(input: &[u8]) -> Rejected {
        match validate(input) {
            Err(ReadError::Rejected(rejected)) => rejected,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn survey_lists_a_files_days_up_to_a_bound_and_rejects_as_validate_does() {
        let two = format!(
            "Date,UserId,Client_Type\n2026-12-01,{ALICE},KIRO_IDE\n2026-12-01,{DAVE},KIRO_IDE\n2026-12-02,{ALICE},KIRO_IDE\n2026-13-02,{ALICE},KIRO_IDE\n"
        );
        let (summary, days) = survey(two.as_bytes()).unwrap();
        assert_eq!((summary.rows, summary.rejected_rows), (4, 1));
        let day =
            |d: &str| (NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap(), ClientType::parse("c", "KIRO_IDE").unwrap());
        assert_eq!(days, Some(BTreeSet::from([day("2026-12-01"), day("2026-12-02")])));

        let mut many = String::from("Date,UserId\n");
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        for n in 0..=MAX_SURVEYED_DAYS as u64 {
            many.push_str(&format!("{},{ALICE}\n", start + chrono::Days::new(n)));
        }
        let (_, days) = survey(many.as_bytes()).unwrap();
        assert_eq!(days, None, "past the bound, no list: every day counts as seen");
        let (_, days) = survey(many.rsplit_once('\n').unwrap().0.rsplit_once('\n').unwrap().0.as_bytes()).unwrap();
        assert_eq!(days.map(|d| d.len()), Some(MAX_SURVEYED_DAYS), "up to the bound, listed");

        assert!(matches!(
            survey(&b"Date,Other\n2026-12-01,x\n"[..]),
            Err(ReadError::Rejected(Rejected::MissingColumn(_)))
        ));
    }

    #[test]
    fn a_row_with_nothing_in_it_is_only_all_zeros() {
        let amount = |s: &str| Amount::parse(s).unwrap();
        assert!(Figures::default().is_nothing());
        let tier_only = Figures { subscription_tier: Some("PRO".into()), ..Figures::default() };
        assert!(tier_only.is_nothing(), "the tier column alone adds nothing to a sum");
        for f in [
            Figures { overage_credits_used: amount("0.01"), ..Figures::default() },
            Figures { credits_used: amount("1"), ..Figures::default() },
            Figures { total_messages: amount("1"), ..Figures::default() },
            Figures { chat_conversations: amount("1"), ..Figures::default() },
        ] {
            assert!(!f.is_nothing(), "{f:?}");
        }
    }

    fn key(user: &str, date: &str, client: &str) -> ActivityKey {
        ActivityKey {
            user_id: UserId::parse("u", user).unwrap(),
            date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            client_type: ClientType::parse("c", client).unwrap(),
        }
    }

    fn amount(raw: &str) -> Amount {
        Amount::parse(raw).unwrap()
    }

    fn figures(credits: &str, overage: &str, messages: &str, conversations: &str, tier: Option<&str>) -> Figures {
        Figures {
            credits_used: amount(credits),
            overage_credits_used: amount(overage),
            total_messages: amount(messages),
            chat_conversations: amount(conversations),
            subscription_tier: tier.map(str::to_owned),
        }
    }

    const KIRO_HEADER: &str = "Date,UserId,Client_Type,Chat_Conversations,Credits_Used,Overage_Cap,\
        Overage_Credits_Used,Overage_Enabled,ProfileId,Subscription_Tier,Total_Messages,New_User,User_Email";

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        // Given the same row under Kiro's column order and under a shuffled one
        let kiro =
            format!("{KIRO_HEADER}\n2026-12-01,{ALICE},KIRO_IDE,3,41.25,0,1.5,true,p,PRO,27,false,a@example.com\n");
        let shuffled = format!(
            "Total_Messages,Overage_Credits_Used,Subscription_Tier,UserId,Credits_Used,Client_Type,Date,Chat_Conversations\n\
             27,1.5,PRO,{ALICE},41.25,KIRO_IDE,2026-12-01,3\n"
        );
        // When both are read
        let (a, _) = read_all(kiro.as_bytes()).unwrap();
        let (b, _) = read_all(shuffled.as_bytes()).unwrap();
        // Then they give the same key and figures
        let expected = vec![(key(ALICE, "2026-12-01", "KIRO_IDE"), figures("41.25", "1.5", "27", "3", Some("PRO")))];
        assert_eq!(a, expected);
        assert_eq!(b, expected);
    }

    #[test]
    fn header_names_match_whatever_their_ascii_case_and_surrounding_spaces() {
        let report = format!("date , USERID,credits_used\n2026-12-01,{ALICE},2\n");
        let (rows, _) = read_all(report.as_bytes()).unwrap();
        assert_eq!(rows[0].1.credits_used, amount("2"));
    }

    #[test]
    fn of_two_columns_with_the_same_name_the_first_is_read() {
        let report = format!("Date,UserId,Credits_Used,credits_used\n2026-12-01,{ALICE},1,2\n");
        let (rows, _) = read_all(report.as_bytes()).unwrap();
        assert_eq!(rows[0].1.credits_used, amount("1"));
    }

    #[test]
    fn unknown_and_new_model_columns_are_ignored() {
        // Given a report with per-model columns on both sides of the ones we read
        let report = format!(
            "auto_messages,Date,claude-sonnet-4_messages,UserId,Total_Messages,claude_opus_4.8_messages,Usage_Limit\n\
             11,2026-12-01,5,{ALICE},16,0,1000\n"
        );
        // When it is read
        let (rows, summary) = read_all(report.as_bytes()).unwrap();
        // Then only the known columns count
        assert_eq!(summary, ReadSummary { rows: 1, rejected_rows: 0, first_bad_row: None });
        assert_eq!(rows, vec![(key(ALICE, "2026-12-01", ClientType::UNKNOWN), figures("", "", "16", "", None))]);
    }

    #[test]
    fn a_byte_order_mark_before_the_header_is_ignored() {
        for header in ["Date,UserId,Credits_Used", "\"Date\",UserId,Credits_Used"] {
            // Given a report that starts with a UTF-8 BOM, its first header plain or quoted
            let mut report = BOM.to_vec();
            report.extend(format!("{header}\n2026-12-01,{ALICE},3\n").bytes());
            // When it is read
            let (rows, _) = read_all(&report).unwrap();
            // Then Date is found
            assert_eq!(rows.len(), 1, "{header}");
            assert_eq!(rows[0].1.credits_used, amount("3"));
        }
    }

    #[test]
    fn a_header_record_with_a_bom_in_its_first_name_is_parsed() {
        let header = Header::parse(&StringRecord::from(vec!["\u{feff}Date", "UserId"])).unwrap();
        assert_eq!(header.date, 0);
    }

    #[test]
    fn an_empty_number_cell_reads_as_zero() {
        let report = format!("{KIRO_HEADER}\n2026-12-01,{ALICE},KIRO_CLI,,,,,,,,,,\n");
        let (rows, summary) = read_all(report.as_bytes()).unwrap();
        assert_eq!(summary.rejected_rows, 0);
        assert_eq!(rows[0].1, Figures::default());
        assert!(!rows[0].1.is_activity());
    }

    #[test]
    fn decimals_are_kept_exactly_to_the_millionth() {
        // Given credits with decimals, some beyond the sixth
        let report = format!(
            "Date,UserId,Client_Type,Credits_Used\n\
             2026-12-01,{ALICE},KIRO_IDE,0.1\n\
             2026-12-01,{ALICE},KIRO_CLI,0.2\n\
             2026-12-02,{ALICE},KIRO_CLI,114.45787414391377\n\
             2026-12-03,{ALICE},KIRO_CLI,1e-05\n"
        );
        // When they are read and added up
        let (rows, _) = read_all(report.as_bytes()).unwrap();
        let credits: Vec<Amount> = rows.iter().map(|(_, f)| f.credits_used).collect();
        // Then 0.1 + 0.2 is exactly 0.3, and longer decimals round half up to the millionth
        assert_eq!(credits[0].checked_add(credits[1]), Some(Amount::from_micros(300_000)));
        assert_eq!(credits[2], Amount::from_micros(114_457_874));
        assert_eq!(credits[3], Amount::from_micros(10));
        assert_eq!(credits.into_iter().sum::<Amount>().to_string(), "114.757884");
    }

    #[test]
    fn numbers_read_as_written_and_unreadable_ones_are_refused() {
        for (raw, micros) in [
            ("0", 0),
            ("12", 12_000_000),
            ("12.", 12_000_000),
            (".5", 500_000),
            ("+1", 1_000_000),
            ("2500.0", 2_500_000_000),
            ("0.0000005", 1),
            ("0.00000049", 0),
            ("1.5E3", 1_500_000_000),
            ("1e-7", 0),
            ("-0.0", 0),
            ("0007", 7_000_000),
            ("18446744073709.551615", u64::MAX),
        ] {
            assert_eq!(Amount::parse(raw), Ok(Amount::from_micros(micros)), "{raw}");
        }
        for raw in ["abc", ".", "1,5", "1.2.3", "NaN", "inf", "1e", "1e99999", "--1", "18446744073709.551616", "1 2"] {
            assert_eq!(Amount::parse(raw), Err(AmountError::Unreadable), "{raw}");
        }
        assert_eq!(Amount::parse("-1.5"), Err(AmountError::Negative));
        assert_eq!(Amount::parse("-0.0000001"), Err(AmountError::Negative));
    }

    #[test]
    fn amounts_display_as_exact_decimals() {
        assert_eq!(Amount::from_micros(12_000_000).to_string(), "12");
        assert_eq!(Amount::from_micros(12_500_000).to_string(), "12.5");
        assert_eq!(Amount::from_micros(1).to_string(), "0.000001");
        assert_eq!(Amount::ZERO.to_string(), "0");
    }

    #[test]
    fn a_row_with_an_unreadable_date_number_or_user_is_skipped_and_counted() {
        // Given one good row among rows with a bad date, number, user id, client type, width
        let report = format!(
            "Date,UserId,Client_Type,Credits_Used,Total_Messages\n\
             12/01/2026,{ALICE},KIRO_IDE,1,1\n\
             2026-02-30,{ALICE},KIRO_IDE,1,1\n\
             2026-12-01,{ALICE},KIRO_IDE,abc,1\n\
             2026-12-01,{ALICE},KIRO_IDE,1,-2\n\
             2026-12-01,alice,KIRO_IDE,1,1\n\
             2026-12-01,{ALICE},KIRO#IDE,1,1\n\
             2026-12-01,{ALICE},KIRO_IDE,1\n\
             2026-12-01,{DAVE},KIRO_IDE,1,1\n"
        );
        // When it is read
        let (rows, summary) = read_all(report.as_bytes()).unwrap();
        // Then the bad rows are counted among the rows and skipped
        assert_eq!(rows, vec![(key(DAVE, "2026-12-01", "KIRO_IDE"), figures("1", "", "1", "", None))]);
        assert_eq!(summary.rows, 8);
        assert_eq!(summary.rejected_rows, 7);
        assert_eq!(summary.first_bad_row, Some(BadRowAt { line: 2, error: BadRow::Unreadable("Date") }));
    }

    #[test]
    fn each_bad_row_says_what_is_wrong() {
        let header = Header::parse(&StringRecord::from(vec!["Date", "UserId", "Credits_Used"])).unwrap();
        let row = |cells: Vec<&str>| header.row(&StringRecord::from(cells)).map(|_| ()).unwrap_err();
        assert_eq!(row(vec!["2026-1-01", ALICE, "1"]), BadRow::Unreadable("Date"));
        assert_eq!(row(vec!["2026-12-01", "x", "1"]), BadRow::Unreadable("UserId"));
        assert_eq!(row(vec!["2026-12-01", ALICE, "-1"]), BadRow::Negative("Credits_Used"));
        assert_eq!(row(vec!["2026-12-01", ALICE, "1", ""]), BadRow::FieldCount { expected: 3, found: 4 });
        assert_eq!(BadRow::Negative("Credits_Used").to_string(), "its Credits_Used is negative");
    }

    #[test]
    fn user_ids_prefixed_by_their_identity_store_are_read_bare() {
        let report = format!("Date,UserId\n2026-12-01,d-1234567890.{ALICE}\n2026-12-01,906722b4f5-{DAVE}\n");
        let (rows, _) = read_all(report.as_bytes()).unwrap();
        assert_eq!(rows[0].0.user_id.as_str(), ALICE);
        assert_eq!(rows[1].0.user_id.as_str(), format!("906722b4f5-{DAVE}"));
    }

    #[test]
    fn a_file_without_a_userid_column_is_rejected_whole() {
        let report = "Date,Client_Type,Credits_Used\n2026-12-01,KIRO_IDE,3\n";
        assert_eq!(rejection(report.as_bytes()), Rejected::MissingColumn("UserId"));
        assert_eq!(Rejected::MissingColumn("UserId").to_string(), "the required column UserId is missing");
    }

    #[test]
    fn a_file_without_a_date_column_is_rejected_whole() {
        let report = format!("UserId,Credits_Used\n{ALICE},3\n");
        assert_eq!(rejection(report.as_bytes()), Rejected::MissingColumn("Date"));
    }

    #[test]
    fn a_file_that_is_not_utf8_is_rejected_before_anything_is_stored() {
        // Given a large report whose only invalid byte is on its last line
        let mut report = String::from("Date,UserId,Credits_Used,User_Email\n");
        for _ in 0..5_000 {
            report.push_str(&format!("2026-12-01,{ALICE},1,alice@example.com\n"));
        }
        let mut report = report.into_bytes();
        report.extend(b"2026-12-01,");
        report.extend(DAVE.bytes());
        report.extend(b",1,dav\xe9@example.com\n");
        // When the caller validates before storing
        let mut stored = 0;
        let outcome = validate(report.as_slice()).and_then(|_| {
            read_report(report.as_slice(), |_, _| {
                stored += 1;
                Ok::<(), Infallible>(())
            })
        });
        // Then the file is rejected and nothing was handed on to be stored
        assert!(matches!(outcome, Err(ReadError::Rejected(Rejected::NotUtf8))), "{outcome:?}");
        assert_eq!(stored, 0);
        assert_eq!(Rejected::NotUtf8.to_string(), "the file is not UTF-8 text");
    }

    #[test]
    fn a_header_that_is_not_utf8_is_rejected() {
        assert_eq!(rejection(b"Date,User\xffId\n"), Rejected::NotUtf8);
    }

    #[test]
    fn a_binary_or_garbage_file_is_rejected_whole() {
        // An image: its first byte is not UTF-8.
        assert_eq!(rejection(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0"), Rejected::NotUtf8);
        // Text, but no report: nothing names a column of ours.
        assert_eq!(rejection(b"<html><body>Access Denied</body></html>\n"), Rejected::NotCsv);
        assert_eq!(rejection(b"\0\0\0\0\0\0\0\0"), Rejected::NotCsv);
        assert_eq!(rejection(b""), Rejected::NotCsv);
        assert_eq!(rejection(b"\n\n"), Rejected::NotCsv);
        assert_eq!(Rejected::NotCsv.to_string(), "the file is not a CSV user activity report");
    }

    #[test]
    fn a_quote_left_open_cannot_grow_a_record_without_bound() {
        // Given a row whose quote never closes, followed by more than MAX_RECORD_BYTES
        let mut report = format!("Date,UserId,User_Email\n2026-12-01,{ALICE},\"alice@example.com\n").into_bytes();
        let line = format!("2026-12-01,{DAVE},dave@example.com\n");
        while (report.len() as u64) < 2 * MAX_RECORD_BYTES {
            report.extend(line.bytes());
        }
        // When it is read, then it is rejected rather than read into one field
        assert_eq!(rejection(&report), Rejected::NotCsv);
    }

    #[test]
    fn a_header_only_report_has_no_rows() {
        assert_eq!(validate(KIRO_HEADER.as_bytes()).unwrap(), ReadSummary::default());
    }

    #[test]
    fn a_repeated_key_within_one_file_keeps_the_later_figures() {
        // Given a report where alice's IDE day appears twice, dave's row between them
        let report = format!(
            "Date,UserId,Client_Type,Credits_Used\n\
             2026-12-01,{ALICE},KIRO_IDE,1\n\
             2026-12-01,{DAVE},KIRO_IDE,5\n\
             2026-12-01,{ALICE},KIRO_CLI,7\n\
             2026-12-01,{ALICE},KIRO_IDE,2\n"
        );
        // When its rows are deduplicated as one batch
        let (mut rows, summary) = read_all(report.as_bytes()).unwrap();
        assert_eq!(summary.rows, 4);
        dedupe(&mut rows);
        // Then alice's IDE day has the later figures, and the other rows are untouched
        let credits: Vec<(&str, &str, String)> = rows
            .iter()
            .map(|(k, f)| (k.user_id.as_str(), k.client_type.as_str(), f.credits_used.to_string()))
            .collect();
        assert_eq!(
            credits,
            vec![(DAVE, "KIRO_IDE", "5".into()), (ALICE, "KIRO_CLI", "7".into()), (ALICE, "KIRO_IDE", "2".into())]
        );
    }

    #[test]
    fn written_in_batches_of_25_a_repeated_key_keeps_the_later_figures() {
        // Given 60 rows where every user's row comes back with new figures 30 rows later
        let users: Vec<String> = (0..30).map(|i| format!("94482488-3041-7026-18f3-be45837c{i:04x}")).collect();
        let mut report = String::from("Date,UserId,Credits_Used\n");
        for round in 1..=2 {
            for user in &users {
                report.push_str(&format!("2026-12-01,{user},{round}\n"));
            }
        }
        // When the rows are written as the function does: batches of 25, deduplicated, in order
        let mut table = BTreeMap::new();
        let mut batch = Vec::new();
        let mut flush = |batch: &mut Vec<(ActivityKey, Figures)>| {
            dedupe(batch);
            let keys: HashSet<&ActivityKey> = batch.iter().map(|(k, _)| k).collect();
            assert_eq!(keys.len(), batch.len(), "a batch holds each key once");
            table.extend(batch.drain(..));
        };
        read_report(report.as_bytes(), |key, figures| {
            batch.push((key, figures));
            if batch.len() == 25 {
                flush(&mut batch);
            }
            Ok::<(), Infallible>(())
        })
        .unwrap();
        flush(&mut batch);
        // Then every user's day holds the second round's figures
        assert_eq!(table.len(), 30);
        assert!(table.values().all(|f| f.credits_used == amount("2")));
    }

    #[test]
    fn dedupe_keeps_the_last_row_of_each_key_in_file_order() {
        let a = key(ALICE, "2026-12-01", "KIRO_IDE");
        let d = key(DAVE, "2026-12-01", "KIRO_IDE");
        let mut batch = vec![(a.clone(), 1), (d.clone(), 2), (a.clone(), 3), (a.clone(), 4), (d.clone(), 5)];
        dedupe(&mut batch);
        assert_eq!(batch, vec![(a, 4), (d, 5)]);
        let mut empty: Vec<(ActivityKey, ())> = Vec::new();
        dedupe(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn activity_is_messages_conversations_or_credits_above_zero() {
        let active = [
            figures("", "", "1", "", None),
            figures("", "", "", "1", None),
            figures("0.000001", "", "", "", None),
            figures("3", "2", "4", "1", Some("PRO")),
        ];
        for f in active {
            assert!(f.is_activity(), "{f:?}");
        }
        // Overage credits alone, or a tier alone, are not activity.
        assert!(!figures("0", "5", "0", "0", Some("PRO")).is_activity());
        assert!(!Figures::default().is_activity());
    }

    #[test]
    fn crlf_line_endings_read_like_lf() {
        let lf =
            format!("Date,UserId,Client_Type,Credits_Used\n2026-12-01,{ALICE},KIRO_IDE,3.5\n2026-12-02,{DAVE},,1\n");
        let crlf = lf.replace('\n', "\r\n");
        let (a, _) = read_all(lf.as_bytes()).unwrap();
        let (b, summary) = read_all(crlf.as_bytes()).unwrap();
        assert_eq!(summary.rejected_rows, 0);
        assert_eq!(a, b);
        assert_eq!(b[1].0.client_type.as_str(), ClientType::UNKNOWN);
    }

    #[test]
    fn quoted_fields_with_commas_quotes_and_newlines_read_whole() {
        let report = format!(
            "Date,\"UserId\",User_Email,Credits_Used,Subscription_Tier\n\
             2026-12-01,\"{ALICE}\",\"Smith, Alice \"\"Al\"\"\n<alice@example.com>\",\"1,5\",PRO\n\
             \"2026-12-01\",\"{DAVE}\",\"Doe, Dave\",\"2.5\",\" PRO_PLUS \"\n"
        );
        let (rows, summary) = read_all(report.as_bytes()).unwrap();
        // The comma inside quotes stays in its cell: "1,5" is one unreadable number, not two cells.
        assert_eq!(summary.rows, 2);
        assert_eq!(summary.first_bad_row, Some(BadRowAt { line: 2, error: BadRow::Unreadable("Credits_Used") }));
        assert_eq!(
            rows,
            vec![(key(DAVE, "2026-12-01", ClientType::UNKNOWN), figures("2.5", "", "", "", Some("PRO_PLUS")))]
        );
    }

    #[test]
    fn an_input_failure_is_not_a_rejection() {
        // Given an input that fails after the header, as an interrupted S3 stream does
        struct Failing(&'static [u8]);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        // When it is read, then the error says the input failed: worth a retry
        let outcome = validate(Failing(b"Date,UserId\n2026-12-01,"));
        assert!(
            matches!(outcome, Err(ReadError::Io(ref e)) if e.kind() == io::ErrorKind::ConnectionReset),
            "{outcome:?}"
        );
    }

    #[test]
    fn the_callers_error_stops_the_reading() {
        let report = format!("Date,UserId\n2026-12-01,{ALICE}\n2026-12-02,{ALICE}\n");
        let mut seen = 0;
        let outcome = read_report(report.as_bytes(), |_, _| {
            seen += 1;
            Err("table gone")
        });
        assert!(matches!(outcome, Err(ReadError::Caller("table gone"))));
        assert_eq!(seen, 1);
    }

    #[test]
    fn the_report_yields_rows_as_an_iterator_and_counts_at_the_end() {
        let report = format!("Date,UserId\n2026-12-01,{ALICE}\nbad,{ALICE}\n2026-12-02,{DAVE}\n");
        let mut rows = Report::open(report.as_bytes()).unwrap();
        let dates: Vec<String> = rows.by_ref().map(|row| row.unwrap().0.date.to_string()).collect();
        assert_eq!(dates, ["2026-12-01", "2026-12-02"]);
        assert_eq!((rows.summary().rows, rows.summary().rejected_rows), (3, 1));
        assert!(rows.next().is_none());
    }

    /// 100,000 rows made on the fly: the test never holds the file, and neither does the reader.
    struct Generated {
        rows_left: u32,
        pending: Vec<u8>,
    }

    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pending.is_empty() && self.rows_left > 0 {
                self.rows_left -= 1;
                let day = 1 + self.rows_left % 28;
                self.pending =
                    format!("2026-12-{day:02},{ALICE},KIRO_IDE,1.000001,{}\n", self.rows_left % 3).into_bytes();
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn a_report_of_100_000_rows_is_read_as_a_stream() {
        let input = Generated {
            rows_left: 100_000,
            pending: b"Date,UserId,Client_Type,Credits_Used,Total_Messages\n".to_vec(),
        };
        let mut credits = Amount::ZERO;
        let mut active = 0u32;
        let summary = read_report(input, |_, f| {
            credits = credits.checked_add(f.credits_used).ok_or("overflow")?;
            active += u32::from(f.is_activity());
            Ok::<(), &str>(())
        })
        .unwrap();
        assert_eq!(summary.rows, 100_000);
        assert_eq!(credits, Amount::from_micros(100_000_100_000));
        assert_eq!(active, 100_000);
    }

    // -----------------------------------------------------------------------------------------
    // The samples under events/activity/
    // -----------------------------------------------------------------------------------------

    fn sample(name: &str) -> Vec<u8> {
        let path = format!("{}/../events/activity/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_sample_reports_read_as_expected() {
        let (ide, summary) = read_all(&sample("user-report-ide.csv")).unwrap();
        assert_eq!(summary, ReadSummary { rows: 4, rejected_rows: 0, first_bad_row: None });
        assert_eq!(ide[0], (key(ALICE, "2026-12-01", "KIRO_IDE"), figures("41.237052", "0", "27", "3", Some("PRO"))));
        assert_eq!(ide.iter().filter(|(_, f)| f.is_activity()).count(), 3);
        assert!(!ide[1].1.is_activity(), "dave opened the IDE and did nothing");

        // The same rows, columns shuffled and the model columns gone.
        let (reordered, summary) = read_all(&sample("user-report-reordered.csv")).unwrap();
        assert_eq!(summary.rejected_rows, 0);
        assert_eq!(reordered, ide);

        let (extra, summary) = read_all(&sample("user-report-extra-model-columns.csv")).unwrap();
        assert_eq!((summary.rows, summary.rejected_rows), (3, 0));
        assert_eq!(extra[0].1, figures("112.5", "12.5", "140", "9", Some("PRO")));
        assert_eq!(extra[0].0.client_type.as_str(), "KIRO_CLI");

        let (good, summary) = read_all(&sample("user-report-bad-rows.csv")).unwrap();
        assert_eq!((summary.rows, summary.rejected_rows), (7, 4));
        assert_eq!(good.len(), 3);

        let (repeated, summary) = read_all(&sample("user-report-repeated-key.csv")).unwrap();
        assert_eq!(summary.rows, 3);
        let mut repeated = repeated;
        dedupe(&mut repeated);
        assert_eq!(repeated.len(), 2);
        assert_eq!(repeated[1], (key(ALICE, "2026-12-01", "KIRO_IDE"), figures("50", "0", "30", "4", Some("PRO"))));

        assert_eq!(rejection(&sample("user-report-no-userid.csv")), Rejected::MissingColumn("UserId"));
        assert_eq!(rejection(&sample("user-report-not-utf8.csv")), Rejected::NotUtf8);
    }

    // -----------------------------------------------------------------------------------------
    // Property: whatever the column order and the extra columns, reading gives the rows back
    // -----------------------------------------------------------------------------------------

    const USERS: [&str; 3] = [ALICE, DAVE, "906722b4f5-e4d89488-b0d1-70a5-7c2e-3f4a5b6c7d8e"];
    const DATES: [&str; 3] = ["2026-11-30", "2026-12-01", "2026-12-31"];
    const CLIENTS: [&str; 4] = ["KIRO_IDE", "KIRO_CLI", "PLUGIN", ""];
    const TIERS: [&str; 4] = ["", "PRO", "PRO_PLUS", "POWER"];

    #[derive(Debug, Clone)]
    struct GenRow {
        user: usize,
        date: usize,
        client: usize,
        /// Credits_Used, Overage_Credits_Used, Total_Messages, Chat_Conversations, in millionths.
        numbers: [u64; 4],
        tier: usize,
        /// How each number is written: 0 fixed six decimals, 1 shortest, 2 exponent, 3 empty if zero.
        styles: [u8; 4],
        extras: Vec<String>,
    }

    fn write_number(micros: u64, style: u8) -> String {
        let exact = Amount::from_micros(micros);
        match style {
            0 => format!("{}.{:06}", micros / Amount::SCALE, micros % Amount::SCALE),
            2 => format!("{micros}e-6"),
            3 if micros == 0 => String::new(),
            _ => exact.to_string(),
        }
    }

    fn gen_row(extra_columns: usize) -> impl Strategy<Value = GenRow> {
        (
            0..USERS.len(),
            0..DATES.len(),
            0..CLIENTS.len(),
            prop::array::uniform4(prop_oneof![Just(0u64), 0..10_000_000_000u64]),
            0..TIERS.len(),
            prop::array::uniform4(0u8..4),
            prop::collection::vec("[ -~]{0,12}", extra_columns),
        )
            .prop_map(|(user, date, client, numbers, tier, styles, extras)| GenRow {
                user,
                date,
                client,
                numbers,
                tier,
                styles,
                extras,
            })
    }

    /// Optional columns present, extra column names, then rows, column order and line ending.
    fn gen_report() -> impl Strategy<Value = ([bool; 6], Vec<String>, Vec<GenRow>, Vec<usize>, bool, bool)> {
        (
            prop::array::uniform6(any::<bool>()),
            prop::collection::vec("[a-z][a-z0-9_.-]{0,10}_messages|New_User|User_Email", 0..5),
        )
            .prop_flat_map(|(present, extra_names)| {
                let width = 2 + present.iter().filter(|p| **p).count() + extra_names.len();
                (
                    Just(present),
                    Just(extra_names.clone()),
                    prop::collection::vec(gen_row(extra_names.len()), 0..40),
                    Just((0..width).collect::<Vec<_>>()).prop_shuffle(),
                    any::<bool>(),
                    any::<bool>(),
                )
            })
    }

    const OPTIONAL: [&str; 6] = [
        column::CLIENT_TYPE,
        column::CREDITS_USED,
        column::OVERAGE_CREDITS_USED,
        column::TOTAL_MESSAGES,
        column::CHAT_CONVERSATIONS,
        column::SUBSCRIPTION_TIER,
    ];

    proptest! {
        #[test]
        fn reading_gives_back_every_row_and_the_last_one_per_key_wins(
            (present, extra_names, rows, order, crlf, bom) in gen_report()
        ) {
            // Names of ours among the random extra ones would be read, not ignored.
            let extra_names: Vec<String> = extra_names
                .into_iter()
                .map(|n| if OPTIONAL.iter().any(|o| o.eq_ignore_ascii_case(&n)) { format!("x{n}") } else { n })
                .collect();
            // Given the rows written as CSV under the chosen columns, in the shuffled order
            let mut names: Vec<String> = vec![column::DATE.into(), column::USER_ID.into()];
            names.extend(OPTIONAL.iter().zip(present).filter(|(_, p)| *p).map(|(n, _)| n.to_string()));
            names.extend(extra_names.iter().cloned());
            let cells_of = |row: &GenRow| -> Vec<String> {
                let mut cells = vec![DATES[row.date].to_string(), USERS[row.user].to_string()];
                let values = [
                    CLIENTS[row.client].to_string(),
                    write_number(row.numbers[0], row.styles[0]),
                    write_number(row.numbers[1], row.styles[1]),
                    write_number(row.numbers[2], row.styles[2]),
                    write_number(row.numbers[3], row.styles[3]),
                    TIERS[row.tier].to_string(),
                ];
                cells.extend(values.into_iter().zip(present).filter(|(_, p)| *p).map(|(v, _)| v));
                cells.extend(row.extras.iter().cloned());
                order.iter().map(|&i| cells[i].clone()).collect()
            };
            let mut writer = csv::WriterBuilder::new()
                .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
                .from_writer(if bom { BOM.to_vec() } else { Vec::new() });
            writer.write_record(order.iter().map(|&i| &names[i])).unwrap();
            for row in &rows {
                writer.write_record(cells_of(row)).unwrap();
            }
            let file = writer.into_inner().unwrap();

            // Then, computed from the generated values alone:
            let expected: Rows = rows
                .iter()
                .map(|row| {
                    let client = if present[0] && !CLIENTS[row.client].is_empty() { CLIENTS[row.client] } else { ClientType::UNKNOWN };
                    let number = |i: usize| Amount::from_micros(if present[1 + i] { row.numbers[i] } else { 0 });
                    let tier = Some(TIERS[row.tier]).filter(|t| present[5] && !t.is_empty()).map(str::to_owned);
                    (
                        key(USERS[row.user], DATES[row.date], client),
                        Figures {
                            credits_used: number(0),
                            overage_credits_used: number(1),
                            total_messages: number(2),
                            chat_conversations: number(3),
                            subscription_tier: tier,
                        },
                    )
                })
                .collect();
            let mut last_per_key = BTreeMap::new();
            for (k, f) in expected.clone() {
                last_per_key.insert(k, f);
            }

            // When it is validated, read, and deduplicated
            let summary = validate(file.as_slice()).unwrap();
            let (read, read_summary) = read_all(&file).unwrap();
            prop_assert_eq!(summary, read_summary);
            prop_assert_eq!(summary, ReadSummary { rows: rows.len() as u64, rejected_rows: 0, first_bad_row: None });
            prop_assert_eq!(&read, &expected);
            let mut deduped = read;
            dedupe(&mut deduped);
            prop_assert_eq!(deduped.len(), last_per_key.len());
            prop_assert_eq!(deduped.into_iter().collect::<BTreeMap<_, _>>(), last_per_key);
        }
    }
}
