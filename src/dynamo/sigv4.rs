//! AWS Signature Version 4 verification for the DynamoDB API (`--dynamodb-access-keys
//! KEYID:SECRET,...`): the server recomputes the signature the SDK made with the secret it
//! shares, as DynamoDB does, so a key id seen on the wire is not enough to get in.
//!
//! The algorithm (AWS's "Create a signed AWS API request"): a canonical request (method, URI,
//! query, the signed headers, the SHA-256 of the body), a string to sign (algorithm, time,
//! scope, hash of the canonical request), and HMAC-SHA-256 under a key derived from the secret,
//! the date, region and service. HMAC and SHA-256 come from `ring` (already in the tree for
//! TLS): a well-kept implementation, no hand-written cryptography.

use ring::{digest, hmac};

/// How far a request's `X-Amz-Date` may be from the server's clock, as in AWS.
pub const MAX_SKEW_S: u64 = 15 * 60;

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No usable `Authorization` header (MissingAuthenticationTokenException).
    #[error("Request is missing Authentication Token")]
    Missing,
    /// The key id is not one of ours (UnrecognizedClientException).
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// Malformed header, wrong signature or expired (InvalidSignatureException).
    #[error("{0}")]
    Invalid(String),
}

/// The parts of a request that are signed.
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Every header, names in any case, in the order received.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

struct Authorization<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(h: &str) -> Result<Authorization<'_>, SigError> {
    let rest = h
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or(SigError::Missing)?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            cred = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = Some(v);
        }
    }
    let bad =
        |what: &str| SigError::Invalid(format!("Authorization header requires '{what}' parameter"));
    let cred = cred.ok_or_else(|| bad("Credential"))?;
    let signed_headers = signed.ok_or_else(|| bad("SignedHeaders"))?;
    let signature = sig.ok_or_else(|| bad("Signature"))?;
    let scope: Vec<&str> = cred.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" || scope[0].is_empty() {
        return Err(SigError::Invalid(format!(
            "Credential should be scoped to a valid region and service: {cred}"
        )));
    }
    Ok(Authorization {
        key_id: scope[0],
        date: scope[1],
        region: scope[2],
        service: scope[3],
        signed_headers,
        signature,
    })
}

/// Trims a header value and collapses runs of spaces, as the canonical form wants.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn sha256_hex(b: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, b).as_ref())
}

fn hmac_sign(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
        .as_ref()
        .to_vec()
}

/// `YYYYMMDDTHHMMSSZ` as Unix seconds.
fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// The canonical query string: parameters sorted by name, then value (as sent, encoded).
fn canonical_query(q: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Headers that must be signed: the host, the time, and the operation (so a captured request
/// cannot be replayed as another operation).
const MUST_SIGN: [&str; 3] = ["host", "x-amz-date", "x-amz-target"];

/// The checks that need no body: a known key id, the scope, the signed headers, the clock.
/// Run before the body is read, so a client without a known key id and a fresh date cannot
/// make the server read (and hold) a request body.
pub fn precheck(
    keys: &[(String, String)],
    authorization: Option<&str>,
    headers: &[(String, String)],
    now_s: u64,
) -> Result<(), SigError> {
    checked(keys, authorization, headers, now_s).map(|_| ())
}

struct Checked<'a> {
    auth: Authorization<'a>,
    secret: &'a str,
    amz_date: &'a str,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn checked<'a>(
    keys: &'a [(String, String)],
    authorization: Option<&'a str>,
    headers: &'a [(String, String)],
    now_s: u64,
) -> Result<Checked<'a>, SigError> {
    let auth = parse_authorization(authorization.ok_or(SigError::Missing)?)?;
    let secret = keys
        .iter()
        .find(|(id, _)| id == auth.key_id)
        .map(|(_, s)| s.as_str())
        .ok_or(SigError::UnknownKey)?;
    if auth.service != "dynamodb" {
        return Err(SigError::Invalid(format!(
            "Credential should be scoped to correct service: 'dynamodb', not '{}'",
            auth.service
        )));
    }
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    if let Some(missing) = MUST_SIGN.iter().find(|h| !signed.contains(h)) {
        return Err(SigError::Invalid(format!(
            "'{missing}' must be a signed header"
        )));
    }
    let amz_date = header(headers, "x-amz-date")
        .first()
        .copied()
        .ok_or_else(|| SigError::Invalid("X-Amz-Date header is missing".into()))?;
    let t = parse_amz_date(amz_date).ok_or_else(|| {
        SigError::Invalid(format!("X-Amz-Date '{amz_date}' is not YYYYMMDDTHHMMSSZ"))
    })?;
    if now_s.abs_diff(t) > MAX_SKEW_S {
        return Err(SigError::Invalid(format!(
            "Signature expired: {amz_date} is more than {} minutes from the server's time",
            MAX_SKEW_S / 60
        )));
    }
    if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(SigError::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from X-Amz-Date: {}",
            auth.date
        )));
    }
    Ok(Checked {
        auth,
        secret,
        amz_date,
    })
}

/// Checks the request's SigV4 signature against `keys` (key id, secret). `now_s`: the
/// server's Unix time.
pub fn verify(
    keys: &[(String, String)],
    authorization: Option<&str>,
    req: &RequestParts<'_>,
    now_s: u64,
) -> Result<(), SigError> {
    let Checked {
        auth,
        secret,
        amz_date,
    } = checked(keys, authorization, req.headers, now_s)?;
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    let mut canonical_headers = String::new();
    for name in &signed {
        let values = header(req.headers, name);
        if values.is_empty() {
            return Err(SigError::Invalid(format!(
                "signed header '{name}' is not in the request"
            )));
        }
        let joined: Vec<String> = values.iter().map(|v| canonical_value(v)).collect();
        canonical_headers.push_str(&format!("{name}:{}\n", joined.join(",")));
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        if req.path.is_empty() { "/" } else { req.path },
        canonical_query(req.query),
        canonical_headers,
        auth.signed_headers,
        sha256_hex(req.body)
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = hmac_sign(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    for part in [auth.region, auth.service, "aws4_request"] {
        key = hmac_sign(&key, part.as_bytes());
    }
    let given = unhex(auth.signature).unwrap_or_default();
    // Constant-time comparison of the signature.
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        string_to_sign.as_bytes(),
        &given,
    )
    .map_err(|_| {
        SigError::Invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request botocore 1.43 signed (SigV4Auth, fixed clock 2026-11-28T12:00:00Z) for key
    /// AKIDEXAMPLE with AWS's example secret.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=7fbadf53c35e9697844cdd237cd5af5880bebd8d0f88588d4cf5850f62d5cf6e";
    const BODY: &[u8] = br#"{"TableName":"music"}"#;
    const NOW: u64 = 1_795_867_200; // 2026-11-28T12:00:00Z

    fn headers(target: &str) -> Vec<(String, String)> {
        [
            ("Host", "127.0.0.1:8000"),
            ("X-Amz-Target", target),
            ("Content-Type", "application/x-amz-json-1.0"),
            ("X-Amz-Date", "20261128T120000Z"),
            ("Content-Length", "21"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    fn check(secret: &str, h: &[(String, String)], body: &[u8], now: u64) -> Result<(), SigError> {
        let keys = vec![("AKIDEXAMPLE".to_string(), secret.to_string())];
        let req = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: h,
            body,
        };
        verify(&keys, Some(AUTH), &req, now)
    }

    #[test]
    fn botocores_signature_verifies() {
        assert_eq!(parse_amz_date("20261128T120000Z"), Some(NOW));
        check(
            SECRET,
            &headers("DynamoDB_20120810.DescribeTable"),
            BODY,
            NOW,
        )
        .unwrap();
        check(
            SECRET,
            &headers("DynamoDB_20120810.DescribeTable"),
            BODY,
            NOW + 600,
        )
        .unwrap();
    }

    #[test]
    fn anything_changed_is_refused() {
        let h = headers("DynamoDB_20120810.DescribeTable");
        let mismatch = |r: Result<(), SigError>| {
            assert!(
                matches!(&r, Err(SigError::Invalid(m)) if m.contains("does not match")),
                "{r:?}"
            )
        };
        mismatch(check("wrong", &h, BODY, NOW));
        mismatch(check(SECRET, &h, br#"{"TableName":"other"}"#, NOW));
        mismatch(check(
            SECRET,
            &headers("DynamoDB_20120810.DeleteTable"),
            BODY,
            NOW,
        ));
        let expired = check(SECRET, &h, BODY, NOW + MAX_SKEW_S + 1);
        assert!(
            matches!(&expired, Err(SigError::Invalid(m)) if m.contains("expired")),
            "{expired:?}"
        );
        let keys = vec![("OTHER".to_string(), SECRET.to_string())];
        let unsigned_target = AUTH.replace("x-amz-date;x-amz-target", "x-amz-date");
        let k = vec![("AKIDEXAMPLE".to_string(), SECRET.to_string())];
        assert!(matches!(
            precheck(&k, Some(&unsigned_target), &h, NOW),
            Err(SigError::Invalid(m)) if m.contains("x-amz-target")
        ));
        let other_service = AUTH.replace("/dynamodb/", "/s3/");
        assert!(matches!(
            precheck(&k, Some(&other_service), &h, NOW),
            Err(SigError::Invalid(m)) if m.contains("service")
        ));
        assert_eq!(precheck(&k, Some(AUTH), &h, NOW), Ok(()));
        let req = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &h,
            body: BODY,
        };
        assert_eq!(
            verify(&keys, Some(AUTH), &req, NOW),
            Err(SigError::UnknownKey)
        );
        assert_eq!(verify(&keys, None, &req, NOW), Err(SigError::Missing));
        assert_eq!(
            verify(&keys, Some("Bearer x"), &req, NOW),
            Err(SigError::Missing)
        );
        let no_sig = AUTH.split(", Signature").next().unwrap();
        assert!(matches!(
            verify(&keys, Some(no_sig), &req, NOW),
            Err(SigError::Invalid(_))
        ));
    }
}
