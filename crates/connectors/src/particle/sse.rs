//! Server-sent events (the WHATWG event stream format), parsed as the bytes
//! arrive: `event:` names the event, `data:` lines make its data, a blank
//! line ends it, `retry:` asks for a reconnection delay, `:` starts a
//! comment (Particle's keep-alive). Forty lines against a dependency.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    name: String,
    data: String,
    has_data: bool,
    /// The reconnection delay the stream asked for, in ms.
    pub retry: Option<u64>,
}

impl Parser {
    /// Takes the next bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            events.extend(self.line_done(&String::from_utf8_lossy(&line)));
        }
        events
    }

    fn line_done(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let name = std::mem::take(&mut self.name);
            let mut data = std::mem::take(&mut self.data);
            if !std::mem::take(&mut self.has_data) {
                return None;
            }
            data.pop(); // the newline after the last data line
            return Some(Event { name: if name.is_empty() { "message".into() } else { name }, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "retry" => self.retry = value.parse().ok().or(self.retry),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_comments_retry_and_split_chunks() {
        let mut p = Parser::default();
        assert!(p.feed(b":ok\n\n").is_empty(), "a keep-alive is no event");
        let mut events = p.feed(b"retry: 2500\nevent: temp\ndata: {\"data\":\"21\",");
        events.extend(p.feed(b"\"coreid\":\"c1\"}\r\n\r\nevent: spark/status\ndata: a\ndata: b\n\ndata: plain\n\n"));
        assert_eq!(
            events,
            [
                Event { name: "temp".into(), data: r#"{"data":"21","coreid":"c1"}"#.into() },
                Event { name: "spark/status".into(), data: "a\nb".into() },
                Event { name: "message".into(), data: "plain".into() },
            ]
        );
        assert_eq!(p.retry, Some(2500));
        assert!(p.feed(b"event: half\n").is_empty(), "an event ends only with a blank line");
    }
}
