//! A change's fields: a form (`application/x-www-form-urlencoded`) or a JSON object.

use kiro::error::AppError;
use kiro::http::Request;
use serde_json::Value;

/// The fields of a POST, in order; a field may repeat (several principals picked at once).
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn of(req: &Request) -> Result<Self, AppError> {
        let body = req.body_bytes()?;
        let json = req.header("content-type").is_some_and(|c| c.starts_with("application/json"));
        if !json {
            return Ok(Self(form_urlencoded::parse(&body).into_owned().collect()));
        }
        let value: Value =
            serde_json::from_slice(&body).map_err(|_| AppError::BadRequest("the body is not valid JSON".into()))?;
        let Value::Object(map) = value else {
            return Err(AppError::BadRequest("the body must be a JSON object".into()));
        };
        let mut fields = Vec::new();
        for (k, v) in map {
            match v {
                Value::String(s) => fields.push((k, s)),
                Value::Bool(b) => fields.push((k, b.to_string())),
                Value::Number(n) => fields.push((k, n.to_string())),
                Value::Array(items) => {
                    fields.extend(items.into_iter().filter_map(|i| i.as_str().map(|s| (k.clone(), s.to_owned()))))
                }
                _ => {}
            }
        }
        Ok(Self(fields))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The CSRF token the change carries: a field whose name contains `csrf`.
    pub fn csrf(&self) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.to_ascii_lowercase().contains("csrf")).map(|(_, v)| v.as_str())
    }
}

/// The query string's parameters (`Request::query` joins repeated ones with commas).
pub fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query(name).map(str::trim).filter(|v| !v.is_empty())
}
