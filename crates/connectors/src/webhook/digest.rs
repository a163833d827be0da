//! HTTP Digest authentication (RFC 7616): MD5 and SHA-256 (and their
//! `-sess` forms), qop `auth`. Answering a challenge is a pure function.
use md5::Md5;
use rand::RngCore;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: String,
    pub qop_auth: bool,
}

/// Picks the best Digest challenge among `WWW-Authenticate` values: SHA-256 over MD5.
pub fn parse_challenges<'a>(headers: impl Iterator<Item = &'a str>) -> Option<Challenge> {
    let mut found: Vec<Challenge> = headers.filter_map(parse_challenge).collect();
    found.sort_by_key(|c| !c.algorithm.to_ascii_uppercase().starts_with("SHA-256"));
    found.into_iter().next()
}

fn parse_challenge(header: &str) -> Option<Challenge> {
    let rest = header.trim().strip_prefix("Digest ").or_else(|| header.trim().strip_prefix("digest "))?;
    let params = parse_params(rest);
    let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let algorithm = get("algorithm").unwrap_or_else(|| "MD5".into());
    if !["MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS"].contains(&algorithm.to_ascii_uppercase().as_str()) {
        return None;
    }
    Some(Challenge {
        realm: get("realm")?,
        nonce: get("nonce")?,
        opaque: get("opaque"),
        qop_auth: get("qop").is_some_and(|q| q.split(',').any(|v| v.trim() == "auth")),
        algorithm,
    })
}

/// `k=v, k="quoted, with comma"` pairs.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if chars.next().is_none() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next()),
                    '"' => break,
                    c => v.push(c),
                }
            }
            v
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_owned()
        };
        out.push((key.trim().to_owned(), value));
    }
    out
}

fn hash(algorithm: &str, data: &str) -> String {
    if algorithm.to_ascii_uppercase().starts_with("SHA-256") {
        hex::encode(Sha256::digest(data.as_bytes()))
    } else {
        hex::encode(Md5::digest(data.as_bytes()))
    }
}

/// The `Authorization` header answering `challenge` for `method uri`.
pub fn authorization(
    c: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let alg = &c.algorithm;
    let mut ha1 = hash(alg, &format!("{username}:{}:{password}", c.realm));
    if alg.to_ascii_uppercase().ends_with("-SESS") {
        ha1 = hash(alg, &format!("{ha1}:{}:{cnonce}", c.nonce));
    }
    let ha2 = hash(alg, &format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let (response, qop) = if c.qop_auth {
        (
            hash(alg, &format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", c.nonce)),
            format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""),
        )
    } else {
        (hash(alg, &format!("{ha1}:{}:{ha2}", c.nonce)), String::new())
    };
    let opaque = c.opaque.as_ref().map(|o| format!(", opaque=\"{o}\"")).unwrap_or_default();
    format!(
        "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm={alg}, response=\"{response}\"{qop}{opaque}",
        c.realm, c.nonce
    )
}

pub fn cnonce() -> String {
    let mut b = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 section 3.9.1: the worked example, for SHA-256 and MD5.
    #[test]
    fn rfc_7616_examples() {
        let header = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let md5 = header.replace("SHA-256", "MD5");
        let best = parse_challenges([md5.as_str(), header].into_iter()).unwrap();
        assert_eq!(best.algorithm, "SHA-256");
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let auth = authorization(&best, "Mufasa", "Circle of Life", "GET", "/dir/index.html", 1, cnonce);
        assert!(
            auth.contains("response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""),
            "{auth}"
        );
        let md5 = parse_challenges([md5.as_str()].into_iter()).unwrap();
        let auth = authorization(&md5, "Mufasa", "Circle of Life", "GET", "/dir/index.html", 1, cnonce);
        assert!(auth.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""), "{auth}");
        assert!(auth.contains("nc=00000001") && auth.contains("qop=auth") && auth.contains("opaque=\"FQhe"));
    }

    #[test]
    fn non_digest_challenges_are_ignored() {
        assert_eq!(parse_challenges(["Basic realm=\"x\""].into_iter()), None);
        assert_eq!(parse_challenges(["Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256"].into_iter()), None);
    }
}
