//! The console as an OpenID Connect relying party of `CONSOLE_OIDC_ISSUER`: authorization code
//! flow with PKCE (S256), `state` and `nonce`; the ID token's RS256 signature checked against
//! the issuer's JWKS, then `iss`, `aud`, `exp` and `nonce`.
//!
//! The discovery document and the keys are fetched once per execution environment; an unknown
//! `kid` fetches the keys again (the issuer rotated them).

use aws_lc_rs::digest;
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{OnceCell, RwLock};

use crate::fetch::{Fetch, FetchError};

/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECONDS: i64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider could not be reached")]
    Unreachable(#[source] FetchError),
    #[error("the identity provider answered {what} with HTTP {status}")]
    Status { what: &'static str, status: u16 },
    #[error("the identity provider's {0} is not what OpenID Connect specifies")]
    Malformed(&'static str),
    #[error("the sign-in was refused: {0}")]
    Refused(String),
    #[error("the ID token is not valid: {0}")]
    InvalidToken(&'static str),
}

/// The parts of the discovery document the console uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    kty: String,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

/// The relying party: one per process.
pub struct RelyingParty<F> {
    fetch: F,
    issuer: String,
    client_id: String,
    discovery: OnceCell<Discovery>,
    keys: RwLock<Option<Jwks>>,
}

/// What a verified ID token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    /// The value of `CONSOLE_USER_CLAIM`.
    pub user_name: String,
}

/// Random URL-safe text of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("the system's random source failed");
    B64URL.encode(buf)
}

/// Hex SHA-256, as sessions are stored.
pub fn sha256_hex(text: &str) -> String {
    digest::digest(&digest::SHA256, text.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// PKCE S256: `BASE64URL(SHA256(verifier))`.
pub fn pkce_challenge(verifier: &str) -> String {
    B64URL.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

impl<F: Fetch> RelyingParty<F> {
    pub fn new(fetch: F, issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            fetch,
            issuer: issuer.into(),
            client_id: client_id.into(),
            discovery: OnceCell::new(),
            keys: RwLock::new(None),
        }
    }

    async fn json(&self, what: &'static str, url: &str) -> Result<Value, OidcError> {
        let answer = self.fetch.get(url).await.map_err(OidcError::Unreachable)?;
        if answer.status != 200 {
            return Err(OidcError::Status { what, status: answer.status });
        }
        serde_json::from_slice(&answer.body).map_err(|_| OidcError::Malformed(what))
    }

    pub async fn discovery(&self) -> Result<&Discovery, OidcError> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let doc: Discovery = serde_json::from_value(self.json("discovery document", &url).await?)
                    .map_err(|_| OidcError::Malformed("discovery document"))?;
                // OpenID Connect Discovery 1.0, 4.3: the document must name the issuer asked.
                if doc.issuer.trim_end_matches('/') != self.issuer {
                    return Err(OidcError::Malformed("discovery document (its issuer differs)"));
                }
                Ok(doc)
            })
            .await
    }

    /// Where to send the browser: the authorization endpoint with this sign-in's parameters.
    pub async fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<String, OidcError> {
        let endpoint = &self.discovery().await?.authorization_endpoint;
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid email profile")
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256")
            .finish();
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        Ok(format!("{endpoint}{sep}{query}"))
    }

    /// Trades the code for tokens and returns the verified identity in the ID token.
    pub async fn complete(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
        user_claim: &str,
        now: i64,
    ) -> Result<Identity, OidcError> {
        let endpoint = &self.discovery().await?.token_endpoint;
        let answer = self
            .fetch
            .post_form(
                endpoint,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                    ("client_id", &self.client_id),
                    ("code_verifier", verifier),
                ],
            )
            .await
            .map_err(OidcError::Unreachable)?;
        let body: Value = serde_json::from_slice(&answer.body).map_err(|_| OidcError::Malformed("token response"))?;
        if answer.status != 200 {
            let reason = body.get("error").and_then(Value::as_str).unwrap_or("unknown error");
            return Err(OidcError::Refused(format!("the token endpoint answered {reason}")));
        }
        let id_token = body.get("id_token").and_then(Value::as_str).ok_or(OidcError::Malformed("token response"))?;
        self.verify(id_token, nonce, user_claim, now).await
    }

    /// Checks the ID token: signature, then `iss`, `aud` (and `azp`), `exp`, `iat`, `nonce`.
    pub async fn verify(&self, token: &str, nonce: &str, user_claim: &str, now: i64) -> Result<Identity, OidcError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(OidcError::InvalidToken("not a signed JWT"));
        };
        let decode = |part: &str| B64URL.decode(part).map_err(|_| OidcError::InvalidToken("not base64url"));
        let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| OidcError::InvalidToken("bad header"))?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(OidcError::InvalidToken("not signed with RS256"));
        }
        let kid = header.get("kid").and_then(Value::as_str);
        let signature = decode(s)?;
        let message = &token.as_bytes()[..h.len() + 1 + p.len()];
        self.check_signature(kid, message, &signature).await?;

        let claims: Value = serde_json::from_slice(&decode(p)?).map_err(|_| OidcError::InvalidToken("bad claims"))?;
        let issuer = claims.get("iss").and_then(Value::as_str).map(|i| i.trim_end_matches('/'));
        if issuer != Some(self.issuer.as_str()) {
            return Err(OidcError::InvalidToken("issued by another issuer"));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == &self.client_id,
            Some(Value::Array(list)) => {
                list.iter().any(|a| a.as_str() == Some(&self.client_id))
                    && (list.len() == 1 || claims.get("azp").and_then(Value::as_str) == Some(&self.client_id))
            }
            _ => false,
        };
        if !audience_ok {
            return Err(OidcError::InvalidToken("issued to another client"));
        }
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or(OidcError::InvalidToken("no exp"))?;
        if now > exp + LEEWAY_SECONDS {
            return Err(OidcError::InvalidToken("expired"));
        }
        if claims.get("iat").and_then(Value::as_i64).is_some_and(|iat| iat > now + LEEWAY_SECONDS) {
            return Err(OidcError::InvalidToken("issued in the future"));
        }
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(OidcError::InvalidToken("its nonce is not this sign-in's"));
        }
        let subject = claims.get("sub").and_then(Value::as_str).ok_or(OidcError::InvalidToken("no sub"))?.to_owned();
        let user_name = claims
            .get(user_claim)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or(OidcError::InvalidToken("it does not carry the claim naming the user"))?
            .to_owned();
        Ok(Identity { subject, user_name })
    }

    async fn check_signature(&self, kid: Option<&str>, message: &[u8], signature: &[u8]) -> Result<(), OidcError> {
        for refresh in [false, true] {
            if refresh || self.keys.read().await.is_none() {
                let url = self.discovery().await?.jwks_uri.clone();
                let jwks: Jwks = serde_json::from_value(self.json("key set", &url).await?)
                    .map_err(|_| OidcError::Malformed("key set"))?;
                *self.keys.write().await = Some(jwks);
            }
            let keys = self.keys.read().await;
            let candidates: Vec<&Jwk> = keys
                .iter()
                .flat_map(|k| &k.keys)
                .filter(|k| k.kty == "RSA" && k.usage.as_deref().is_none_or(|u| u == "sig"))
                .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
                .collect();
            if candidates.is_empty() {
                continue; // an unknown kid: the issuer may have rotated its keys
            }
            for key in candidates {
                let (Some(n), Some(e)) = (&key.n, &key.e) else { continue };
                let (Ok(n), Ok(e)) = (B64URL.decode(n), B64URL.decode(e)) else { continue };
                let public = RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() };
                if public.verify(&RSA_PKCS1_2048_8192_SHA256, message, signature).is_ok() {
                    return Ok(());
                }
            }
            return Err(OidcError::InvalidToken("its signature does not verify"));
        }
        Err(OidcError::InvalidToken("signed with a key the issuer does not publish"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
    use serde_json::json;

    use super::*;
    use crate::fetch::Answer;

    pub const ISSUER: &str = "https://issuer.test";
    pub const CLIENT: &str = "console-client";

    /// An issuer in memory: its discovery document, its keys, and the ID token its token endpoint
    /// answers next.
    pub struct FakeIssuer {
        pub key: RsaKeyPair,
        pub kid: String,
        pub answers: Mutex<HashMap<String, Answer>>,
        pub gets: Mutex<Vec<String>>,
    }

    impl FakeIssuer {
        pub fn new() -> Self {
            let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
            let issuer = Self { key, kid: "k1".into(), answers: Mutex::new(HashMap::new()), gets: Mutex::new(vec![]) };
            issuer.publish_keys();
            issuer.answer(
                &format!("{ISSUER}/.well-known/openid-configuration"),
                200,
                json!({"issuer": ISSUER, "authorization_endpoint": format!("{ISSUER}/auth"), "token_endpoint": format!("{ISSUER}/token"), "jwks_uri": format!("{ISSUER}/jwks")}),
            );
            issuer
        }

        pub fn publish_keys(&self) {
            let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(self.key.public_key());
            let n = B64URL.encode(&public.n);
            let e = B64URL.encode(&public.e);
            self.answer(
                &format!("{ISSUER}/jwks"),
                200,
                json!({"keys": [{"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256", "n": n, "e": e}]}),
            );
        }

        pub fn answer(&self, url: &str, status: u16, body: Value) {
            self.answers.lock().unwrap().insert(url.to_owned(), Answer { status, body: body.to_string().into_bytes() });
        }

        pub fn sign(&self, header: Value, claims: Value) -> String {
            let signing_input = format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(claims.to_string()));
            let mut sig = vec![0; self.key.public_modulus_len()];
            self.key
                .sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), signing_input.as_bytes(), &mut sig)
                .unwrap();
            format!("{signing_input}.{}", B64URL.encode(sig))
        }

        pub fn token(&self, claims: Value) -> String {
            self.sign(json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}), claims)
        }
    }

    impl Fetch for &FakeIssuer {
        async fn get(&self, url: &str) -> Result<Answer, FetchError> {
            self.gets.lock().unwrap().push(url.to_owned());
            Ok(self.answers.lock().unwrap().get(url).cloned().unwrap_or(Answer { status: 404, body: b"{}".to_vec() }))
        }

        async fn post_form(&self, url: &str, _form: &[(&str, &str)]) -> Result<Answer, FetchError> {
            self.get(url).await
        }
    }

    pub fn claims(now: i64) -> Value {
        json!({"iss": ISSUER, "aud": CLIENT, "sub": "s-1", "exp": now + 300, "iat": now, "nonce": "n-1", "email": "alice@example.com"})
    }

    #[tokio::test]
    async fn a_token_signed_by_the_issuer_for_this_client_and_sign_in_names_the_user() {
        let issuer = FakeIssuer::new();
        let rp = RelyingParty::new(&issuer, ISSUER, CLIENT);
        let now = 1_800_000_000;
        let id = rp.verify(&issuer.token(claims(now)), "n-1", "email", now).await.unwrap();
        assert_eq!(id.user_name, "alice@example.com");
    }

    #[tokio::test]
    async fn every_claim_the_contract_names_is_checked() {
        let issuer = FakeIssuer::new();
        let rp = RelyingParty::new(&issuer, ISSUER, CLIENT);
        let now = 1_800_000_000;
        let with = |k: &str, v: Value| {
            let mut c = claims(now);
            c[k] = v;
            c
        };
        let cases = [
            ("another issuer", with("iss", json!("https://evil.test"))),
            ("another client", with("aud", json!("someone-else"))),
            ("expired", with("exp", json!(now - 600))),
            ("another sign-in's nonce", with("nonce", json!("n-2"))),
            ("no user claim", with("email", Value::Null)),
        ];
        for (what, c) in cases {
            assert!(rp.verify(&issuer.token(c), "n-1", "email", now).await.is_err(), "{what} must be refused");
        }
        // A token whose claims were altered after signing.
        let good = issuer.token(claims(now));
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = B64URL.encode(with("email", json!("mallory@example.com")).to_string());
        parts[1] = &forged;
        assert!(matches!(rp.verify(&parts.join("."), "n-1", "email", now).await, Err(OidcError::InvalidToken(_))));
        // alg=none, and HS256 keyed with the public key, are refused.
        let none = format!(
            "{}.{}.",
            B64URL.encode(json!({"alg": "none"}).to_string()),
            B64URL.encode(claims(now).to_string())
        );
        assert!(rp.verify(&none, "n-1", "email", now).await.is_err());
        let hs = issuer.sign(json!({"alg": "HS256", "kid": "k1"}), claims(now));
        assert!(rp.verify(&hs, "n-1", "email", now).await.is_err());
    }

    #[tokio::test]
    async fn a_token_signed_by_another_key_is_refused_and_a_rotated_key_is_fetched_once() {
        let issuer = FakeIssuer::new();
        let rp = RelyingParty::new(&issuer, ISSUER, CLIENT);
        let now = 1_800_000_000;
        let stranger = FakeIssuer::new();
        assert!(rp.verify(&stranger.token(claims(now)), "n-1", "email", now).await.is_err());
        // The issuer rotates to a new key with a new kid: the next token makes the keys be read again.
        let mut rotated = FakeIssuer::new();
        rotated.kid = "k2".into();
        issuer.answers.lock().unwrap().clear();
        let fresh = rotated.answers.lock().unwrap().clone();
        issuer.answers.lock().unwrap().extend(fresh);
        rotated.publish_keys();
        let keys = rotated.answers.lock().unwrap().get(&format!("{ISSUER}/jwks")).cloned().unwrap();
        issuer.answers.lock().unwrap().insert(format!("{ISSUER}/jwks"), keys);
        let gets_before = issuer.gets.lock().unwrap().len();
        rp.verify(&rotated.token(claims(now)), "n-1", "email", now).await.unwrap();
        assert_eq!(issuer.gets.lock().unwrap().len(), gets_before + 1, "one new read of the key set");
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, Appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
