//! Pages of the table's lists: opaque tokens that only the list that answered them accepts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::dynamo::{DynamoStore, store_error};
use super::item::{Item, Reader, s};
use super::records::GSI1;
use crate::ports::{Page, SEAT_SHARDS, StoreError};

pub fn encode_token(raw: &str) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_token(token: &str) -> Result<String, StoreError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .ok_or(StoreError::InvalidToken)
}

/// A token is a key this list itself answered: anything else (another list's token, a forged
/// position) is [`StoreError::InvalidToken`], never a query from an arbitrary key.
pub(crate) fn decode_token_of(token: &str, is_key: impl Fn(&str) -> bool) -> Result<String, StoreError> {
    decode_token(token).ok().filter(|sk| is_key(sk)).ok_or(StoreError::InvalidToken)
}

/// A one-shard list's request: `shard` is one of the [`SEAT_SHARDS`] and the token, if any, is
/// a key of that list (`is_key`) in that shard (`shard_of`); anything else is
/// [`StoreError::InvalidToken`].
pub(crate) fn check_shard_token(
    shard: usize,
    token: Option<&str>,
    is_key: fn(&str) -> bool,
    shard_of: fn(&str) -> usize,
) -> Result<(), StoreError> {
    let named = token.map(|t| decode_token_of(t, is_key).map(|sk| shard_of(&sk))).transpose()?;
    if shard >= SEAT_SHARDS || named.is_some_and(|s| s != shard) {
        return Err(StoreError::InvalidToken);
    }
    Ok(())
}

/// Queries (of 100 items) one page of a filtered list reads at most: a filter that matches little
/// (`GET /seats?status=CANCELED` among 200,000 active seats) answers short pages with a token
/// instead of reading the whole index in one request.
pub const MAX_QUERIES_PER_PAGE: usize = 10;

/// The `gsi1` partitions a list is kept over, read one after the other.
pub(crate) struct Partitions<'a> {
    /// In list order.
    pub names: &'a [String],
    /// The partition of an item, from its `gsi1sk` (what a token holds).
    pub of: fn(&str) -> usize,
    /// The items a Query asks for: 100 for a list a filter may thin out (a page then reads
    /// [`MAX_QUERIES_PER_PAGE`] of them at most), up to 1,000 for one read whole.
    pub per_query: i32,
}

impl DynamoStore {
    /// Runs queries on `gsi1` over `partitions`, in their order, from `start` (a gsi1sk value,
    /// whose partition it resumes; `table_key` gives its item's table key) on, and keeps the
    /// items `keep` accepts until `limit`. The token is the gsi1sk of the last item answered, so a
    /// page is never cut between the items a filter skipped and the next page. The work is
    /// bounded: after [`MAX_QUERIES_PER_PAGE`] queries' worth of items (1,000) the page ends with
    /// what matched so far (perhaps nothing) and the token of the last item read; a page crossing
    /// partitions takes a Query more for each (16 at most), and always moves past its own token.
    ///
    /// Partitions are read one at a time, but for short ones: a partition read whole in one
    /// Query, from its start, tells how many rows a partition holds, and the partitions that
    /// would fill the rest of the page at that rate are queried at once ([`partitions_ahead`]).
    /// A near-empty table's page takes its 16 Queries in two rounds instead of 16; a partition
    /// that goes on (`LastEvaluatedKey`) is read on alone, the queries after it dropped.
    #[allow(clippy::too_many_arguments)] // one private helper serving every gsi1 list
    pub(crate) async fn gsi1_page<T>(
        &self,
        partitions: Partitions<'_>,
        prefix: Option<&str>,
        limit: usize,
        next_token: Option<String>,
        table_key: impl Fn(&str) -> Item,
        is_key: fn(&str) -> bool,
        convert: impl Fn(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let mut start = match next_token {
            Some(token) => {
                let sk = decode_token_of(&token, is_key)?;
                if prefix.is_some_and(|p| !sk.starts_with(p)) {
                    return Err(StoreError::InvalidToken);
                }
                Some(sk)
            }
            None => None,
        };
        let (first, mut read) = (start.clone(), 0);
        let count = partitions.names.len();
        let (mut part, mut ahead) = (start.as_deref().map_or(0, partitions.of), 1);
        let mut items = Vec::new();
        loop {
            let base = part;
            let resumed = start.clone().filter(|sk| (partitions.of)(sk) == base);
            let queries = (base..count.min(base + ahead)).map(|p| {
                let partition = partitions.names[p].as_str();
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(GSI1)
                    .expression_attribute_values(":pk", s(partition))
                    .limit(partitions.per_query);
                q = match prefix {
                    Some(pre) => q
                        .key_condition_expression("gsi1pk = :pk AND begins_with(gsi1sk, :prefix)")
                        .expression_attribute_values(":prefix", s(pre)),
                    None => q.key_condition_expression("gsi1pk = :pk"),
                };
                if let Some(sk) = resumed.as_deref().filter(|_| p == base) {
                    let mut esk = table_key(sk);
                    esk.insert("gsi1pk".to_owned(), s(partition));
                    esk.insert("gsi1sk".to_owned(), s(sk));
                    q = q.set_exclusive_start_key(Some(esk));
                }
                q.send()
            });
            let outs = futures_util::future::try_join_all(queries).await.map_err(|e| store_error("Query(gsi1)", e))?;
            ahead = 1;
            for (i, out) in outs.iter().enumerate() {
                for item in out.items() {
                    read += 1;
                    let sk = Reader::new(item, "index").str("gsi1sk")?.to_owned();
                    if let Some(v) = convert(item)? {
                        items.push(v);
                        if items.len() == limit {
                            return Ok(Page { items, next_token: Some(encode_token(&sk)) });
                        }
                    }
                    start = Some(sk);
                }
                let goes_on = out.last_evaluated_key().is_some();
                part = if goes_on { base + i } else { base + i + 1 };
                if part == count {
                    return Ok(Page { items, next_token: None });
                }
                if read >= 100 * MAX_QUERIES_PER_PAGE && start != first {
                    if let Some(sk) = &start {
                        return Ok(Page { items, next_token: Some(encode_token(sk)) });
                    }
                }
                if goes_on {
                    break;
                }
                let whole = i > 0 || resumed.is_none();
                if whole && i + 1 == outs.len() {
                    ahead = partitions_ahead(limit - items.len(), out.items().len());
                }
            }
        }
    }
}

/// Partitions to query at once after one read whole from its start held `rows`: as many as would
/// hold the `wanted` rows still missing at that rate (all that are left, for an empty one).
pub fn partitions_ahead(wanted: usize, rows: usize) -> usize {
    wanted.div_ceil(rows.max(1)).max(1)
}

impl DynamoStore {
    /// One page of a `gsi1` partition, in `forward` or reverse (newest first) order, from the
    /// item after the token's `gsi1sk`; `table_key` gives that item's table key from its
    /// `gsi1sk`. The token is the last item's `gsi1sk`.
    #[allow(clippy::too_many_arguments)] // one private helper serving the simple list routes
    pub(crate) async fn index_page<T>(
        &self,
        partition: &str,
        forward: bool,
        limit: usize,
        next_token: Option<String>,
        is_key: fn(&str) -> bool,
        table_key: impl Fn(&str) -> Result<Item, StoreError>,
        operation: &'static str,
        convert: impl Fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let start = match next_token {
            Some(t) => {
                let sk = decode_token_of(&t, is_key)?;
                let mut esk = table_key(&sk)?;
                esk.insert("gsi1pk".to_owned(), s(partition));
                esk.insert("gsi1sk".to_owned(), s(sk));
                Some(esk)
            }
            None => None,
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(partition))
            .scan_index_forward(forward)
            .limit(i32::try_from(limit).unwrap_or(50))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error(operation, e))?;
        let items = out.items().iter().map(convert).collect::<Result<Vec<_>, _>>()?;
        let next_token = out
            .last_evaluated_key()
            .and_then(|k| k.get("gsi1sk"))
            .and_then(|v| v.as_s().ok())
            .map(|sk| encode_token(sk));
        Ok(Page { items, next_token })
    }
}
