//! Query-string parameters of the list routes.

use kiro::domain::{Invalid, PrincipalType, SeatStatus, Tier};
use kiro::error::AppError;
use kiro::http::Request;
use serde::Serialize;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;

/// The query parameters of one request.
pub struct Query<'a> {
    req: &'a Request,
}

impl<'a> Query<'a> {
    pub fn of(req: &'a Request) -> Result<Self, AppError> {
        Ok(Self { req })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.req.query(name)
    }

    /// A parameter as sent.
    pub fn raw(&self, name: &str) -> Option<&'a str> {
        self.get(name)
    }

    /// `limit`: 1–100, default 50.
    pub fn limit(&self) -> Result<usize, AppError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(Invalid::new("limit", format!("must be a whole number from 1 to {MAX_LIMIT}")).into()),
            },
        }
    }

    pub fn next_token(&self) -> Option<String> {
        self.get("nextToken").filter(|t| !t.is_empty()).map(str::to_owned)
    }

    pub fn tier(&self) -> Result<Option<Tier>, AppError> {
        self.get("tier")
            .map(|raw| raw.parse::<Tier>().map_err(|_| bad_value("tier", raw, "PRO, PRO_PLUS or POWER")))
            .transpose()
    }

    pub fn status(&self) -> Result<Option<SeatStatus>, AppError> {
        self.get("status")
            .map(|raw| SeatStatus::parse(raw).ok_or_else(|| bad_value("status", raw, "PENDING, ACTIVE or CANCELED")))
            .transpose()
    }

    pub fn principal_type(&self) -> Result<Option<PrincipalType>, AppError> {
        self.get("principalType")
            .map(|raw| {
                PrincipalType::parse("principalType", raw).map_err(|_| bad_value("principalType", raw, "USER or GROUP"))
            })
            .transpose()
    }

    /// `q` of the directory search: absent to list the whole directory; otherwise 1 to 256
    /// characters, not blank.
    pub fn search_text(&self) -> Result<Option<&'a str>, AppError> {
        match self.get("q").map(str::trim) {
            None => Ok(None),
            Some("") => Err(Invalid::new("q", "must not be blank: leave q out to list the whole directory").into()),
            Some(q) if q.chars().count() <= 256 => Ok(Some(q)),
            Some(_) => Err(Invalid::new("q", "must be at most 256 characters").into()),
        }
    }
}

fn bad_value(name: &str, raw: &str, expected: &str) -> AppError {
    let shown: String = raw.chars().take(40).collect();
    AppError::BadRequest(format!("unknown value {shown:?} for query parameter '{name}': expected {expected}"))
}

/// `{"items": [...], "nextToken"?: "..."}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListBody<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

pub fn list_body<T>(items: Vec<T>, next_token: Option<String>) -> ListBody<T> {
    ListBody { items, next_token }
}
