//! A headless Chromium driven over WebDriver: Debian's `chromium` and
//! `chromedriver` (scripts/install-deps.sh installs both), spoken to as
//! plain HTTP with JSON bodies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::{free_port, wait_for};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn tool(env: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/usr/bin/{name}")));
    assert!(
        path.exists(),
        "{} not found; run scripts/install-deps.sh (or set {env})",
        path.display()
    );
    path
}

/// One browser session; ends (and its driver with it) when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    pub fn start() -> Browser {
        let chromium = tool("SWITCHYARD_CHROMIUM", "chromium");
        let chromedriver = tool("SWITCHYARD_CHROMEDRIVER", "chromedriver");
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        wait_for("chromedriver", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1800"],
            },
        }}});
        let answer = browser.call("POST", "/session", &caps);
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; its `value`, panicking on an error answer.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let (status, answer) = self.try_call(method, path, body);
        assert_eq!(status, 200, "WebDriver {method} {path}: {answer}");
        answer["value"].clone()
    }

    fn try_call(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let body = if method == "GET" || method == "DELETE" {
            String::new()
        } else {
            body.to_string()
        };
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("chromedriver");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("WebDriver request");
        // The driver may keep the connection open: read the head, then as
        // much body as it announces.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let head_end = loop {
            let n = s.read(&mut buf).expect("WebDriver answer");
            assert!(n > 0, "WebDriver closed the connection before answering");
            raw.extend_from_slice(&buf[..n]);
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = head.contains("transfer-encoding: chunked");
        loop {
            let have = raw.len() - head_end - 4;
            let done = match length {
                Some(len) => have >= len,
                None if chunked => raw.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if done {
                break;
            }
            let n = s.read(&mut buf).expect("WebDriver answer");
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let rest = String::from_utf8_lossy(&raw[head_end + 4..]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("HTTP status");
        let body = if chunked { unchunk(&rest) } else { rest };
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", &self.session_path("/url"), &json!({"url": url}));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the
    /// page and gives what it returns.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            &json!({"script": script, "args": args}),
        )
    }

    /// Runs `script` in the page, which calls its last argument (after
    /// `args`) with what it gives back: for what the page must wait on.
    pub fn eval_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/async"),
            &json!({"script": script, "args": args}),
        )
    }

    /// Evaluates `script` until it returns something other than null or
    /// false, and gives that.
    pub fn wait_until(&self, what: &str, timeout: Duration, script: &str) -> Value {
        wait_for(what, timeout, || {
            let v = self.eval(script, json!([]));
            (!v.is_null() && v != false).then_some(v)
        })
    }

    fn element(&self, css: &str) -> Option<String> {
        let (status, answer) = self.try_call(
            "POST",
            &self.session_path("/element"),
            &json!({"using": "css selector", "value": css}),
        );
        (status == 200).then(|| answer["value"][ELEMENT].as_str().map(str::to_owned))?
    }

    /// Clicks the first element `css` selects, as a user would (waiting
    /// for it to appear).
    pub fn click(&self, css: &str) {
        let id = wait_for(css, Duration::from_secs(20), || self.element(css));
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/click")),
            &json!({}),
        );
    }

    /// Types `text` into the first element `css` selects.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = wait_for(css, Duration::from_secs(20), || self.element(css));
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/value")),
            &json!({"text": text}),
        );
    }

    /// The page's text content of the first element `css` selects, or
    /// `None` when there is none.
    pub fn text(&self, css: &str) -> Option<String> {
        self.eval(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        )
        .as_str()
        .map(str::to_owned)
    }

    /// How many elements `css` selects.
    pub fn count(&self, css: &str) -> usize {
        self.eval(
            "return document.querySelectorAll(arguments[0]).length;",
            json!([css]),
        )
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// Saves a screenshot of the window as PNG.
    pub fn screenshot(&self, path: &Path) {
        let png = self.call("GET", &self.session_path("/screenshot"), &Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("screenshot as base64"))
            .expect("screenshot base64");
        std::fs::write(path, bytes).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_call("DELETE", &self.session_path(""), &Value::Null);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A chunked HTTP body, joined.
fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
