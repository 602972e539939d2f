//! A list kept over `gsi1` partitions, paged as `DynamoStore::gsi1_page` pages it: the seats'
//! list (16 partitions) and a shard's seats (one). A shard's month of activity, read a whole
//! `Query` a page, is a plain range of the fake's own order (`activity.rs`).

use kiro::aws::partitions_ahead;

use super::*;

/// A list kept over `shards` index partitions, as `gsi1_page` reads it: `rows` by their
/// `gsi1sk`, whose partition `shard_of` tells, `per_query` rows a Query.
pub(super) struct Index<'a, T> {
    pub rows: &'a BTreeMap<String, T>,
    /// `rows`' keys by (partition, key), when kept: a partition's rows are then a range of it,
    /// not a filter over every row.
    pub order: Option<&'a BTreeSet<(usize, String)>>,
    pub shard_of: fn(&str) -> usize,
    pub shards: usize,
    pub per_query: usize,
}

impl<T: Clone> Index<'_, T> {
    /// One Query: up to `per_query` rows of `partition` after `from`.
    fn query(&self, partition: usize, from: Option<String>) -> Vec<(&String, &T)> {
        match self.order {
            Some(order) => {
                let low =
                    from.map_or(Bound::Included((partition, String::new())), |sk| Bound::Excluded((partition, sk)));
                let high = Bound::Excluded((partition + 1, String::new()));
                let keys = order.range((low, high)).take(self.per_query);
                keys.filter_map(|(_, sk)| self.rows.get_key_value(sk)).collect()
            }
            None => {
                let in_partition = |sk: &str| (self.shard_of)(sk) == partition;
                self.rows.range(after(from)).filter(|(sk, _)| in_partition(sk)).take(self.per_query).collect()
            }
        }
    }

    /// The page from `start` (a gsi1sk) on, partition after partition, Query by Query (a last key
    /// whenever one fills), the partitions after a short one queried at once as `gsi1_page`
    /// does ([`partitions_ahead`]), and how many Queries it sent (those it dropped included).
    pub fn page(&self, mut start: Option<String>, limit: usize, keep: impl Fn(&T) -> bool) -> (Page<T>, usize) {
        let in_shard = |sk: &str, shard: usize| (self.shard_of)(sk) == shard;
        let (first, mut read, mut queries) = (start.clone(), 0, 0);
        let (mut shard, mut ahead) = (start.as_deref().map_or(0, self.shard_of), 1);
        let mut items = Vec::new();
        loop {
            let base = shard;
            let resumed = start.clone().filter(|sk| in_shard(sk, base));
            let answers: Vec<Vec<(&String, &T)>> = (base..self.shards.min(base + ahead))
                .map(|s| self.query(s, resumed.clone().filter(|_| s == base)))
                .collect();
            queries += answers.len();
            ahead = 1;
            for (i, rows) in answers.iter().enumerate() {
                for (sk, row) in rows {
                    read += 1;
                    if keep(row) {
                        items.push((*row).clone());
                        if items.len() == limit {
                            return (Page { items, next_token: Some(encode_token(sk)) }, queries);
                        }
                    }
                    start = Some((*sk).clone());
                }
                let goes_on = rows.len() == self.per_query;
                shard = if goes_on { base + i } else { base + i + 1 };
                if shard == self.shards {
                    return (Page { items, next_token: None }, queries);
                }
                if read >= QUERY_LIMIT * kiro::aws::MAX_QUERIES_PER_PAGE && start != first {
                    if let Some(sk) = &start {
                        return (Page { items, next_token: Some(encode_token(sk)) }, queries);
                    }
                }
                if goes_on {
                    break;
                }
                if (i > 0 || resumed.is_none()) && i + 1 == answers.len() {
                    ahead = partitions_ahead(limit - items.len(), rows.len());
                }
            }
        }
    }
}
