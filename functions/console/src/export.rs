//! Export CSV: every seat the Users table shows (all pages), safe to open in a spreadsheet.

use kiro::domain::Profile;
use kiro::domain::seat::sources_list;
use kiro::error::AppError;
use kiro::http::Request;
use kiro::ports::{ApiStore, Directory, DirectorySearch, Exports};

use crate::web::Reply;
use crate::{Deps, oidc};

/// A Lambda response is at most 6 MB: a larger export goes to the export bucket and the browser
/// to its five-minute link.
pub const MAX_INLINE_BYTES: usize = 5_500_000;
/// What one invocation builds at most (in memory, then one `PutObject`): about 650,000 seats.
const MAX_EXPORT_BYTES: usize = 100_000_000;

/// One CSV cell: quoted when needed, and a leading `=`, `+`, `-`, `@` (or tab / carriage return)
/// prefixed with `'` so that no spreadsheet runs it as a formula.
pub fn cell(value: &str) -> String {
    let risky = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let value = if risky { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

pub async fn seats_csv<S, D, E, I, F, X>(
    deps: &Deps<S, D, E, I, F, X>,
    req: &Request,
    profile: &Profile,
) -> Result<Reply, AppError>
where
    S: ApiStore,
    D: Directory + DirectorySearch,
    X: Exports,
{
    let filters = crate::pages::filters_of(req)?;
    let mut out = String::from("userId,userName,tier,status,sources,grantedAt,updatedAt,canceledAt\r\n");
    let mut token = None;
    loop {
        let (seats, next) =
            crate::pages::filtered_seats(&deps.store, &deps.directory, profile, &filters, 100, token).await?;
        for s in &seats {
            let sources: Vec<String> = sources_list(&s.sources)
                .iter()
                .map(|src| match &src.group_id {
                    Some(g) => format!("GROUP:{}:{}", g.as_str(), src.tier.as_str()),
                    None => format!("DIRECT:{}", src.tier.as_str()),
                })
                .collect();
            let row = [
                cell(s.user_id.as_str()),
                cell(s.user_name.as_deref().unwrap_or_default()),
                cell(s.tier.as_str()),
                cell(s.status.as_str()),
                cell(&sources.join(" ")),
                cell(&kiro::time::format(&s.granted_at)),
                cell(&kiro::time::format(&s.updated_at)),
                cell(&s.canceled_at.map(|c| kiro::time::format(&c)).unwrap_or_default()),
            ];
            out.push_str(&row.join(","));
            out.push_str("\r\n");
        }
        if out.len() > MAX_EXPORT_BYTES {
            return Err(AppError::BadRequest(
                "The export is larger than one download can carry. Filter by tier or status and export each part."
                    .into(),
            ));
        }
        token = next;
        if token.is_none() {
            break;
        }
    }
    if out.len() > deps.inline_export_bytes {
        let name = format!("exports/{}/kiro-seats.csv", oidc::random_token(16));
        let link = deps.exports.publish_export(&name, out.into_bytes()).await.map_err(AppError::internal)?;
        return match link {
            Some(url) => Ok(Reply::see_other(url)),
            None => Err(AppError::BadRequest(
                "The export is larger than one download can carry, and no export bucket is configured. Filter by tier or status and export each part."
                    .into(),
            )),
        };
    }
    Ok(Reply::text(200, "text/csv; charset=utf-8", out)
        .header("content-disposition", "attachment; filename=\"kiro-seats.csv\""))
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn formulas_are_defused_and_separators_quoted() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for risky in ["+1", "-2", "@SUM(A1)", "\tx"] {
            assert!(cell(risky).trim_start_matches('"').starts_with('\''), "{risky}");
        }
        assert_eq!(cell("alice"), "alice");
        assert_eq!(cell("a,b"), "\"a,b\"");
    }
}
