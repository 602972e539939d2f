//! Reading and writing DynamoDB attribute maps without scattering `AttributeValue` everywhere.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::ports::StoreError;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The table's primary key.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(crate) fn t(v: &DateTime<Utc>) -> AttributeValue {
    AttributeValue::S(crate::time::format(v))
}

/// Typed reads from an item, failing with [`StoreError::Corrupt`] naming the attribute.
pub(crate) struct Reader<'a> {
    item: &'a Item,
    entity: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(item: &'a Item, entity: &'static str) -> Self {
        Self { item, entity }
    }

    fn corrupt(&self, attr: &str, what: &str) -> StoreError {
        StoreError::Corrupt(format!("{} item: attribute '{attr}' {what}", self.entity))
    }

    pub(crate) fn opt_str(&self, attr: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(self.corrupt(attr, "is not a string")),
        }
    }

    pub(crate) fn str(&self, attr: &str) -> Result<&'a str, StoreError> {
        self.opt_str(attr)?.ok_or_else(|| self.corrupt(attr, "is missing"))
    }

    pub(crate) fn opt_time(&self, attr: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.opt_str(attr)? {
            None => Ok(None),
            Some(raw) => crate::time::parse(raw).map(Some).ok_or_else(|| self.corrupt(attr, "is not an RFC 3339 time")),
        }
    }

    pub(crate) fn time(&self, attr: &str) -> Result<DateTime<Utc>, StoreError> {
        self.opt_time(attr)?.ok_or_else(|| self.corrupt(attr, "is missing"))
    }

    pub(crate) fn opt_u64(&self, attr: &str) -> Result<Option<u64>, StoreError> {
        match self.item.get(attr) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| self.corrupt(attr, "is not a whole number")),
            Some(_) => Err(self.corrupt(attr, "is not a number")),
        }
    }

    pub(crate) fn u64(&self, attr: &str) -> Result<u64, StoreError> {
        self.opt_u64(attr)?.ok_or_else(|| self.corrupt(attr, "is missing"))
    }

    pub(crate) fn parsed<T, E>(&self, attr: &str, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<T, StoreError> {
        parse(self.str(attr)?).map_err(|_| self.corrupt(attr, "has an unexpected value"))
    }
}
