use super::*;
use switchyard_core::Metadata;

const MIN: i64 = 60_000;

#[test]
fn a_poll_is_due_an_interval_after_the_last_and_missed_ticks_make_one() {
    let s = Schedule { interval: Duration::from_secs(60) };
    let now = 1_000 * MIN;
    assert_eq!(s.due(&PollState::default(), now, 0.0), now, "a new integration polls at once");
    let last = PollState { polled_at: Some(now - 20_000), ..Default::default() };
    assert_eq!(s.due(&last, now, 0.0), now + 40_000, "the cadence holds across a restart");
    let long_ago = PollState { polled_at: Some(now - 90 * MIN), ..Default::default() };
    assert_eq!(s.due(&long_ago, now, 0.0), now, "ninety missed ticks are one poll now, not a burst");
    // The jitter: at most a twentieth of the interval, and never over 2 s.
    assert_eq!(s.due(&last, now, 0.999_999), now + 40_000 + 1_999);
    assert_eq!(Schedule { interval: Duration::from_secs(3600) }.jitter(), Duration::from_secs(2));
}

#[test]
fn the_state_is_kept_as_json_and_read_back() {
    let state = PollState {
        polled_at: Some(5),
        until: Some(4),
        open: Some(OpenPoll {
            window: Window { since: 1, until: 4 },
            page: json!({"url": "https://x/next"}),
            marks: [("cursor".to_owned(), "c2".to_owned())].into(),
        }),
        marks: [("etag".to_owned(), "\"v1\"".to_owned())].into(),
    };
    let text = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<PollState>(&text).unwrap(), state);
    assert_eq!(serde_json::to_string(&PollState::default()).unwrap(), "{}");
}

#[test]
fn answers_are_classified_like_deliveries_with_the_sources_words() {
    let e = PollError::from_status(401, None, r#"{"error":"invalid token"}"#);
    assert_eq!(e, PollError::Fail(r#"HTTP 401: {"error":"invalid token"}"#.into()));
    assert!(matches!(PollError::from_status(404, None, ""), PollError::Fail(r) if r == "HTTP 404"));
    let after = Some(Duration::from_secs(3));
    assert_eq!(
        PollError::from_status(429, after, "slow down"),
        PollError::Retry { after, reason: "HTTP 429: slow down".into() }
    );
    assert!(matches!(PollError::from_status(503, None, ""), PollError::Retry { after: None, .. }));
}

#[test]
fn window_templates_see_the_window_the_cursor_and_the_globals() {
    let globals: Metadata = [("site".to_owned(), "north".to_owned())].into();
    let t = WindowTemplate::compile(
        "url",
        "https://api/{{ globals.site }}?from={{ since }}&to={{ until_s }}&c={{ cursor }}",
        &globals,
    )
    .unwrap();
    let w = Window { since: 1_700_000_000_000, until: 1_700_000_060_000 };
    assert_eq!(
        t.render(w, Some("abc")).unwrap(),
        "https://api/north?from=2023-11-14T22:13:20.000Z&to=1700000060&c=abc"
    );
    let unknown = WindowTemplate::compile("url", "https://api/{{ nope }}", &globals).unwrap();
    assert!(unknown.render(w, None).unwrap_err().starts_with("url could not be rendered"));
}
