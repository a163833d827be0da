//! One page of an HTTP poll: the request rendered for the window and the
//! page, the answer classified, its items made messages, and where the
//! next page is.
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use serde_json::{json, Value};
use switchyard_core::{now_ms, InboundMessage, Integration, Secret};

use crate::egress::{BuildError, EgressContext};
use crate::http::HttpClient;
use crate::poll::{Ask, Fetched, Page, PollError, Source, Window, WindowTemplate};
use crate::shared::Settings;

/// The most of one answer a poll reads.
const ANSWER_MAX: usize = 16 << 20;

const ETAG: &str = "etag";
const LAST_MODIFIED: &str = "lastModified";
const CURSOR: &str = "cursor";

#[derive(Debug)]
enum Auth {
    None,
    Bearer(Secret),
    Basic(String, Secret),
    ApiKey(HeaderName, Secret),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pagination {
    None,
    NextUrl(String),
    LinkHeader,
    Page { parameter: String, first: i64 },
    Offset { parameter: String },
}

pub struct HttpPollConfig {
    url: WindowTemplate,
    method: http::Method,
    body: Option<WindowTemplate>,
    headers: Vec<(HeaderName, WindowTemplate)>,
    auth: Auth,
    items: Option<String>,
    pagination: Pagination,
    cursor: Option<String>,
    conditional: bool,
    timeout: Duration,
    pub interval: Duration,
}

impl HttpPollConfig {
    /// From the integration with its secrets rendered; the URL, body and
    /// headers are compiled here over the globals and rendered per page.
    pub fn from_integration(i: &Integration, globals: &switchyard_core::Globals) -> Result<Self, BuildError> {
        let s = Settings::of(i)?;
        let config = |e: String| BuildError::Config(e);
        let text = |name| s.text(name).map(|t| t.map(str::trim).filter(|t| !t.is_empty()));
        let url = WindowTemplate::compile("url", s.required("url")?, globals)?;
        let body = text("body")?.map(|b| WindowTemplate::compile("body", b, globals)).transpose()?;
        let mut headers = Vec::new();
        for (i, line) in s.strings("headers")?.iter().enumerate() {
            let (name, value) =
                line.split_once(':').ok_or_else(|| config(format!("headers[{i}]: must be `Name: value`")))?;
            let name = HeaderName::try_from(name.trim())
                .map_err(|_| config(format!("headers[{i}]: `{}` is not a header name", name.trim())))?;
            headers.push((name, WindowTemplate::compile("headers", value.trim(), globals)?));
        }
        let auth = match text("auth")?.unwrap_or("none") {
            "bearer" => Auth::Bearer(s.need_secret("token")?),
            "basic" => Auth::Basic(s.required("username")?.to_owned(), s.need_secret("password")?),
            "apiKey" => {
                let name = s.required("apiKeyHeader")?;
                let name = HeaderName::try_from(name.trim())
                    .map_err(|_| config(format!("apiKeyHeader: `{name}` is not a header name")))?;
                Auth::ApiKey(name, s.need_secret("apiKey")?)
            }
            _ => Auth::None,
        };
        let parameter = |default: &str| Ok::<_, BuildError>(text("pageParameter")?.unwrap_or(default).to_owned());
        let pagination = match text("pagination")?.unwrap_or("none") {
            "nextUrl" => Pagination::NextUrl(s.required("nextPointer")?.to_owned()),
            "linkHeader" => Pagination::LinkHeader,
            "page" => {
                Pagination::Page { parameter: parameter("page")?, first: s.number("firstPage")?.unwrap_or(1.0) as i64 }
            }
            "offset" => Pagination::Offset { parameter: parameter("offset")? },
            _ => Pagination::None,
        };
        Ok(Self {
            url,
            method: if text("method")? == Some("POST") { http::Method::POST } else { http::Method::GET },
            body,
            headers,
            auth,
            items: text("itemsPointer")?.map(str::to_owned),
            pagination,
            cursor: text("cursorPointer")?.map(str::to_owned),
            conditional: s.flag("conditional")?,
            timeout: Duration::from_secs_f64(s.number("timeoutSeconds")?.unwrap_or(30.0)),
            interval: Duration::from_secs_f64(s.number("intervalSeconds")?.unwrap_or(300.0)),
        })
    }
}

pub struct HttpPollSource {
    config: HttpPollConfig,
    http: HttpClient,
}

impl HttpPollSource {
    pub fn new(config: HttpPollConfig, ctx: &EgressContext) -> Self {
        Self { config, http: ctx.http.clone() }
    }

    /// The page's URL: the one a previous page named, or the template
    /// rendered for the window with the page's parameter.
    fn url(&self, window: Window, page: &Value, cursor: Option<&str>) -> Result<url::Url, PollError> {
        let fail = |e: String| PollError::Fail(e);
        if let Some(next) = page.get("url").and_then(Value::as_str) {
            return url::Url::parse(next).map_err(|e| fail(format!("the next page's URL `{next}`: {e}")));
        }
        let text = self.config.url.render(window, cursor).map_err(fail)?;
        let mut url = url::Url::parse(text.trim()).map_err(|e| fail(format!("url: `{text}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(fail(format!("url: `{text}` must be an http:// or https:// URL")));
        }
        let numbered = match &self.config.pagination {
            Pagination::Page { parameter, first } => {
                Some((parameter, page.get("page").and_then(Value::as_i64).unwrap_or(*first)))
            }
            Pagination::Offset { parameter } => {
                Some((parameter, page.get("offset").and_then(Value::as_i64).unwrap_or(0)))
            }
            _ => None,
        };
        if let Some((parameter, n)) = numbered {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != parameter.as_str())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut().clear().extend_pairs(kept).append_pair(parameter, &n.to_string());
        }
        Ok(url)
    }

    fn request(
        &self,
        window: Window,
        url: &url::Url,
        first: bool,
        marks: &BTreeMap<String, String>,
    ) -> Result<http::Request<Bytes>, PollError> {
        let fail = |e: String| PollError::Fail(e);
        let cursor = marks.get(CURSOR).map(String::as_str);
        let mut request = http::Request::builder().method(self.config.method.clone()).uri(url.as_str());
        let headers = request.headers_mut().expect("a fresh builder");
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in &self.config.headers {
            let value = value.render(window, cursor).map_err(fail)?;
            let value = HeaderValue::try_from(value.trim())
                .map_err(|_| fail(format!("headers: `{name}` renders characters a header cannot hold")))?;
            headers.insert(name.clone(), value);
        }
        let secret = |v: String| {
            let mut v =
                HeaderValue::try_from(v).map_err(|_| fail("a credential holds characters a header cannot".into()))?;
            v.set_sensitive(true);
            Ok::<_, PollError>(v)
        };
        match &self.config.auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                headers.insert(header::AUTHORIZATION, secret(format!("Bearer {}", token.expose()))?);
            }
            Auth::Basic(user, password) => {
                headers.insert(header::AUTHORIZATION, secret(crate::http::basic_auth(user, password.expose()))?);
            }
            Auth::ApiKey(name, key) => {
                headers.insert(name.clone(), secret(key.expose().to_owned())?);
            }
        }
        // Validators belong to the first page's answer.
        if self.config.conditional && first {
            if let Some(v) = marks.get(ETAG).and_then(|v| HeaderValue::try_from(v.as_str()).ok()) {
                headers.insert(header::IF_NONE_MATCH, v);
            }
            if let Some(v) = marks.get(LAST_MODIFIED).and_then(|v| HeaderValue::try_from(v.as_str()).ok()) {
                headers.insert(header::IF_MODIFIED_SINCE, v);
            }
        }
        let body = match &self.config.body {
            Some(body) if self.config.method == http::Method::POST => {
                headers.entry(header::CONTENT_TYPE).or_insert(HeaderValue::from_static("application/json"));
                Bytes::from(body.render(window, cursor).map_err(fail)?)
            }
            _ => Bytes::new(),
        };
        request.body(body).map_err(|e| fail(format!("the request cannot be made: {e}")))
    }

    /// The items of an answer, where the items pointer says.
    fn items<'a>(&self, answer: &'a Value) -> Result<Vec<&'a Value>, PollError> {
        let found = match &self.config.items {
            Some(p) => answer
                .pointer(p)
                .ok_or_else(|| PollError::Fail(format!("the answer has nothing at itemsPointer `{p}`")))?,
            None => answer,
        };
        Ok(match found {
            Value::Array(items) => items.iter().collect(),
            Value::Null => vec![],
            one => vec![one],
        })
    }

    /// Where the page after this one is, if anywhere.
    fn next(
        &self,
        url: &url::Url,
        page: &Value,
        answer: &Value,
        headers: &http::HeaderMap,
        items: usize,
    ) -> Option<Value> {
        if items == 0 {
            return None;
        }
        let link =
            |target: &str| url.join(target).ok().filter(|next| next != url).map(|next| json!({"url": next.as_str()}));
        match &self.config.pagination {
            Pagination::None => None,
            Pagination::NextUrl(pointer) => {
                answer.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty()).and_then(link)
            }
            Pagination::LinkHeader => headers
                .get_all(header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link)
                .and_then(|target| link(&target)),
            Pagination::Page { first, .. } => {
                Some(json!({"page": page.get("page").and_then(Value::as_i64).unwrap_or(*first) + 1}))
            }
            Pagination::Offset { .. } => {
                Some(json!({"offset": page.get("offset").and_then(Value::as_i64).unwrap_or(0) + items as i64}))
            }
        }
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288), if it names one.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel") && v.trim().trim_matches('"').split(' ').any(|r| r == "next")
            })
            .then(|| target.to_owned())
    })
}

#[async_trait]
impl Source for HttpPollSource {
    async fn fetch(&self, ask: Ask<'_>) -> Result<Fetched, PollError> {
        let (window, page, marks) = (ask.window, ask.page, ask.marks);
        let url = self.url(window, page, marks.get(CURSOR).map(String::as_str))?;
        let first = page.is_null();
        let request = self.request(window, &url, first, marks)?;
        let answer = self.http.send(request, self.config.timeout).await.map_err(|e| PollError::from_http(&e))?;
        let status = answer.status();
        if status == 304 {
            return Ok(Fetched::NotModified);
        }
        if !(200..300).contains(&status) {
            let retry_after = answer.retry_after();
            return Err(PollError::from_status(status, retry_after, &answer.text(4096).await));
        }
        let headers = answer.headers().clone();
        let body = answer.bytes(ANSWER_MAX + 1).await;
        if body.len() > ANSWER_MAX {
            return Err(PollError::Fail(format!("the answer is larger than {} MiB", ANSWER_MAX >> 20)));
        }
        let parsed: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&body).map_err(|e| PollError::Fail(format!("the answer is not JSON: {e}")))?
        };
        let mut marks = BTreeMap::new();
        if first {
            for (name, mark) in [(header::ETAG, ETAG), (header::LAST_MODIFIED, LAST_MODIFIED)] {
                if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                    marks.insert(mark.to_owned(), v.to_owned());
                }
            }
        }
        if let Some(cursor) = self.config.cursor.as_deref().and_then(|p| parsed.pointer(p)) {
            match cursor {
                Value::String(c) if !c.is_empty() => marks.insert(CURSOR.to_owned(), c.clone()),
                Value::Number(n) => marks.insert(CURSOR.to_owned(), n.to_string()),
                _ => None,
            };
        }
        let items = self.items(&parsed)?;
        let next = self.next(&url, page, &parsed, &headers, items.len());
        let source_ref = url.path().trim_start_matches('/').to_owned();
        let received_at = now_ms();
        let messages = items
            .iter()
            .map(|item| InboundMessage {
                source_ref: source_ref.clone(),
                payload: serde_json::to_vec(item).unwrap_or_default(),
                received_at,
                ..Default::default()
            })
            .collect();
        Ok(Fetched::Page(Page { messages, next, marks }))
    }
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn the_next_link_is_found_among_others() {
        let h = r#"<https://api/x?page=1>; rel="prev", <https://api/x?page=3>; rel="next last""#;
        assert_eq!(next_link(h).as_deref(), Some("https://api/x?page=3"));
        assert_eq!(next_link(r#"<https://api/x?page=1>; rel="prev""#), None);
        assert_eq!(next_link("<https://api/y>;rel=next").as_deref(), Some("https://api/y"));
    }
}
